"""Telemetry every N seconds on `{prefix}/{thing}/telemetry`: per-camera sampled fps and the shares of
frames with motion, escalated and cloud-failed over the interval; spool depth and evictions; the
process's CPU (percent of one core) and resident memory; model and agent versions.

Sent only while connected (QoS 1, not spooled): telemetry is about now, and a backlog of stale health
reports would only delay the escalations and events behind it. What was skipped is counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from contracts.device import Telemetry
from edge_agent.control import AgentPort
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.mqtt import MqttLink
from edge_agent.fleet.shadow import agent_version

log = logging.getLogger(__name__)


def memory_mb() -> float:
    """Resident set size now (Linux /proc), or the peak where /proc is absent."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _share(count: int, sampled: int) -> float:
    return min(1.0, max(0.0, count / sampled)) if sampled else 0.0


class TelemetryReporter:
    def __init__(self, agent: AgentPort, link: MqttLink, interval_s: float,
                 clock: Callable[[], float] = time.monotonic, cpu: Callable[[], float] = time.process_time):
        """`clock` and `cpu` (seconds): injected by tests, so rates are checked without timing anything."""
        self.agent, self.link, self.interval_s = agent, link, interval_s
        self.clock, self.cpu = clock, cpu
        self.sent = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-telemetry", daemon=True)
        self._last = self._snapshot()

    def start(self) -> TelemetryReporter:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _snapshot(self) -> dict:
        status = self.agent.status()
        return {"t": self.clock(), "cpu": self.cpu(), "status": status,
                "cameras": {cid: s.counters for cid, s in status.cameras.items()}}

    def build(self) -> Telemetry:
        now, last = self._snapshot(), self._last
        status = now["status"]
        self._last = now
        dt = max(1e-6, now["t"] - last["t"])
        cameras = {}
        for cid, counters in now["cameras"].items():
            before = last["cameras"].get(cid, {})
            d = {k: v - before.get(k, 0) for k, v in counters.items()}
            sampled = max(0, d["sampled"])
            cameras[cid] = {"fps": sampled / dt, "motion_rate": _share(sampled - d["motion_skipped"], sampled),
                            "escalation_rate": _share(d["escalated"], sampled),
                            "cloud_failed_rate": _share(d["cloud_failed"], sampled),
                            "own_student": float(status.cameras[cid].own_student is not None),
                            "warming_up": float(status.cameras[cid].warming_up),
                            "guard_max_escalation": float(status.cameras[cid].limits.max_escalation or 0.0)}
        spool = self.link.spool
        return Telemetry(
            message_id=str(uuid.uuid4()), thing=self.link.topics.thing, site=self.agent.config.site, t_s=time.time(),
            interval_s=dt, uptime_s=time.time() - status.started_s, agent_version=agent_version(),
            model_version=status.student.version, cpu_percent=100 * (now["cpu"] - last["cpu"]) / dt,
            memory_mb=memory_mb(), spool_rows=spool.rows, spool_bytes=spool.bytes, spool_evicted=spool.evicted(),
            connected=self.link.connection.connected, cameras=cameras,
            max_in_flight=self.agent.config.escalation.in_flight_limit)

    def send(self) -> Telemetry:
        message = self.build()
        try:
            self.link.connection.publish(self.link.topics.telemetry, message.to_bytes())
            self.sent += 1
        except TransportError as exc:
            self.skipped += 1
            log.debug("telemetry skipped: %s", exc)
        return message

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.send()
            except Exception:
                log.exception("telemetry failed")
