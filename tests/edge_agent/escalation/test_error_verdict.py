"""An error verdict over a real Mosquitto: the cloud's word that it dead-lettered a message ends the edge's
wait at once (the edge decides, counted), instead of a verdict_timeout_s per frame."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from contracts.detections import Detections
from edge_agent.app import Agent
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.crops import build_request
from edge_agent.escalation.mqtt import build_mqtt_transport
from tests.edge_agent.aws_side import CloudResponder, PacedSource, wait_until
from tests.edge_agent.conftest import agent_config


def test_an_error_verdict_ends_the_wait_at_once(broker, vtest_frames, tmp_path):
    cloud = CloudResponder(broker.port, client_id="cloud-error-verdict")
    cloud.error = "created_s: expected a number, got 'abc'"
    transport = build_mqtt_transport(agent_config(tmp_path, broker.port, thing="gw-err", verdict_timeout_s=10.0))
    try:
        assert transport.link.connection.wait_connected(10)
        request = build_request("cam", 3, 3.0, vtest_frames[0], [(0, 0, 768, 576)], "uncertain", Detections.empty())
        started = time.monotonic()
        with pytest.raises(TransportError, match="will not answer .*expected a number"):
            transport.escalate(request)
        assert time.monotonic() - started < 2.0  # not the 10 s timeout
        assert (transport.error_verdicts, transport.timeouts, transport.verdicts) == (1, 0, 0)
    finally:
        transport.close()
        cloud.close()


@pytest.mark.slow
def test_an_agent_told_no_decides_at_the_edge_without_stalling(broker, vtest_frames, tmp_path):
    cloud = CloudResponder(broker.port, client_id="cloud-error-agent")
    cloud.error = "the endpoint failed: ModelError"
    config = agent_config(tmp_path, broker.port, thing="gw-err-agent", verdict_timeout_s=10.0,
                          fleet={"shadow": False, "jobs": False}, breaker={"probe_interval_s": 1.0})
    agent = Agent(config, sources=[PacedSource("cam", vtest_frames, count=40, interval_s=0.1)])
    thread = threading.Thread(target=agent.run, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        wait_until(lambda: not thread.is_alive(), 30, "the agent to finish its 40 frames")
    finally:
        agent.stop()
        thread.join(30)
        cloud.close()
    summary = agent.summary()
    t = summary["total"]
    assert time.monotonic() - started < 15  # 40 frames at 10 fps, never a 10 s wait per frame
    assert t["escalated"] == 0 and t["cloud_failed"] >= 3 and summary["mqtt"]["error_verdicts"] >= 3
    assert summary["cloud"]["opens"] >= 1 and t["cloud_open"] >= 1  # the breaker stopped asking
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        rows = db.execute("SELECT frame_index, fallback FROM events ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(40))
    assert {"cloud_failed", "cloud_open"} <= {r[1] for r in rows}
