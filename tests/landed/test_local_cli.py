"""`framesieve-cloud sieve --local CLIP` as a user runs it: a subprocess with the example config, which starts
its own loopback stack and teacher, lands the clip, sieves it and prints what it did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _last_json(text: str) -> dict:
    """The summary is the last JSON document on stdout (per-frame lines and the run's log line come before)."""
    start = text.rindex("\n{\n") + 1 if "\n{\n" in text else text.index("{")
    return json.loads(text[start:])


def test_sieve_local_runs_the_example_config_end_to_end(clip30, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("AWS_ENDPOINT_URL", "FRAMESIEVE_STORE_URL"):  # the command makes its own stack
        env.pop(key, None)
    # the example config with one change: a 25% audit share, so 30 frames surely ask the cloud (at the example's
    # 2%, 30 frames ask nothing 55% of the time; the test passed only because every camera's draws were seeded 0)
    config = yaml.safe_load((ROOT / "config" / "sieve.example.yaml").read_text())
    config["defaults"]["cascade"]["audit_fraction"] = 0.25
    (tmp_path / "sieve.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "cloud.cli", "sieve", "--config",
                           str(tmp_path / "sieve.yaml"), "--local", str(clip30)],
                          capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _last_json(done.stdout)
    assert summary["status"] == "sieved"
    assert 29 <= summary["sampled_frames"] <= 31  # 30 s at the example's 1 fps
    assert summary["escalated_frames"] >= 1  # the audit share alone asks the cloud now and then
    assert sum(summary["decided_by"].values()) == summary["sampled_frames"]
    # every escalation went through the router into the store, none twice, none dead-lettered
    assert summary["router"]["sent"] == summary["escalated_frames"]
    assert summary["router"]["stored"] + summary["router"]["unchanged"] == summary["escalated_frames"]
    assert summary["router"]["dead_letter"] == 0 and summary["router"]["duplicate"] == 0
    assert summary["cpu_ms_per_sampled_frame"] > 0


def test_sieve_local_names_a_missing_clip(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cloud.cli", "sieve", "--config",
                           str(ROOT / "config" / "sieve.example.yaml"), "--local", str(tmp_path / "nope.mp4")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert "nope.mp4" in done.stderr and "no such file" in done.stderr
