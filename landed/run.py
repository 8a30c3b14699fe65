"""`Sieve`: the gateway agent's pipeline run in the cloud over video that has already landed.

One run takes some cameras of one site, each with its frames (a downloaded S3 object, or a Kinesis Video
stream read through GetImages), and runs the edge agent itself on them (`edge_agent.app.Agent`: sampler,
motion gate, regions, student, tracker, cascade, escalation), with its escalations routed in process
(transport.py) by the router the IoT rule invokes. The results land in the same store as a gateway's: a row
per answered escalation (written by the router), and every sampled frame's final decision as a frame event
(the per-minute counters the dashboard reads), under the sieve's registered thing for that site.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cloud.router.config import RouterConfig
from contracts.registry import Registration
from edge_agent.app import Agent
from edge_agent.pipeline.sources import FrameSource
from landed.config import SieveCamera, SieveConfig
from landed.events import MinuteCounts
from landed.transport import RouterTransport, SieveRouter

log = logging.getLogger("framesieve.sieve")


@dataclass
class SieveRun:
    """What one run did: the per-frame decisions (the JSONL lines `edge-agent bench` writes) and counts."""

    origin: str
    site: str
    thing: str
    cameras: list[str]
    sampled_frames: int
    escalated_frames: int
    decided_by: dict[str, int]
    router: dict[str, int]  # escalations sent, and what the router did with them (stored, duplicate, ...)
    minutes_stored: int  # camera-minutes of frame counts written (repeats of an earlier run are not)
    cpu_s: float  # process CPU time of the pipeline (decode, student, tracker, cascade, crops), not the teacher
    wall_s: float
    init_s: float  # of wall_s: starting the pipeline (student loaded and self-tested, sources opened)
    lines: list[dict] = field(default_factory=list, repr=False)

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * self.cpu_s / max(1, self.sampled_frames)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "lines"}
        out["cpu_ms_per_sampled_frame"] = round(self.cpu_ms_per_frame, 2)
        out["cpu_s"], out["wall_s"], out["init_s"] = round(self.cpu_s, 3), round(self.wall_s, 3), round(self.init_s, 3)
        return out


class Sieve:
    """The pipeline and the router, held across runs (a Lambda container or a Fargate task runs many)."""

    def __init__(self, config: SieveConfig, router: SieveRouter | None = None):
        self.config = config
        self.router = router or SieveRouter(RouterConfig.from_env())
        self._registered: set[str] = set()
        self.last_run: SieveRun | None = None
        self._agent: Agent | None = None

    def stop(self) -> None:
        """Ask a run in progress to end (a worker following streams, on SIGTERM): the frames awaiting the cloud
        are decided and every open minute is written before `run` returns."""
        agent = self._agent
        if agent is not None:
            agent.stop()

    @property
    def store(self):
        return self.router.store

    def register(self, site: str) -> str:
        """The sieve's thing for `site`, registered for the site's cameras (as `framesieve-cloud register` does
        for a gateway); written only when the registry holds something else. Returns the thing name."""
        thing = self.config.thing_of(site)
        if thing not in self._registered:
            entry = Registration(thing, site, tuple(c.id for c in self.config.cameras if c.site == site))
            if self.store.gateway(thing) != entry:
                self.store.register_gateway(entry)
            self._registered.add(thing)
        return thing

    def run(self, cameras: list[tuple[SieveCamera, str | FrameSource]], origin: str, work: Path,
            start_times: dict[str, float] | None = None, keep_lines: bool = True) -> SieveRun:
        """Run the pipeline over each camera's video (a file path, or a FrameSource) until it ends.
        `start_times`: per camera id, the wall-clock time of its media time 0, where it is known.
        `keep_lines`: keep every decision (JSONL) for the result; a worker following streams does not."""
        work.mkdir(parents=True, exist_ok=True)
        config = self.config.agent_config(
            [(cam, src if isinstance(src, str) else f"{cam.stream or cam.id}.kvs") for cam, src in cameras], work)
        thing = self.register(config.site)
        sources = [src for _, src in cameras if not isinstance(src, str)] or None
        transport = RouterTransport(self.router, thing, origin, start_times)
        jsonl = work / "decisions.jsonl"
        for stale in (jsonl, work / "events.sqlite", work / "events.sqlite-wal", work / "events.sqlite-shm"):
            stale.unlink(missing_ok=True)
        started, cpu0 = time.perf_counter(), time.process_time()
        agent = Agent(config, transport=transport, jsonl=jsonl if keep_lines else None,
                      events_db=work / "events.sqlite", sources=sources)
        init_s = time.perf_counter() - started  # the student loaded and self-tested, the sources opened
        self._agent = agent
        counts = agent.events = MinuteCounts(agent.events, self.store, thing, config.site, origin, start_times or {})
        try:
            agent.run()
        finally:
            self._agent = None
            counts.close()
        cpu = time.process_time() - cpu0
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()] if keep_lines else []
        decided: dict[str, int] = {}
        for line in lines:
            decided[line["decided_by"]] = decided.get(line["decided_by"], 0) + 1
        escalated = sum(bool(ln["escalated"]) for ln in lines) if keep_lines else transport.counts["sent"]
        run = SieveRun(origin, config.site, thing, [c.id for c in config.cameras], counts.frames, escalated, decided,
                       transport.stats(), counts.minutes_written, cpu, time.perf_counter() - started, init_s, lines)
        log.info(json.dumps({"event": "sieve_run", **run.to_dict()}))
        self.last_run = run
        return run
