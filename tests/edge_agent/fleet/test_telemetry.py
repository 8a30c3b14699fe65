"""Telemetry on the thing's telemetry topic, read back through the broker and parsed with the wire
format (its validation: tests/contracts/test_wire_device.py; its rates: test_port_doubles.py); structured
JSON logs."""

from __future__ import annotations

import json
import logging
import sys
import threading

import pytest

from edge_agent.app import Agent
from edge_agent.logs import JsonFormatter
from tests.edge_agent.aws_side import CloudResponder, PacedSource, wait_until
from tests.edge_agent.conftest import agent_config, default_student_version


@pytest.mark.slow
def test_telemetry_reports_rates_spool_cpu_memory_and_model(broker, vtest_frames, tmp_path):
    cloud = CloudResponder(broker.port, client_id="cloud-telemetry")
    config = agent_config(tmp_path, broker.port, thing="gw-tele",
                          fleet={"telemetry_interval_s": 0.4, "shadow": False, "jobs": False})
    agent = Agent(config, sources=[PacedSource("cam", vtest_frames, 10_000, 0.05)])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(cloud.telemetry) >= 3, 15, "three telemetry messages")
    finally:
        agent.stop()
        thread.join(30)
        cloud.close()
    # What reaches the cloud parses and names the gateway; the rates themselves are checked without timing
    # anything in test_port_doubles.py (a loaded machine may see no frame in an interval).
    last = cloud.telemetry[-1]
    expected = ("gw-tele", "site-t", default_student_version(), True)
    assert (last.thing, last.site, last.model_version, last.connected) == expected
    cam = last.cameras["cam"]
    assert set(cam) == {"fps", "motion_rate", "escalation_rate", "cloud_failed_rate", "own_student", "warming_up",
                        "guard_max_escalation"}
    assert all(0 <= cam[k] <= 1 for k in ("motion_rate", "escalation_rate", "cloud_failed_rate"))
    assert cam["own_student"] == 0.0  # the agent's student: no camera of its own
    assert cam["warming_up"] in (0.0, 1.0) and cam["guard_max_escalation"] >= 0
    assert 0 < last.memory_mb < 4000 and last.spool_rows >= 0 and last.interval_s > 0 and last.uptime_s > 0
    assert len({t.message_id for t in cloud.telemetry}) == len(cloud.telemetry)


def test_json_logs_carry_fields_and_errors():
    formatter = JsonFormatter({"thing": "gw-1"})
    record = logging.LogRecord("edge_agent.x", logging.WARNING, __file__, 1, "camera %s lost", ("gate",), None)
    record.camera = "gate"
    line = json.loads(formatter.format(record))
    assert (line["level"], line["msg"], line["camera"], line["thing"]) == ("warning", "camera gate lost", "gate",
                                                                           "gw-1")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(record))["error"]
