"""The agent end to end: real footage, the shipped student, the real inference server over HTTP."""

import json
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from contracts.wire import MAX_MESSAGE_BYTES
from edge_agent.app import Agent
from edge_agent.config import AgentConfig

DESIGN_KEYS = {"camera", "frame_index", "pts_s", "decided_by", "escalated", "detections"}
# A band so wide that almost every detection is uncertain: escalations happen whatever the student's skill.
UNSURE = {"labels": {"person": {"accept": 0.99, "reject": 0.01}, "vehicle": {"accept": 0.99, "reject": 0.01}}}
CASCADE_ONLY = {"onboarding": {"enabled": False}}  # these tests are about the student's cascade


def _config(cameras, url="http://127.0.0.1:9/invocations", **extra):
    """These tests are about the student's cascade: onboarding (every motion frame to the cloud) is off."""
    raw = {"cameras": [{**CASCADE_ONLY, **c} for c in cameras],
           "escalation": {"transport": "url", "url": url, "retries": 1, "timeout_s": 2}}
    raw.update(extra)
    return AgentConfig.model_validate(raw)


def _run(config, tmp_path):
    agent = Agent(config, jsonl=tmp_path / "out.jsonl", events_db=tmp_path / "events.sqlite")
    summary = agent.run()
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    return summary, lines


@pytest.mark.slow
def test_agent_over_vtest_with_the_real_server(teacher_server_url, vtest_path, tmp_path):
    config = _config([{"id": "plaza", "source": str(vtest_path), "cascade": UNSURE}], teacher_server_url)
    summary, lines = _run(config, tmp_path)
    t = summary["total"]
    assert t["sampled"] == len(lines) == 80  # 79.5 s at 1 fps
    assert t["sampled"] == t["motion_skipped"] + t["edge_decided"] + t["escalated"]
    assert t["escalated"] >= 1 and t["cloud_failed"] == 0
    assert 0 < t["bytes_sent"] <= t["escalated"] * MAX_MESSAGE_BYTES
    for line in lines:
        assert set(line) == DESIGN_KEYS
        assert line["decided_by"] in {"edge", "cloud", "carried", "audit"}
        assert line["escalated"] == (line["decided_by"] in {"cloud", "audit"})
        for det in line["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576 and det["label"] in {"person", "vehicle"}
    assert [ln["pts_s"] for ln in lines] == pytest.approx([float(i) for i in range(80)], abs=0.11)
    rows = sqlite3.connect(tmp_path / "events.sqlite").execute(
        "SELECT COUNT(*), SUM(escalated) FROM events").fetchone()
    assert rows == (80, t["escalated"])


@pytest.mark.slow
def test_cloud_unreachable_is_decided_at_the_edge_and_counted(vtest_path, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/invocations"
    config = _config([{"id": "plaza", "source": str(vtest_path), "cascade": UNSURE}], dead)
    summary, lines = _run(config, tmp_path)
    t = summary["total"]
    assert t["escalated"] == 0 and t["cloud_failed"] >= 1
    assert len(lines) == t["sampled"] == 80  # nothing lost
    assert all(ln["decided_by"] in {"edge", "carried"} for ln in lines)


def test_budget_refusals_are_counted_and_decided_at_the_edge(teacher_server_url, vtest_path, tmp_path):
    config = _config([{"id": "plaza", "source": str(vtest_path),
                       "cascade": {**UNSURE, "budget_per_hour": 2, "audit_fraction": 0.0}}], teacher_server_url)
    summary, lines = _run(config, tmp_path)
    t = summary["total"]
    assert t["escalated"] <= 2 and t["budget_refused"] >= 1
    assert len(lines) == 80


@pytest.mark.slow
def test_two_cameras_share_student_batches(teacher_server_url, vtest_path, shared_footage, tmp_path):
    config = _config([{"id": "plaza", "source": str(vtest_path)},
                      {"id": "road", "source": str(shared_footage / "car-detection.mp4")}],
                     teacher_server_url)
    summary, lines = _run(config, tmp_path)
    assert summary["cameras"]["plaza"]["sampled"] == 80
    assert summary["cameras"]["road"]["sampled"] == 31  # 30.2 s at 1 fps
    ran_model = sum(c["sampled"] - c["motion_skipped"] for c in summary["cameras"].values())
    assert summary["student_calls"] < ran_model  # crops of both cameras went through in shared calls
    assert {ln["camera"] for ln in lines} == {"plaza", "road"}


@pytest.mark.slow
def test_run_command_stops_cleanly_on_sigterm(vtest_path, tmp_path):
    cfg = tmp_path / "agent.yaml"
    out = tmp_path / "d.jsonl"
    cfg.write_text(f"cameras:\n  - {{id: plaza, source: '{vtest_path}', fps: 10}}\n"
                   f"escalation: {{transport: none}}\noutput: {{events_db: '{tmp_path / 'e.sqlite'}'}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg),
                             "--detections-out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while (not out.exists() or not out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.terminate()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    written = out.read_text().splitlines()
    assert summary["total"]["sampled"] == len(written) < 795  # stopped early, every sample recorded
    rows = sqlite3.connect(tmp_path / "e.sqlite").execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert rows == len(written)
    assert len(stdout.strip().splitlines()) == 1  # the counters: one JSON line when stdout is not a terminal
    logs = [json.loads(line) for line in stderr.splitlines()]  # every line a JSON object
    start, stop = logs[0], logs[-1]
    assert start["event"] == "start" and start["cameras"] == ["plaza"]
    assert stop["event"] == "stop" and stop["counters"]["sampled"] == rows
    frames = [e for e in logs if e["logger"] == "edge_agent.frames"]
    assert len(frames) == rows and {e["camera"] for e in frames} == {"plaza"}
    assert all(e["decided_by"] in ("edge", "carried") and e["latency_ms"] >= 0 for e in frames)
    assert sorted(e["frame"] for e in frames) == sorted(json.loads(w)["frame_index"] for w in written)


def test_a_camera_that_changes_resolution_keeps_running(vtest_frames, tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(vtest_frames):
        image = frame if i < 3 else cv2.resize(frame, (384, 288))  # the camera came back at half size
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
    (folder / "003a.jpg").write_bytes(b"not a jpeg")  # a corrupt file between them
    config = AgentConfig.model_validate(
        {"cameras": [{"id": "door", "source": str(folder), **CASCADE_ONLY}], "escalation": {"transport": "none"}})
    summary, lines = _run(config, tmp_path)
    assert len(lines) == 6 and summary["cameras"]["door"]["corrupt_frames"] == 1
    for line in lines[3:]:
        assert all(d["box"][2] <= 384 and d["box"][3] <= 288 for d in line["detections"])


@pytest.mark.slow
def test_sagemaker_transport_through_boto3_against_the_real_server(teacher_server_url, vtest_path, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    base = teacher_server_url.rsplit("/", 1)[0]
    config = AgentConfig.model_validate({
        "cameras": [{"id": "plaza", "source": str(vtest_path), "fps": 0.25, "cascade": UNSURE, **CASCADE_ONLY}],
        "escalation": {"transport": "sagemaker", "endpoint_name": "framesieve-teacher", "region": "eu-west-1",
                       "endpoint_url": base, "retries": 1}})
    summary, lines = _run(config, tmp_path)
    t = summary["total"]
    assert t["escalated"] >= 1 and t["cloud_failed"] == 0
    assert any(ln["decided_by"] == "cloud" and ln["detections"] for ln in lines)
