"""`framesieve-cloud local` as a real subprocess (moto_server, inference server, router, API on loopback),
one escalation posted to it; and `bench-endpoint` with a tiny budget (no timing asserted)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud.cli import main
from tests.cloud.conftest import escalation_event

ROOT = Path(__file__).resolve().parents[2]


def _request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert m, url
    conn = http.client.HTTPConnection(m[1], int(m[2]), timeout=60)
    try:
        conn.request(method, m[3], body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_local_stack_routes_an_escalation_and_stops_on_ctrl_c(teacher_manifest, plaza_crops, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "cloud.cli", "local", "--model", str(teacher_manifest),
                             "--threads", "2", "--state-dir", str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("ready"):
                break
        urls = dict(re.findall(r"^(moto_server|inference|router|results API)\s+(http://\S+)", "".join(lines), re.M))
        assert set(urls) == {"moto_server", "inference", "router", "results API"}, lines
        assert all("127.0.0.1" in u for u in urls.values())

        event = escalation_event(plaza_crops, created_s=1_764_400_000.0)
        for key in ("topic", "thing_name"):
            event.pop(key)
        status, out = _request(urls["router"] + "?thing=gw-local", "POST", json.dumps(event).encode())
        assert status == 200 and out["status"] == "stored", out
        assert out["published_to"] == "framesieve/gw-local/verdicts" and out["calls"]["endpoint_invocations"] == 1
        status, bad = _request(urls["router"], "POST", b"{not json")
        assert status == 422 and bad["status"] == "dead_letter"

        api = urls["results API"].rsplit("/health", 1)[0]
        status, page = _request(f"{api}/cameras/plaza/detections?from=1764399999&to=1764400001")
        assert status == 200 and [i["message_id"] for i in page["items"]] == [event["message_id"]]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, rest
    assert "stopping" in rest


@pytest.mark.slow
def test_bench_endpoint_prints_batch_1_and_the_best_batch_side_by_side(teacher_manifest, capsys):
    assert main(["bench-endpoint", "--model", str(teacher_manifest), "--duration", "1.5", "--clients", "2",
                 "--batches", "1,2", "--threads", "1", "--cpu"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "p50 ms" in out and "p95 ms" in out
    assert re.search(r"^batch 1\s+1\s+1\.00\s+\d", out, re.M), out
    assert re.search(r"^best batch \(2\)\s+2\s", out, re.M), out


def test_bench_endpoint_refuses_bad_options(capsys):
    assert main(["bench-endpoint", "--batches", "1,x"]) == 2
    assert "--batches '1,x'" in capsys.readouterr().err
