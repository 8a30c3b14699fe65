"""Escalations beside the decision loop: two live cameras keep deciding while the cloud hangs, the breaker
opens and decides at the edge without asking, probes, and closes when the cloud is back; every sampled
frame gets exactly one event row, in frame order per camera. The cloud here is a gate the test opens (the
real server hung with SIGSTOP: tests/edge_agent/test_cloud_hang.py)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import urllib.request

from contracts.wire import CropVerdict, DetectionRecord, EscalationRequest, Verdict
from edge_agent.app import Agent
from edge_agent.app import agent as agent_module
from edge_agent.config import AgentConfig
from edge_agent.escalation.base import Transport, TransportError
from tests.edge_agent.aws_side import PacedSource
from tests.edge_agent.broker import free_port

INTERVAL_S = 0.1
COUNT = 40


class GatedCloud(Transport):
    """Hangs every escalation for up to `timeout_s` (then a timeout) until `opened`; then answers at once."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.opened = threading.Event()
        self.calls = 0

    def escalate(self, request: EscalationRequest) -> Verdict:
        self.calls += 1
        if not self.opened.wait(self.timeout_s):
            raise TransportError(f"no answer within {self.timeout_s} s")
        crops = tuple(CropVerdict(c.crop_id, (DetectionRecord("person", 0.9, c.box),)) for c in request.crops)
        return Verdict(request.message_id, request.camera, request.frame_index, "teacher@test", crops)


def _agent(tmp_path, frames, cloud: Transport, metrics_port: int | None = None, **escalation) -> Agent:
    config = AgentConfig.model_validate({
        "cameras": [{"id": "a", "source": "injected"}, {"id": "b", "source": "injected"}],  # both onboarding
        "escalation": {"transport": "url", "timeout_s": 1.0, "retries": 1,
                       "breaker": {"failures": 2, "probe_interval_s": 0.5}, **escalation},
        "output": {"events_db": str(tmp_path / "events.sqlite"), "metrics_port": metrics_port}})
    sources = [PacedSource(c, frames[k:] + frames[:k], COUNT, INTERVAL_S) for k, c in enumerate("ab")]
    return Agent(config, transport=cloud, sources=sources)


def _rows(tmp_path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        return db.execute("SELECT camera, frame_index, decided_by, fallback FROM events ORDER BY id").fetchall()


def test_a_hung_cloud_stalls_no_camera_and_the_breaker_probes_it_back(vtest_frames, tmp_path):
    cloud = GatedCloud(timeout_s=1.0)
    port = free_port()
    agent = _agent(tmp_path, vtest_frames, cloud, metrics_port=port)
    scrapes: list[str] = []

    def scrape() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            scrapes.append(reply.read().decode())

    threading.Timer(2.2, scrape).start()  # while the cloud hangs
    threading.Timer(2.5, cloud.opened.set).start()  # the cloud comes back part-way through
    started = time.monotonic()
    summary = agent.run()
    wall_s = time.monotonic() - started
    rows = _rows(tmp_path)
    # Both cameras sampled at their pace: 40 frames in about 4 s, where waiting 1 s per escalation in the loop
    # (the previous code) took over 20 s.
    assert wall_s < COUNT * INTERVAL_S * 1.6, wall_s
    for camera in "ab":
        mine = [r for r in rows if r[0] == camera]
        assert [r[1] for r in mine] == list(range(COUNT))  # every frame once, in frame order
    t = summary["total"]
    assert t["sampled"] == len(rows) == 2 * COUNT
    assert t["cloud_failed"] >= 2 and t["cloud_open"] >= 1  # timed out, then decided without asking
    assert summary["cloud"]["opens"] >= 1 and summary["cloud"]["state"] == "closed"  # probed back
    assert t["escalated"] >= 5  # answered after the cloud came back
    assert {r[3] for r in rows if r[2] == "edge"} >= {"cloud_failed", "cloud_open"}
    assert t["sampled"] == t["motion_skipped"] + t["edge_decided"] + t["escalated"]
    assert summary["cloud"]["in_flight"] == 0 and summary["cloud"]["held_frames"] == 0
    (during,) = scrapes  # /metrics showed the breaker open (2) or probing (1) while the cloud hung
    assert re.search(r"^framesieve_cloud_breaker_state [12]$", during, re.M), during[-1500:]
    assert re.search(r'^framesieve_cloud_open_total\{camera="a"\} [1-9]', during, re.M)
    assert re.search(r"^framesieve_cloud_breaker_opens_total [1-9]", during, re.M)


def test_at_most_max_in_flight_are_awaited_and_the_rest_decided_at_once(vtest_frames, tmp_path, monkeypatch):
    monkeypatch.setattr(agent_module, "STOP_WAIT_S", 1.0)  # 10 s in production
    cloud = GatedCloud(timeout_s=30.0)  # hangs past the end: the agent stops, what is awaited is given up
    agent = _agent(tmp_path, vtest_frames, cloud, max_in_flight=2, breaker={"enabled": False}, timeout_s=60)
    stopper = threading.Timer(1.5, agent.stop)
    stopper.start()
    started = time.monotonic()
    summary = agent.run()
    assert time.monotonic() - started < 1.5 + 1.0 + 2.0  # asked to stop, it waited STOP_WAIT_S, not 60 s
    rows = _rows(tmp_path)
    t = summary["total"]
    assert cloud.calls == 2 and t["cloud_busy"] >= 5
    assert t["sampled"] == len(rows) and t["cloud_failed"] == 2  # the two awaited: given up at the stop
    for camera in "ab":
        indexes = [r[1] for r in rows if r[0] == camera]
        assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
