"""The install a user gets: the wheel this repository builds, installed with its extras into a fresh venv,
runs every console command from outside the source tree (config/ comes from inside the wheel)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} -> {result.returncode}\n{result.stdout[-1500:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_the_built_wheel_installs_and_runs_outside_the_source_tree(tmp_path, vtest_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
          str(ROOT)], ROOT, dict(os.environ))
    wheel = next(dist.glob("framesieve_cascade-*.whl"))
    venv = tmp_path / "venv"  # extras: the gateway's, the cloud's, the bench's plots (no torch: no training)
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    bin_ = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_}:{env.get('PATH', '')}"
    _run([str(bin_ / "pip"), "install", "-q", f"{wheel}[edge,cloud,bench]"], tmp_path, env)

    away = tmp_path / "elsewhere"
    away.mkdir()
    where = _run([str(bin_ / "python"), "-c", "import edge_agent, cloud, framesieve_config; "
                  "print(edge_agent.__file__, cloud.__file__, framesieve_config.__file__)"], away, env)
    assert str(ROOT) not in where and str(venv) in where, where
    assert "usage: edge-agent" in _run([str(bin_ / "edge-agent"), "--help"], away, env)
    assert "usage: framesieve-cloud" in _run([str(bin_ / "framesieve-cloud"), "--help"], away, env)
    _run([str(bin_ / "edge-agent"), "validate-config", str(ROOT / "config" / "agent.example.yaml")], away, env)

    # bench on a short run of real footage, then the cost model on its summary (its prices from the wheel)
    _run([str(bin_ / "edge-agent"), "bench", str(vtest_path), "--fps", "0.2", "--no-sweep", "--out",
          str(away / "bench")], away, env)
    summary = next((away / "bench").rglob("summary.json"))
    cost = _run([str(bin_ / "edge-agent"), "cost", "--bench", str(summary), "--cameras", "100"], away, env)
    assert "baseline" in cost.lower()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(bin_ / "framesieve-cloud"), "serve", "--port", str(port), "--threads", "1"],
                              cwd=away, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                    answer = resp.status, json.loads(resp.read() or b"{}")
                break
            except OSError:
                time.sleep(0.3)
        assert answer is not None and answer[0] == 200, server.stdout.read() if server.poll() is not None else ""
    finally:
        server.terminate()
        server.wait(30)
    shutil.rmtree(venv, ignore_errors=True)  # 400+ MB
