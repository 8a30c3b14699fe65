"""The agent loop: sources -> motion gate -> regions -> student (batched over cameras) -> tracker ->
cascade -> escalation -> events. One object per camera holds that camera's state."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.detections import Detections
from contracts.wire import WireError
from edge_agent.config import CAMERA_ONLY_FIELDS, AgentConfig, CameraConfig, CameraSettings, ConfigError
from edge_agent.escalation import http as _http_transports  # noqa: F401  (registers url, sagemaker)
from edge_agent.escalation.base import TRANSPORTS, Transport, TransportError
from edge_agent.escalation.crops import build_request
from edge_agent.events import EventLog, FrameEvent, event_message
from edge_agent.feeder import FrameFeeder
from edge_agent.metrics import serve_metrics
from edge_agent.pipeline.carry import centre_inside, confident, outside, with_static
from edge_agent.pipeline.cascade import Band, Cascade
from edge_agent.pipeline.detector import BatchedStudent
from edge_agent.pipeline.motion import MotionGate
from edge_agent.pipeline.regions import Region, plan_regions
from edge_agent.pipeline.sources import FrameSource, SampledFrame, open_source
from edge_agent.pipeline.tracker import IouTracker
from edge_agent.specialization.guard import Limits, StudentGuard
from edge_agent.specialization.rollout import camera_store, installed_student
from models.runtime import Detector, load_detector

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from edge_agent.specialization.loop import SpecializationLoop

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
    own_student: BatchedStudent | None = None  # a per-camera (specialized) student, else the agent's
    guard: StudentGuard = field(default_factory=StudentGuard)  # rolls the own student back if it does worse live
    counters: Counters = field(default_factory=Counters)


def build_transport(config: AgentConfig) -> Transport | None:
    esc = config.escalation
    if esc.transport == "none":
        return None
    if esc.transport in ("mqtt", "iot-core"):
        from edge_agent.escalation.mqtt import build_mqtt_transport

        return build_mqtt_transport(config)
    if esc.transport == "url":
        return TRANSPORTS["url"](esc.url, timeout_s=esc.timeout_s, retries=esc.retries)
    return TRANSPORTS["sagemaker"](esc.endpoint_name, esc.region, esc.endpoint_url, esc.timeout_s, esc.retries)


@dataclass
class Probation:
    """A freshly installed student, watched for `batches_left` live batches; the previous one is kept
    to come back if it fails. `done(None)` once it passed, `done(reason)` after a roll-back."""

    previous: BatchedStudent
    batches_left: int
    done: Callable[[str | None], None]


class Agent:
    def __init__(self, config: AgentConfig, transport: Transport | None = None, jsonl: Path | str | None = None,
                 events_db: Path | str | None = None, sources: list[FrameSource] | None = None):
        """`transport` and `sources` default to what the config says; the bench injects its own."""
        from edge_agent.fleet.models import load_student

        self.config = config
        self.student = BatchedStudent(load_student(config))  # an installed model update wins, if intact
        self.model_wh = self.student.detector.input_wh
        thresholds = self.student.detector.manifest.thresholds
        self.transport = transport if transport is not None else build_transport(config)
        self.events = EventLog(events_db or config.output.events_db, jsonl or config.output.detections_out)
        self.cameras: dict[str, CameraState] = {}
        self.student_rollbacks = 0
        for i, cam in enumerate(config.cameras):
            bands = {k: Band(v.accept, v.reject) for k, v in cam.cascade.labels.items()}
            cascade = Cascade(bands, thresholds, cam.cascade.level, cam.cascade.audit_fraction,
                              cam.cascade.budget_per_hour, seed=i, nothing_ttl_s=cam.cascade.nothing_ttl_s,
                              nothing_rise=cam.cascade.nothing_rise)
            self.cameras[cam.id] = CameraState(cam, IouTracker(cam.tracker.iou, cam.tracker.max_age_s), cascade)
            own = self._camera_student(cam)
            if own is not None:
                self.use_camera_student(cam.id, *own)
        self.specialization: SpecializationLoop | None = None
        if config.specialization.enabled:
            self._start_collecting()
        try:
            self.sources = sources if sources is not None else [
                open_source(c.id, os.path.expanduser(c.source), c.fps) for c in config.cameras]
        except Exception:
            if self.transport is not None:  # an MQTT link is connecting already: do not leave it behind
                self.transport.close()
            raise
        self.stop_event = threading.Event()
        self.errors = 0
        self.metrics_server: ThreadingHTTPServer | None = None
        self._control: queue.SimpleQueue[Callable[[list[SampledFrame]], None]] = queue.SimpleQueue()
        self._probation: Probation | None = None
        self.started_s = time.time()
        self.link = getattr(self.transport, "link", None)  # the MQTT connection, for events and the fleet
        self.fleet = None
        if self.link is not None:
            from edge_agent.fleet import Fleet

            self.fleet = Fleet(self, self.link).start()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, max_batch: int = 8) -> dict:
        out = self.config.output
        metrics = serve_metrics(self.summary, out.metrics_port, out.metrics_host) if out.metrics_port is not None \
            else None
        self.metrics_server = metrics
        feeder = FrameFeeder(self.sources, self.stop_event).start()
        if self.specialization is not None:
            self.specialization.start()
        last: dict[str, SampledFrame] = {}  # each camera's latest frame
        try:
            while (frames := feeder.batch(max_batch)) is not None:
                self.run_control(frames)
                try:
                    self.process(frames)
                except Exception:  # one bad batch must not stop a gateway that watches many cameras
                    self.errors += 1
                    log.exception("processing %d frame(s) failed; continuing", len(frames))
                last.update((f.camera, f) for f in frames)
            if self.specialization is not None and not self.stop_event.is_set():
                self._finish_specialization(list(last.values()))
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

    def _finish_specialization(self, frames: list[SampledFrame]) -> None:
        """The sources ended (files) while a camera was specializing: let it finish, and check a promoted
        student on each camera's last frames, so the next run starts with it. A stop request ends the wait."""
        loop = self.specialization
        if loop is None or loop.busy is None:
            return
        log.info("the sources ended while camera %s was specializing; waiting for it (stop the agent to skip)",
                 loop.busy)
        while loop.busy is not None and not self.stop_event.wait(0.2):
            self.run_control(frames)
        self.run_control(frames)

    # -- changes from other threads, applied by the loop between batches ---------------------------
    def submit(self, action: Callable[[list[SampledFrame]], None]) -> None:
        """Run `action(frames)` on the loop's thread before the next batch (`frames`: that batch, live
        frames a change can be checked on). Thread-safe; the one way other threads change the agent."""
        self._control.put(action)

    def run_control(self, frames: list[SampledFrame]) -> None:
        for _ in range(self._control.qsize()):  # what is queued now; an action may queue a retry for later
            try:
                action = self._control.get_nowait()
            except queue.Empty:
                return
            try:
                action(frames)
            except Exception:  # a bad change must not stop the cameras
                log.exception("a queued change failed; the agent keeps its previous state")

    def apply_settings(self, settings: dict[str, CameraSettings], done: Callable[[], None] | None = None) -> None:
        """New settings for some cameras (validated already: the device shadow does it), applied between
        batches without a restart; tracks, budgets and motion backgrounds carry over."""
        unknown = sorted(set(settings) - set(self.cameras))
        if unknown:
            raise ValueError(f"unknown camera ids {unknown}; this agent runs {sorted(self.cameras)}")

        def apply(_frames: list[SampledFrame]) -> None:
            for camera, new in settings.items():
                self._apply_camera(self.cameras[camera], new)
            if done is not None:
                done()

        self.submit(apply)

    def _apply_camera(self, state: CameraState, new: CameraSettings) -> None:
        old = state.config
        state.config = CameraConfig.model_validate({**new.model_dump(),
                                                    **old.model_dump(include=set(CAMERA_ONLY_FIELDS))})
        cascade, c = state.cascade, new.cascade
        cascade.bands = {k: Band(v.accept, v.reject) for k, v in c.labels.items()}
        cascade.level, cascade.audit_fraction = c.level, c.audit_fraction
        if cascade.budget.per_hour != c.budget_per_hour:
            cascade.budget.per_hour = c.budget_per_hour
            cascade.budget.tokens = min(cascade.budget.tokens, float(c.budget_per_hour))
        state.tracker.iou_threshold, state.tracker.max_age_s = new.tracker.iou, new.tracker.max_age_s
        if new.motion != old.motion and state.gate is not None:
            gate = MotionGate(new.motion, state.gate.frame_wh)
            if gate.small_wh == state.gate.small_wh:  # keep the learnt background: no burst of false motion
                gate._background = state.gate._background
            state.gate = gate
        if new.fps != old.fps:
            for source in self.sources:
                if source.camera == old.id:
                    source.set_fps(new.fps)
        log.info("camera %s: settings applied live", old.id)

    def install_student(self, detector: Detector, probation_batches: int,
                        done: Callable[[str | None], None]) -> None:
        """Use `detector` from now on (call on the loop's thread, inside a `submit` action). The previous
        student comes back if the new one fails on one of the next `probation_batches` batches."""
        previous = self.student
        self._use_student(BatchedStudent(detector))
        self._probation = Probation(previous, probation_batches, done)
        log.info("student %s %s installed; on probation for %d batch(es)", detector.manifest.name,
                 detector.manifest.version, probation_batches)

    def _use_student(self, student: BatchedStudent) -> None:
        self.student = student
        self.model_wh = student.detector.input_wh
        for state in self.cameras.values():
            if state.own_student is None:
                state.cascade.student_thresholds = student.detector.manifest.thresholds

    # -- per-camera students ------------------------------------------------------------------------
    def _camera_student(self, cam: CameraConfig) -> tuple[Detector, Limits, dict | None] | None:
        """A student rolled out to this camera (by the loop or a job; it wins: it was trained from the
        configured one), else the config's own `student`; both sha256-verified: a tampered one never runs."""
        installed = installed_student(self.config.fleet.models_dir, cam.id, self.config.student_threads)
        if installed is not None:
            return installed
        if cam.student:
            detector = load_detector(Path(os.path.expanduser(cam.student)), threads=self.config.student_threads)
            return detector, Limits(cam.student_max_escalation, cam.student_max_audit_disagreement), None
        return None

    def use_camera_student(self, camera: str, detector: Detector, limits: Limits, bands: dict | None = None) -> None:
        """Give one camera its own student, watched against `limits`, with its own cascade `bands`
        ({accept, reject} for every label) if given (on the loop's thread)."""
        state = self.cameras[camera]
        state.own_student = BatchedStudent(detector)
        if bands:
            state.cascade.bands = {label: Band(bands["accept"], bands["reject"]) for label in state.cascade.bands}
        state.cascade.student_thresholds = detector.manifest.thresholds
        state.cascade.warmup_audit_fraction = 0.0
        state.guard.watch(limits)

    def _roll_back_camera(self, state: CameraState, reason: str) -> None:
        version = state.own_student.detector.manifest.version if state.own_student else None
        log.error("camera %s: its own student %s goes: %s; back to the agent's student", state.config.id,
                  version, reason)
        state.own_student = None
        state.cascade.student_thresholds = self.student.detector.manifest.thresholds
        state.cascade.bands = {k: Band(v.accept, v.reject) for k, v in state.config.cascade.labels.items()}
        state.guard.watch(Limits())
        self.student_rollbacks += 1
        try:
            camera_store(self.config.fleet.models_dir, state.config.id).deactivate()  # a restart must not revive it
        except OSError as exc:
            log.error("camera %s: could not deactivate its rolled-back student: %s", state.config.id, exc)
        if self.specialization is not None:
            self.specialization.rolled_back(state.config.id, reason)

    def _start_collecting(self) -> None:
        """Keep the teacher's answers as training records and run the specialization loop."""
        import importlib.util

        from edge_agent.escalation.collect import CollectingTransport
        from edge_agent.specialization.loop import SpecializationLoop

        if importlib.util.find_spec("torch") is None:
            raise ConfigError("specialization.enabled: training on this gateway needs PyTorch, the train extra "
                              "(pip install 'framesieve[train]'); or turn it off and let the cloud train from the "
                              "records the router keeps in S3")
        self.specialization = loop = SpecializationLoop(self, self.config.specialization)
        if self.transport is not None:
            self.transport = CollectingTransport(self.transport, loop.records_dir, on_record=loop.record_kept)
        for camera, state in self.cameras.items():
            if state.own_student is None and loop.in_warmup(camera):
                state.cascade.warmup_audit_fraction = self.config.specialization.warmup_audit_fraction

    def _detect_all(self, pending, jobs) -> list[Detections]:
        """The agent's student for most cameras (one batched call), each specialized one for its own."""
        out: list[Detections | None] = [None] * len(jobs)
        groups: dict[str, list[int]] = {}
        for k, (frame, _regions, _moved) in enumerate(pending):
            has_own = self.cameras[frame.camera].own_student is not None
            groups.setdefault(frame.camera if has_own else "", []).append(k)
        for camera, indices in groups.items():
            batch = [jobs[k] for k in indices]
            own = self.cameras[camera].own_student if camera else None
            found = own.detect(batch) if own is not None else self._detect(batch)
            for k, dets in zip(indices, found, strict=True):
                out[k] = dets
        return out  # type: ignore[return-value]

    def _detect(self, jobs) -> list[Detections]:
        probation = self._probation
        if probation is None:
            return self.student.detect(jobs)
        try:
            out = self.student.detect(jobs)
        except Exception as exc:
            self._probation = None
            self._use_student(probation.previous)
            log.error("the new student failed on a live batch (%s); rolled back to %s %s", exc,
                      self.student.detector.manifest.name, self.student.detector.manifest.version)
            probation.done(f"the new model failed on a live batch and was rolled back: {exc}")
            return self.student.detect(jobs)
        probation.batches_left -= 1
        if probation.batches_left <= 0:
            self._probation = None
            probation.done(None)
        return out

    def model_info(self) -> dict[str, str]:
        m = self.student.detector.manifest
        return {"name": m.name, "version": m.version, "sha256": m.sha256}

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
                model_wh = state.own_student.detector.input_wh if state.own_student else self.model_wh
                regions = plan_regions(motion.boxes, (w, h), model_wh, settings.whole_frame_fraction,
                                       settings.margin, max_regions=settings.max_regions)
            if [tuple(r.box) for r in regions] == [(0, 0, w, h)]:
                state.last_whole_s = frame.pts_s
            jobs.append((frame.image, [r.box for r in regions]))
            pending.append((frame, regions, motion.boxes))
        if not jobs:
            return events
        for (frame, regions, moved), dets in zip(pending, self._detect_all(pending, jobs), strict=True):
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
                state.tracker.confirm(tracked.track_ids, cloud, frame.pts_s)
                event.detections = self._merge(cloud, decision.edge, boxes, (w, h))
                event.decided_by = "audit" if decision.reason == "audit" else "cloud"
                event.escalated = True
                event.reason = decision.reason
                c.escalated += 1
                c.audit += decision.reason == "audit"
                if decision.reason == "audit":  # the edge's answer, checked: did it say what the teacher said?
                    inside = decision.edge[centre_inside(decision.edge, boxes)]
                    state.guard.audit({str(x) for x in inside.labels} != {str(x) for x in cloud.labels
                                                                          if str(x) in state.cascade.bands})
        if not event.escalated:
            c.edge_decided += 1
        state.guard.frame(decision.reason == "uncertain")
        if state.own_student is not None and (breach := state.guard.breach()):
            self._roll_back_camera(state, breach)
        # Where nothing moved the previous decision stands: a parked car stays reported although the
        # student, busy with the people walking past, did not find it again in this crop (a
        # whole-frame escalation has already seen everything).
        whole = [tuple(r.box) for r in regions] == [(0, 0, *frame.image.shape[1::-1])]
        looked_everywhere = whole or (event.escalated and self.config.escalation.crop == "frame")
        static = Detections.empty() if looked_everywhere else with_static(
            Detections.empty(), state.settled, moved)
        settled_now = event.detections if event.escalated else confident(event.detections, state.cascade.bands)
        event.detections = with_static(event.detections, static, [])
        state.settled = with_static(settled_now, static, [])
        return self._emit(event)

    @staticmethod
    def _merge(cloud: Detections, edge: Detections, crops, frame_wh) -> Detections:
        """The cloud's answer inside the escalated crops, the edge's outside them."""
        if crops == [(0, 0, *frame_wh)]:
            return cloud
        return Detections.concat([cloud, outside(edge, crops)])

    def _emit(self, event: FrameEvent) -> FrameEvent:
        self.cameras[event.camera].last = event.detections
        if self.link is not None:  # spooled first, so whatever the local log holds the cloud gets, crash or not
            try:
                message = event_message(event, self.config.site)
                self.link.send_later("event", message.message_id, self.link.topics.events, message.to_bytes())
            except Exception:
                log.exception("camera %s frame %d: event not queued for the cloud", event.camera, event.frame_index)
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
        own = [c.own_student for c in self.cameras.values() if c.own_student is not None]
        out = {"cameras": per_camera, "total": total, "student_calls": self.student.calls + sum(o.calls for o in own),
               "student_crops": self.student.crops + sum(o.crops for o in own), "errors": self.errors,
               "student_rollbacks": self.student_rollbacks,
               # which cameras run a student of their own, and the live share their guard watches
               "students": {cid: {"own": s.own_student.detector.manifest.version if s.own_student else None,
                                  "uncertain_fraction": s.guard.escalation_fraction()}
                            for cid, s in self.cameras.items()}}
        if self.specialization is not None:
            out["specialization"] = self.specialization.summary()
        if self.link is not None:  # in-memory counters only: this runs after close() too
            transport_stats = self.transport.stats() if self.transport is not None else {}
            out["mqtt"] = {**transport_stats, "spool_rows": self.link.spool.rows,
                           "spool_bytes": self.link.spool.bytes, "spool_sent": self.link.sender.sent,
                           "reconnects": max(0, self.link.connection.connects - 1), "model": self.model_info()}
        return out

    def close(self) -> None:
        if self.specialization is not None:
            self.specialization.close()
        for source in self.sources:
            source.close()
        if self.fleet is not None:
            self.fleet.close()
        if self.transport is not None:
            self.transport.close()
        self.events.close()

