"""Fleet management over the gateway's MQTT connection: device shadow (live config), jobs (model
updates), telemetry; `provision` creates a gateway's identity in AWS IoT."""

from __future__ import annotations

import logging

from edge_agent.control import AgentPort
from edge_agent.escalation.mqtt import MqttLink

log = logging.getLogger(__name__)


class Fleet:
    """What the config's `fleet` section turns on, wired to one agent (through its port) and its connection."""

    def __init__(self, agent: AgentPort, link: MqttLink):
        from edge_agent.fleet.jobs import JobRunner
        from edge_agent.fleet.shadow import ShadowSync
        from edge_agent.fleet.telemetry import TelemetryReporter

        cfg = agent.config.fleet
        self.link = link
        self.jobs = JobRunner(agent, link) if cfg.jobs else None
        self.shadow = ShadowSync(agent, link, self.jobs.switch_to if self.jobs else None) if cfg.shadow else None
        if self.jobs and self.shadow:
            shadow = self.shadow
            self.jobs.on_outcome = lambda: shadow.worker.submit(shadow.report)
        self.telemetry = TelemetryReporter(agent, link, cfg.telemetry_interval_s) if cfg.telemetry_interval_s else None

    def start(self) -> Fleet:
        for part in (self.shadow, self.jobs, self.telemetry):
            if part is not None:
                part.start()
        self.link.connection.on_connect(self._connected)
        if self.link.connection.connected:  # connected before we registered: do the on-connect work now
            self._connected()
        return self

    def _connected(self) -> None:
        if self.shadow is not None:
            self.shadow.request()
        if self.jobs is not None:
            self.jobs.ask_for_next()

    def close(self) -> None:
        for part in (self.telemetry, self.jobs, self.shadow):
            if part is not None:
                part.close()
