"""The agent loop: sources -> motion gate -> regions -> student (batched over cameras) -> tracker ->
cascade -> escalation -> events. One object per camera holds that camera's state."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from contracts.detections import Detections, box_iou
from contracts.wire import WireError
from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.escalation import http as _http_transports  # noqa: F401  (registers url, sagemaker)
from edge_agent.escalation.base import TRANSPORTS, Transport, TransportError
from edge_agent.escalation.crops import build_request
from edge_agent.events import EventLog, FrameEvent
from edge_agent.feeder import FrameFeeder
from edge_agent.metrics import serve_metrics
from edge_agent.pipeline.cascade import Band, Cascade
from edge_agent.pipeline.detector import BatchedStudent
from edge_agent.pipeline.motion import MotionGate
from edge_agent.pipeline.regions import Region, plan_regions
from edge_agent.pipeline.sources import FrameSource, SampledFrame, open_source
from edge_agent.pipeline.tracker import IouTracker
from models.paths import DEFAULT_STUDENT_MANIFEST
from models.runtime import load_detector

log = logging.getLogger(__name__)


@dataclass
class Counters:
    sampled: int = 0
    motion_skipped: int = 0
    edge_decided: int = 0
    escalated: int = 0
    audit: int = 0
    budget_refused: int = 0
    cloud_failed: int = 0
    bytes_sent: int = 0
    message_units: int = 0  # IoT Core meters messages in 5 KB units


@dataclass
class CameraState:
    config: CameraConfig
    tracker: IouTracker
    cascade: Cascade
    gate: MotionGate | None = None
    last: Detections = field(default_factory=Detections.empty)  # the previous final decision
    # The settled part of it: cloud answers and confident edge detections. Only these are carried into
    # areas without motion; an uncertain guess is never carried, or it would outlive its evidence.
    settled: Detections = field(default_factory=Detections.empty)
    last_whole_s: float = float("-inf")  # when the student last looked at the whole frame
    counters: Counters = field(default_factory=Counters)


def build_transport(config: AgentConfig) -> Transport | None:
    esc = config.escalation
    if esc.transport == "none":
        return None
    if esc.transport == "url":
        return TRANSPORTS["url"](esc.url, timeout_s=esc.timeout_s, retries=esc.retries)
    return TRANSPORTS["sagemaker"](esc.endpoint_name, esc.region, esc.endpoint_url, esc.timeout_s, esc.retries)


class Agent:
    def __init__(self, config: AgentConfig, transport: Transport | None = None, jsonl: Path | str | None = None,
                 events_db: Path | str | None = None, sources: list[FrameSource] | None = None):
        """`transport` and `sources` default to what the config says; the bench injects its own."""
        self.config = config
        manifest = DEFAULT_STUDENT_MANIFEST if config.student == "default" else Path(config.student)
        self.student = BatchedStudent(load_detector(manifest, threads=config.student_threads))
        self.model_wh = self.student.detector.input_wh
        thresholds = self.student.detector.manifest.thresholds
        self.transport = transport if transport is not None else build_transport(config)
        self.events = EventLog(events_db or config.output.events_db, jsonl or config.output.detections_out)
        self.cameras: dict[str, CameraState] = {}
        for i, cam in enumerate(config.cameras):
            bands = {k: Band(v.accept, v.reject) for k, v in cam.cascade.labels.items()}
            cascade = Cascade(bands, thresholds, cam.cascade.level, cam.cascade.audit_fraction,
                              cam.cascade.budget_per_hour, seed=i)
            self.cameras[cam.id] = CameraState(cam, IouTracker(cam.tracker.iou, cam.tracker.max_age_s), cascade)
        self.sources = sources if sources is not None else [
            open_source(c.id, os.path.expanduser(c.source), c.fps) for c in config.cameras]
        self.stop_event = threading.Event()
        self.errors = 0
        self.metrics_server = None

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, max_batch: int = 8) -> dict:
        out = self.config.output
        metrics = serve_metrics(self.summary, out.metrics_port, out.metrics_host) if out.metrics_port is not None \
            else None
        self.metrics_server = metrics
        feeder = FrameFeeder(self.sources, self.stop_event).start()
        try:
            while (frames := feeder.batch(max_batch)) is not None:
                try:
                    self.process(frames)
                except Exception:  # one bad batch must not stop a gateway that watches many cameras
                    self.errors += 1
                    log.exception("processing %d frame(s) failed; continuing", len(frames))
        finally:
            self.stop_event.set()
            feeder.join()
            if metrics is not None:
                metrics.shutdown()
                metrics.server_close()
            self.close()
        return self.summary()

    def stop(self) -> None:
        self.stop_event.set()

    def process(self, frames: list[SampledFrame]) -> list[FrameEvent]:
        jobs, pending, events = [], [], []
        for frame in frames:
            state = self.cameras[frame.camera]
            state.counters.sampled += 1
            h, w = frame.image.shape[:2]
            if state.gate is None or state.gate.frame_wh != (w, h):
                # First frame, or the camera came back from a reconnect at another resolution.
                state.gate = MotionGate(state.config.motion, (w, h))
                state.last = state.settled = Detections.empty()
            motion = state.gate.detect(frame.image)
            if not motion.has_motion:
                state.counters.motion_skipped += 1
                events.append(self._emit(FrameEvent(frame.camera, frame.frame_index, frame.pts_s, "carried",
                                                    False, state.last, frame.wall_time)))
                continue
            settings = state.config.regions
            if settings.refresh_s and frame.pts_s - state.last_whole_s >= settings.refresh_s:
                # Carried detections live only until the next whole-frame look, so a stale one (a
                # student false positive on a tripod, a car that left unseen) cannot last for ever.
                regions = [Region((0, 0, w, h), whole_frame=True)]
            else:
                regions = plan_regions(motion.boxes, (w, h), self.model_wh, settings.whole_frame_fraction,
                                       settings.margin, max_regions=settings.max_regions)
            if [tuple(r.box) for r in regions] == [(0, 0, w, h)]:
                state.last_whole_s = frame.pts_s
            jobs.append((frame.image, [r.box for r in regions]))
            pending.append((frame, regions, motion.boxes))
        if not jobs:
            return events
        for (frame, regions, moved), dets in zip(pending, self.student.detect(jobs), strict=True):
            events.append(self._decide(frame, regions, moved, dets))
        return events

    def _decide(self, frame: SampledFrame, regions, moved, dets: Detections) -> FrameEvent:
        state = self.cameras[frame.camera]
        c = state.counters
        tracked = state.tracker.update(dets, frame.pts_s)
        decision = state.cascade.decide(tracked, state.tracker, frame.pts_s)
        c.budget_refused += decision.budget_refused
        event = FrameEvent(frame.camera, frame.frame_index, frame.pts_s, "edge", False, decision.edge,
                           frame.wall_time, budget_refused=decision.budget_refused)
        if decision.escalate and self.transport is not None:
            h, w = frame.image.shape[:2]
            boxes = [(0, 0, w, h)] if self.config.escalation.crop == "frame" else [r.box for r in regions]
            try:
                request = build_request(frame.camera, frame.frame_index, frame.pts_s, frame.image, boxes,
                                        decision.reason or "uncertain", decision.edge, self.config.site,
                                        self.config.escalation.jpeg_quality)
                size = len(request.to_bytes())
                c.bytes_sent += size
                c.message_units += -(-size // 5120)
                verdict = self.transport.escalate(request)
            except (TransportError, WireError) as exc:
                c.cloud_failed += 1
                event.cloud_failed = True
                log.warning("camera %s frame %d: cloud unavailable, decided at the edge: %s",
                            frame.camera, frame.frame_index, exc)
            else:
                cloud = Detections.from_records(d.to_payload() for d in verdict.detections())
                state.tracker.confirm(tracked.track_ids, cloud)
                event.detections = self._merge(cloud, decision.edge, boxes, (w, h))
                event.decided_by = "audit" if decision.reason == "audit" else "cloud"
                event.escalated = True
                event.reason = decision.reason
                c.escalated += 1
                c.audit += decision.reason == "audit"
        if not event.escalated:
            c.edge_decided += 1
        # Where nothing moved the previous decision stands: a parked car stays reported although the
        # student, busy with the people walking past, did not find it again in this crop (a
        # whole-frame escalation has already seen everything).
        whole = [tuple(r.box) for r in regions] == [(0, 0, *frame.image.shape[1::-1])]
        looked_everywhere = whole or (event.escalated and self.config.escalation.crop == "frame")
        static = Detections.empty() if looked_everywhere else _with_static(
            Detections.empty(), state.settled, moved)
        settled_now = event.detections if event.escalated else _confident(event.detections, state.cascade.bands)
        event.detections = _with_static(event.detections, static, [])
        state.settled = _with_static(settled_now, static, [])
        return self._emit(event)

    @staticmethod
    def _merge(cloud: Detections, edge: Detections, crops, frame_wh) -> Detections:
        """The cloud's answer inside the escalated crops, the edge's outside them."""
        if crops == [(0, 0, *frame_wh)]:
            return cloud
        return Detections.concat([cloud, _outside(edge, crops)])

    def _emit(self, event: FrameEvent) -> FrameEvent:
        self.cameras[event.camera].last = event.detections
        self.events.write(event)
        return event

    # -- reporting ----------------------------------------------------------------------------------
    def summary(self) -> dict:
        per_camera = {}
        for source in self.sources:
            counters = asdict(self.cameras[source.camera].counters)
            counters.update(corrupt_frames=source.corrupt_frames, reconnects=source.reconnects)
            per_camera[source.camera] = counters
        total = {k: sum(c[k] for c in per_camera.values()) for k in next(iter(per_camera.values()))}
        return {"cameras": per_camera, "total": total, "student_calls": self.student.calls,
                "student_crops": self.student.crops, "errors": self.errors}

    def close(self) -> None:
        for source in self.sources:
            source.close()
        if self.transport is not None:
            self.transport.close()
        self.events.close()


def _with_static(current: Detections, previous: Detections, moved) -> Detections:
    """`current` plus the previous detections that no motion touched and no current one repeats."""
    still = previous[~_touches(previous, moved)] if len(previous) else previous
    if len(still) and len(current):
        iou = box_iou(still.xyxy, current.xyxy)
        same = still.labels[:, None] == current.labels[None, :]
        still = still[~((iou >= 0.3) & same).any(axis=1)]
    return Detections.concat([current, still])


def _confident(dets: Detections, bands) -> Detections:
    """The detections at or above their label's accept threshold."""
    if len(dets) == 0:
        return dets
    accept = np.array([bands[str(lbl)].accept if str(lbl) in bands else 2.0 for lbl in dets.labels], np.float32)
    return dets[dets.scores >= accept]


def _touches(dets: Detections, boxes) -> np.ndarray:
    if not boxes:
        return np.zeros(len(dets), bool)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    d = dets.xyxy
    return ((np.minimum(d[:, None, 2], b[None, :, 2]) > np.maximum(d[:, None, 0], b[None, :, 0]))
            & (np.minimum(d[:, None, 3], b[None, :, 3]) > np.maximum(d[:, None, 1], b[None, :, 1]))).any(axis=1)


def _outside(dets: Detections, boxes) -> Detections:
    """The detections whose centre lies in none of the boxes."""
    if len(dets) == 0 or not boxes:
        return dets
    cx = (dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2
    cy = (dets.xyxy[:, 1] + dets.xyxy[:, 3]) / 2
    inside = sum(((cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)) for x1, y1, x2, y2 in boxes) > 0
    return dets[~inside]


def run_agent(config: AgentConfig, **kwargs) -> dict:
    agent = Agent(config, **kwargs)
    started = time.process_time()
    summary = agent.run()
    summary["cpu_s"] = round(time.process_time() - started, 3)
    return summary
