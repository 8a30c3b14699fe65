"""`framesieve-cloud sieve --local CLIP` as a user runs it: a subprocess with the example config, which starts
its own loopback stack and teacher, lands the clip, sieves it and prints what it did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _last_json(text: str) -> dict:
    """The summary is the last JSON document on stdout (per-frame lines and the run's log line come before)."""
    start = text.rindex("\n{\n") + 1 if "\n{\n" in text else text.index("{")
    return json.loads(text[start:])


def test_sieve_local_runs_the_example_config_end_to_end(clip30, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("AWS_ENDPOINT_URL", "FRAMESIEVE_STORE"):  # the command makes its own stack
        env.pop(key, None)
    # the example config with one change: a 25% audit share, so 30 frames surely ask the cloud (at the example's
    # 2%, 30 frames ask nothing 55% of the time; the test passed only because every camera's draws were seeded 0)
    config = yaml.safe_load((ROOT / "config" / "sieve.example.yaml").read_text())
    config["defaults"]["cascade"]["audit_fraction"] = 0.25
    (tmp_path / "sieve.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "cloud.cli", "sieve", "--config",
                           str(tmp_path / "sieve.yaml"), "--local", str(clip30), "--out", str(tmp_path / "out")],
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
    # --out: the run's per-frame decisions and the summary, as for real landed video
    decisions = (tmp_path / "out" / "decisions-0.jsonl").read_text().splitlines()
    assert len(decisions) == summary["sampled_frames"]
    assert json.loads((tmp_path / "out" / "sieve.json").read_text()) == [summary]


def test_sieve_local_names_a_missing_clip(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cloud.cli", "sieve", "--config",
                           str(ROOT / "config" / "sieve.example.yaml"), "--local", str(tmp_path / "nope.mp4")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert "nope.mp4" in done.stderr and "no such file" in done.stderr


def _sieve(capsys, *argv: str) -> tuple[int, str, str]:
    from cloud.cli import main

    rc = main(["sieve", "--config", str(ROOT / "config" / "sieve.example.yaml"), *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_check_validates_the_config_and_says_what_it_sets_up(capsys):
    rc, out, err = _sieve(capsys, "--check")
    assert rc == 0, err
    assert "ok:" in out and "loading-dock (site depot-1): s3 */landed/depot-1/loading-dock/" in out
    assert "group plaza: plaza-entrance" in out


def test_check_names_a_broken_config(tmp_path, capsys):
    from cloud.cli import main

    (tmp_path / "s.yaml").write_text("cameras:\n  - {id: a, site: s1}\ncolour: red\n")
    assert main(["sieve", "--config", str(tmp_path / "s.yaml"), "--check"]) == 2
    err = capsys.readouterr().err
    assert "colour (line 3): unknown key" in err and "got red" in err
    assert "camera a: give s3_prefix (landed objects) or stream" in err and "Value error" not in err


@pytest.mark.parametrize("argv, message", [
    (["--bucket", "b1"], "--bucket b1 needs --key KEY"),
    (["--key", "in/x.mp4"], "--key in/x.mp4 needs --bucket BUCKET"),
    ([], "give what to sieve: --bucket B --key K"),
    (["--bucket", "b1", "--key", "k", "--stream", "s"], "not both"),
    (["--local", "x.avi", "--store", "sqlite:///tmp/x.sqlite"], "--local makes its own loopback stack, bucket and "
                                                                 "store: drop --store"),
])
def test_source_flags_that_do_not_fit_are_named(capsys, argv, message):
    rc, _, err = _sieve(capsys, *argv)
    assert rc == 2 and message in err and "Traceback" not in err
