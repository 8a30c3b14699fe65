"""One camera's pipeline, run on the agent's loop thread: `look` (motion gate, regions: where should the
student look?) and `settle` (tracker, cascade, the cloud when unsure, carry: what is the frame's final
answer?). Everything that changes a camera goes through its public methods: live settings, its own
student and its rollback, the warm-up. A camera without a proven student of its own onboards
(pipeline/onboarding.py): every frame with motion goes to the cloud, and a still scene at its check interval.

The student itself runs between the two steps, in the agent, batched over cameras.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from contracts.detections import Detections
from contracts.jobs import Bands
from edge_agent.app.escalate import Answer, Escalator, Ticket
from edge_agent.app.look import Counters, Look
from edge_agent.config import CAMERA_ONLY_FIELDS, CameraConfig, CameraSettings
from edge_agent.control import CameraStatus, ModelInfo
from edge_agent.events import FrameEvent
from edge_agent.pipeline.carry import carry, centre_inside, confident
from edge_agent.pipeline.cascade import Cascade, Decision
from edge_agent.pipeline.detect_size import DetectSize, detect_size
from edge_agent.pipeline.detector import BatchedStudent
from edge_agent.pipeline.motion import MotionGate
from edge_agent.pipeline.regions import plan_regions, whole_frame_regions
from edge_agent.pipeline.sources import SampledFrame
from edge_agent.pipeline.tracker import IouTracker
from edge_agent.students.guard import Limits, StudentGuard
from models.runtime import Detector

log = logging.getLogger(__name__)
# Advice for the installer (an oversized detect stream): its own logger, so an operator can route or quiet it
# alone (a camera's `regions.oversize_hint: false` silences it at the source; the benches set that).
advice = logging.getLogger("edge_agent.advice")
Box = tuple[int, int, int, int]


@dataclass
class Step:
    """A frame the cascade has decided, before its final answer (the cloud's, when it was asked). Holds no
    image: a frame waiting for the cloud costs a few hundred bytes."""

    event: FrameEvent
    tracked: Detections
    decision: Decision
    moved: Sequence[Sequence[int]]
    whole_frame: bool
    ticket: Ticket | None = None

    def ready(self) -> bool:
        return self.ticket is None or self.ticket.done()


class CameraPipeline:
    def __init__(self, config: CameraConfig, student_thresholds: dict[str, float], seed: int = 0):
        self.config = config
        c = config.cascade
        self.tracker = IouTracker(config.tracker.iou, config.tracker.max_age_s)
        self.cascade = Cascade(dict(c.labels), student_thresholds, c.level, c.audit_fraction, c.budget_per_hour,
                               seed=seed, nothing_ttl_s=c.nothing_ttl_s, nothing_rise=c.nothing_rise)
        self.gate: MotionGate | None = None
        self.last = Detections.empty()  # the previous final decision, carried where nothing moves
        # The settled part of it: cloud answers and confident edge detections. Only these are carried into
        # areas without motion; an uncertain guess is never carried, or it would outlive its evidence.
        self.settled = Detections.empty()
        self.last_whole_s = float("-inf")  # when the student last looked at the whole frame
        self.own_student: BatchedStudent | None = None  # a per-camera (specialized) student, else the agent's
        self.own_bands: Bands | None = None  # that student's own operating point, kept across live settings
        self.guard = StudentGuard()  # rolls the own student back if it does worse live
        self.counters = Counters()
        self.detect_size: DetectSize | None = None  # the decoded frame against the student's input
        self._size_key: tuple | None = None  # (frame w, h, student input) it was computed for
        self._hinted: set[tuple] = set()  # the sizes the installer was told about (once each)
        self._onboard()

    @property
    def id(self) -> str:
        return self.config.id

    # -- the two steps -------------------------------------------------------------------------------
    def look(self, frame: SampledFrame, model_wh: tuple[int, int]) -> Look | FrameEvent:
        """Where the student should look in `frame`, or, where nothing moved, the frame's final event:
        the previous decision carried."""
        self.counters.sampled += 1
        h, w = frame.image.shape[:2]
        if self.own_student is not None:
            model_wh = self.own_student.detector.input_wh
        if self.gate is None or self.gate.frame_wh != (w, h):
            # First frame, or the camera came back from a reconnect at another resolution.
            self.gate = MotionGate(self.config.motion, (w, h))
            self.last = self.settled = Detections.empty()
        if self._size_key != (w, h, tuple(model_wh)):  # ... or another student, or new settings
            self._check_size((w, h), model_wh)
        motion = self.gate.detect(frame.image)
        onboarding = self.cascade.onboarding
        still_check = not motion.has_motion and onboarding.still_check_due(frame.pts_s)
        if not motion.has_motion and not still_check:
            self.counters.motion_skipped += 1
            return FrameEvent(frame.camera, frame.frame_index, frame.pts_s, "carried", False, self.last,
                              frame.wall_time)
        if onboarding.active:
            onboarding.sent(frame.pts_s)  # now, not at the decision: a batch may hold more of this camera's frames
        s = self.config.regions
        if still_check or (s.refresh_s and frame.pts_s - self.last_whole_s >= s.refresh_s):
            # Carried detections live only until the next whole-frame look, so a stale one (a student
            # false positive on a tripod, a car that left unseen) cannot last for ever.
            regions = whole_frame_regions((w, h), model_wh, s.max_downscale)
        else:
            regions = plan_regions(motion.boxes, (w, h), model_wh, s.whole_frame_fraction, s.margin,
                                   max_regions=s.max_regions, max_downscale=s.max_downscale)
        look = Look(frame, regions, motion.boxes)
        if look.whole_frame:
            self.last_whole_s = frame.pts_s
        return look

    def _check_size(self, frame_wh: tuple[int, int], model_wh: tuple[int, int]) -> None:
        """The decoded frame against the student's input; an oversized detect stream is said once per
        camera and size (pipeline/detect_size.py), unless `regions.oversize_hint` is off."""
        s = self.config.regions
        self._size_key = (*frame_wh, tuple(model_wh))
        self.detect_size = size = detect_size(frame_wh, model_wh, s.max_downscale)
        if size.oversized and s.oversize_hint and self._size_key not in self._hinted:
            self._hinted.add(self._size_key)
            advice.warning(size.hint(self.id, self.config.escalation_source is not None),
                           extra={"event": "detect_stream_oversized", "camera": self.id, **size.to_dict()})

    def settle(self, look: Look, dets: Detections, escalator: Escalator | None) -> FrameEvent:
        """The frame's final event from the student's detections, the cloud asked (and awaited) when unsure."""
        step = self.decide(look, dets)
        if step.decision.escalate and escalator is not None:
            step.ticket = escalator.start(look, step.decision, self.counters)
        return self.finish(step, escalator)

    def decide(self, look: Look, dets: Detections) -> Step:
        """Tracked and decided by the cascade: whether to ask the cloud."""
        frame = look.frame
        tracked = self.tracker.update(dets, frame.pts_s)
        decision = self.cascade.decide(tracked, self.tracker, frame.pts_s)
        self.counters.budget_refused += decision.budget_refused
        event = FrameEvent(frame.camera, frame.frame_index, frame.pts_s, "edge", False, decision.edge,
                           frame.wall_time, budget_refused=decision.budget_refused)
        return Step(event, tracked, decision, look.moved, look.whole_frame)

    def finish(self, step: Step, escalator: Escalator | None) -> FrameEvent:
        """The frame's final event: the cloud's answer if it came, and the settled past carried where
        nothing moved. In frame order per camera (the agent holds a camera's later frames until then)."""
        event, decision, c, ticket = step.event, step.decision, self.counters, step.ticket
        answer = escalator.collect(ticket, decision, c) if ticket is not None and escalator is not None else None
        if ticket is not None and answer is None:
            event.cloud_failed, event.fallback = True, ticket.fallback or "cloud_failed"
        if answer is not None:
            self.tracker.confirm(step.tracked.track_ids, answer.cloud, event.pts_s)
            event.detections, event.escalated, event.reason = answer.merged, True, decision.reason
            event.decided_by = "audit" if decision.reason == "audit" else "cloud"
            c.escalated += 1
            if decision.reason == "audit":  # the edge's answer, checked: did it say what the teacher said?
                c.audit += 1
                self.guard.audited(*self._labels(decision.edge, answer), set(self.cascade.bands))
        else:
            c.edge_decided += 1
        self.guard.frame(decision.reason == "uncertain" or decision.uncertain)  # onboarding: would it have?
        looked_everywhere = step.whole_frame or (answer is not None and answer.whole_frame)
        sure = event.detections if event.escalated else confident(event.detections, self.cascade.bands)
        event.detections, self.settled = carry(event.detections, sure, self.settled, step.moved, looked_everywhere)
        self.last = event.detections
        return event

    def student_failed(self, look: Look) -> FrameEvent:
        """The student failed on this frame's batch: decided at the edge on the settled past (filled in by
        `fill`, in frame order), flagged and counted; the frame is never dropped."""
        frame = look.frame
        self.counters.student_failed += 1
        self.counters.edge_decided += 1
        return FrameEvent(frame.camera, frame.frame_index, frame.pts_s, "edge", False, Detections.empty(),
                          frame.wall_time, fallback="student_failed")

    def fill(self, event: FrameEvent) -> FrameEvent:
        """A frame decided without the student (carried, or its student failed) takes the camera's past now,
        in frame order: after the frames before it got their answers."""
        event.detections = self.settled if event.fallback == "student_failed" else self.last
        self.last = event.detections
        return event

    @staticmethod
    def _labels(edge: Detections, answer: Answer) -> tuple[set[str], set[str]]:
        """(what the edge said, what the teacher said) inside the audited crops."""
        inside = edge[centre_inside(edge, answer.crops)]
        return {str(x) for x in inside.labels}, {str(x) for x in answer.cloud.labels}

    # -- changes, on the loop's thread ----------------------------------------------------------------
    def reconfigure(self, new: CameraSettings) -> None:
        """Live settings; tracks, the budget's tokens and the learnt motion background carry over."""
        old = self.config
        self.config = CameraConfig.model_validate({**new.model_dump(),
                                                   **old.model_dump(include=set(CAMERA_ONLY_FIELDS))})
        c = new.cascade
        # A camera running its own student keeps that student's operating point: the fleet's settings set
        # the bands the camera returns to on a rollback, not the ones its promoted student was judged at.
        self.cascade.bands = dict(c.labels) if self.own_bands is None else dict.fromkeys(c.labels, self.own_bands)
        self.cascade.level, self.cascade.audit_fraction = c.level, c.audit_fraction
        self.cascade.budget.resize(c.budget_per_hour)
        self.tracker.iou_threshold, self.tracker.max_age_s = new.tracker.iou, new.tracker.max_age_s
        if self.own_student is not None and self.guard.limits.audit_fraction:  # what its recall test needs
            self.cascade.audit_fraction = max(c.audit_fraction, self.guard.limits.audit_fraction)
        self._onboard()
        self._size_key = None  # regions.max_downscale or oversize_hint may have changed: checked again
        if new.motion != old.motion and self.gate is not None:
            self.gate = self.gate.reconfigured(new.motion)
        log.info("camera %s: settings applied live", old.id)

    def use_student(self, detector: Detector, limits: Limits, bands: Bands | None = None) -> None:
        """Its own student from now on, watched against `limits`, at its own `bands` (every label) if given."""
        self.own_student = BatchedStudent(detector)
        self.own_bands = bands
        if bands is not None:
            self.cascade.bands = dict.fromkeys(self.cascade.bands, bands)
        self.cascade.student_thresholds = detector.manifest.thresholds
        self.cascade.warmup_audit_fraction = 0.0
        if limits.audit_fraction:  # the share its recall test was sized for
            self.cascade.audit_fraction = max(self.config.cascade.audit_fraction, limits.audit_fraction)
        self.guard.watch(limits)
        self._onboard()

    def drop_student(self, agent_thresholds: dict[str, float]) -> None:
        """Back to the agent's student, at the camera's configured bands."""
        self.own_student = None
        self.own_bands = None
        self.cascade.student_thresholds = agent_thresholds
        self.cascade.bands = dict(self.config.cascade.labels)
        self.cascade.audit_fraction = self.config.cascade.audit_fraction
        self.guard.watch(Limits())
        self._onboard()  # back to onboarding: the cloud decides and the records start again

    def _onboard(self) -> None:
        """A camera without a proven student of its own onboards, unless its config opts out."""
        settings = self.config.onboarding
        self.cascade.onboarding.active = settings.enabled and self.own_student is None
        self.cascade.onboarding.still_check_s = settings.still_check_s

    @property
    def onboarding(self) -> bool:
        return self.cascade.onboarding.active

    def start_warmup(self, audit_fraction: float) -> None:
        self.cascade.warmup_audit_fraction = audit_fraction

    def end_warmup(self) -> None:
        self.cascade.warmup_audit_fraction = 0.0

    def status(self) -> CameraStatus:
        own = self.own_student
        return CameraStatus(self.config, asdict(self.counters), ModelInfo.of(own.detector) if own else None,
                            self.guard.limits, self.guard.escalation_fraction(),
                            self.cascade.warmup_audit_fraction > 0,
                            self.detect_size.to_dict() if self.detect_size is not None else None)
