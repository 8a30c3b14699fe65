"""Per-gateway batching on the whole system on one machine: a real gateway (`edge-agent run`, transport mqtt,
two live cameras onboarding, so every frame with motion goes to the cloud) with `batch_window_ms` set ->
Mosquitto -> the IoT rule bridge -> router -> teacher -> store, the answers back in one verdict message per
batch. Every escalation is answered and stored once; fewer messages than escalations went up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cloud.test_local_and_bench import ROOT, _request, start_local, stop_local

pytestmark = pytest.mark.slow


def short_clip(vtest_path, path, seconds: float = 8.0):
    """The first seconds of vtest.avi (10 fps), so two live cameras end on their own in a test's time."""
    import cv2

    cap = cv2.VideoCapture(str(vtest_path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    ok, frame = cap.read()
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frame.shape[1::-1])
    for _ in range(int(seconds * fps)):
        out.write(frame)
        ok, frame = cap.read()
        if not ok:
            break
    out.release()
    cap.release()
    return path


def test_a_batching_gateway_gets_every_answer_and_sends_fewer_messages(teacher_manifest, vtest_path, tmp_path):
    clip = short_clip(vtest_path, tmp_path / "short.avi")
    proc, urls = start_local(tmp_path / "cloud", "--model", str(teacher_manifest), "--mqtt",
                             "--gateway", "gw-batch=site-b:cam-a,cam-b")
    try:
        port = int(urls["mqtt broker"].rsplit(":", 1)[1])
        cameras = [{"id": cam, "source": str(clip), "fps": 2, "realtime": True} for cam in ("cam-a", "cam-b")]
        config = tmp_path / "gateway.yaml"
        config.write_text(json.dumps({
            "site": "site-b", "student_threads": 1, "cameras": cameras,
            "escalation": {"transport": "mqtt", "thing_name": "gw-batch", "verdict_timeout_s": 20,
                           "batch_window_ms": 400, "mqtt": {"host": "127.0.0.1", "port": port},
                           "spool": {"path": str(tmp_path / "spool.sqlite")}},
            "output": {"events_db": str(tmp_path / "events.sqlite")},
            "fleet": {"telemetry_interval_s": 0, "models_dir": str(tmp_path / "models")}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
        run = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        summary = json.loads(run.stdout[run.stdout.index("{"):])
        total, mqtt = summary["total"], summary["mqtt"]
        sent = total["escalated"]
        assert sent >= 10 and total["cloud_failed"] == 0, (total, mqtt)
        assert mqtt["verdicts"] == sent and mqtt["batching_fallbacks"] == 0, mqtt
        # version 1 until the router's first verdict said it reads batches (contracts/wire.py accepts_v), then
        # batches: the two cameras' escalations left together
        assert 0 < mqtt["batched_escalations"] < sent and mqtt["messages_up"] < sent, mqtt
        api = urls["results API"].rsplit("/health", 1)[0]
        token = (tmp_path / "cloud" / "api-token").read_text().strip()
        stored = 0
        for cam in ("cam-a", "cam-b"):
            status, page = _request(f"{api}/cameras/{cam}/detections?from=0&to=4102444800&limit=500", token=token)
            assert status == 200
            stored += len(page["items"])
        assert stored == sent
    finally:
        stop_local(proc)
