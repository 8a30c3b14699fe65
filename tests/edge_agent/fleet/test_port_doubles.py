"""Fleet management against a stand-in for the agent's port: a model switch that gets no live frame in
time fails, is cancelled and frees the shadow's model pin; telemetry's rates from counters and clocks
given, nothing timed. Fast tier."""

from __future__ import annotations

import concurrent.futures
import shutil
import time
from types import SimpleNamespace

import pytest

from edge_agent.config import AgentConfig
from edge_agent.control import AgentStatus, CameraStatus, ModelInfo
from edge_agent.escalation.connection import Topics
from edge_agent.fleet.jobs import JobRunner
from edge_agent.fleet.shadow import ShadowSync
from edge_agent.fleet.telemetry import TelemetryReporter
from edge_agent.students.guard import Limits
from models.paths import CENTERNET_STUDENT_MANIFEST

COUNTERS = dict.fromkeys(("sampled", "motion_skipped", "edge_decided", "escalated", "audit", "budget_refused",
                          "cloud_failed", "bytes_sent", "message_units"), 0)


class StandInAgent:
    """An AgentPort whose commands stay queued (as on a gateway whose cameras deliver no frame)."""

    def __init__(self, config: AgentConfig, version: str = "0.9.0"):
        self.config = config
        self.version = version
        self.counters = {c.id: dict(COUNTERS) for c in config.cameras}
        self.submitted: list[concurrent.futures.Future] = []

    def status(self) -> AgentStatus:
        cameras = {c.id: CameraStatus(c, dict(self.counters[c.id]), None, Limits(), None, False)
                   for c in self.config.cameras}
        return AgentStatus(ModelInfo("student", self.version, "0" * 64, None), cameras, 0, 1000.0)

    def stopped(self) -> bool:
        return False

    def submit(self, command) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.submitted.append(future)
        return future


def _link():
    spool = SimpleNamespace(rows=0, bytes=0, evicted=lambda: 0)
    return SimpleNamespace(topics=Topics("framesieve", "gw-1"), spool=spool,
                           connection=SimpleNamespace(connected=True))


def _config(tmp_path) -> AgentConfig:
    return AgentConfig.model_validate({"site": "s1", "cameras": [{"id": "cam", "source": "x"}],
                                       "fleet": {"models_dir": str(tmp_path / "models")}})


def test_a_model_switch_without_a_live_frame_fails_is_cancelled_and_frees_the_pin(tmp_path):
    config = _config(tmp_path)
    shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, tmp_path / "models" / "versions" / "1.0.0")  # installed
    agent, link = StandInAgent(config), _link()
    jobs = JobRunner(agent, link, swap_timeout_s=0.2)  # type: ignore[arg-type]
    jobs.worker.start()
    shadow = ShadowSync(agent, link, jobs.switch_to)  # type: ignore[arg-type]
    try:
        shadow._consider_model("1.0.0")
        assert shadow._switching == "1.0.0"
        deadline = time.monotonic() + 10
        while shadow._switching is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        # Before: the timeout looked like a shutdown, nobody was told, and the pin was ignored until a restart.
        assert shadow._switching is None
        assert "model 1.0.0 not used" in shadow.model_status and "cancelled, nothing changed" in shadow.model_status
        assert len(agent.submitted) == 1 and agent.submitted[0].cancelled()  # it can never swap in later
    finally:
        jobs.close()


def test_telemetry_rates_come_from_the_counters_and_clocks_of_the_interval(tmp_path):
    agent = StandInAgent(_config(tmp_path))
    clock, cpu = [100.0], [5.0]
    reporter = TelemetryReporter(agent, _link(), 60, clock=lambda: clock[0], cpu=lambda: cpu[0])  # type: ignore[arg-type]
    agent.counters["cam"].update(sampled=10, motion_skipped=4, escalated=3, cloud_failed=1)
    clock[0], cpu[0] = 102.0, 5.5
    message = reporter.build()
    assert message.interval_s == 2.0 and message.cpu_percent == pytest.approx(25.0)
    assert message.cameras["cam"] == {"fps": 5.0, "motion_rate": 0.6, "escalation_rate": 0.3,
                                      "cloud_failed_rate": 0.1, "own_student": 0.0, "warming_up": 0.0,
                                      "guard_max_escalation": 0.0}
    assert (message.thing, message.site, message.model_version) == ("gw-1", "s1", "0.9.0")
    clock[0] = 104.0  # an interval without a frame: rates of zero, not a division by zero
    quiet = reporter.build()
    assert quiet.cameras["cam"]["fps"] == 0.0 and quiet.cameras["cam"]["escalation_rate"] == 0.0
