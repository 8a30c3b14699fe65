"""One camera's decision flow without a model or a cloud: synthetic frames, the student's detections
given, a fake transport that answers (or fails) as told. Fast tier."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.detections import Detections
from contracts.jobs import Bands
from contracts.wire import CropVerdict, DetectionRecord, EscalationRequest, Verdict
from edge_agent.app.camera import CameraPipeline
from edge_agent.app.escalate import Escalator
from edge_agent.app.look import Look
from edge_agent.config import CameraConfig, CameraSettings, CascadeSettings, EscalationSettings
from edge_agent.escalation.base import Transport, TransportError
from edge_agent.pipeline.sources import SampledFrame
from edge_agent.students.guard import Limits
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.runtime import load_detector

W, H = 640, 480
THRESHOLDS = {"person": 0.3, "vehicle": 0.3}
# Bands of the cases below (not the shipped defaults, which leaving one scene out chooses and may move)
BANDS = {"person": {"accept": 0.5, "reject": 0.2}, "vehicle": {"accept": 0.5, "reject": 0.2}}


class FakeCloud(Transport):
    """Answers every escalation with `answer` (source pixels), or fails when `answer` is None."""

    def __init__(self, answer: list[DetectionRecord] | None):
        self.answer = answer
        self.requests: list[EscalationRequest] = []

    def escalate(self, request: EscalationRequest) -> Verdict:
        self.requests.append(request)
        if self.answer is None:
            raise TransportError("the cloud is down")
        return Verdict(request.message_id, request.camera, request.frame_index, "teacher@1",
                       (CropVerdict(0, tuple(self.answer)),))


def frame(index: int, boxes=()) -> SampledFrame:
    """A grey frame with white rectangles where something is."""
    image = np.full((H, W, 3), 60, np.uint8)
    for x1, y1, x2, y2 in boxes:
        image[y1:y2, x1:x2] = 255
    return SampledFrame("cam", index, float(index), image, 1000.0 + index)


def dets(*found: tuple[str, float, tuple[float, float, float, float]]) -> Detections:
    return Detections.from_wire(DetectionRecord(label, score, box) for label, score, box in found)


def camera(**cascade) -> CameraPipeline:
    config = CameraConfig.model_validate({"id": "cam", "source": "x", "regions": {"refresh_s": 0},
                                          "cascade": {"audit_fraction": 0.0, "labels": BANDS, **cascade},
                                          "onboarding": {"enabled": False}})  # the student's cascade, decided
    return CameraPipeline(config, THRESHOLDS)


def still(cam: CameraPipeline, start: int, boxes) -> int:
    """Show the same picture until the motion gate has learnt it (its background is a running average);
    returns the next frame index."""
    for index in range(start, start + 30):
        if not isinstance(cam.look(frame(index, boxes), (160, 96)), Look):
            return index + 1
    raise AssertionError("the picture never became background")


def moved(cam: CameraPipeline, index: int, boxes) -> Look:
    look = cam.look(frame(index, boxes), (160, 96))
    assert isinstance(look, Look), "the synthetic motion was not seen"
    return look


def escalator(cloud: Transport, crop: str = "frame") -> Escalator:
    return Escalator(cloud, EscalationSettings(crop=crop), "site-1")


def test_no_motion_carries_the_previous_decision_and_runs_nothing():
    cam = camera()
    assert isinstance(cam.look(frame(0), (160, 96)), Look)  # the first frame is all new
    cam.settle(moved(cam, 1, [(40, 40, 80, 120)]), dets(("person", 0.9, (40, 40, 80, 120))), None)
    after = still(cam, 2, [(40, 40, 80, 120)])  # the same picture again, until it is background
    carried = cam.look(frame(after, [(40, 40, 80, 120)]), (160, 96))
    assert not isinstance(carried, Look)
    assert carried.decided_by == "carried" and carried.detections.labels.tolist() == ["person"]
    assert cam.counters.sampled == after + 1 and cam.counters.motion_skipped == 2


def test_an_uncertain_frame_is_asked_of_the_cloud_and_its_answer_is_the_decision():
    cam = camera()
    cam.look(frame(0), (160, 96))
    cloud = FakeCloud([DetectionRecord("person", 0.8, (100.0, 50.0, 140.0, 150.0))])
    event = cam.settle(moved(cam, 1, [(100, 50, 140, 150)]), dets(("person", 0.35, (98, 52, 141, 149))),
                       escalator(cloud))
    assert (event.decided_by, event.escalated, event.reason) == ("cloud", True, "uncertain")
    (answer,) = event.detections.to_wire()
    assert (answer.label, answer.box, answer.score) == ("person", (100.0, 50.0, 140.0, 150.0), pytest.approx(0.8))
    assert len(cloud.requests) == 1 and cloud.requests[0].crops[0].box == (0.0, 0.0, W, H)  # the whole frame
    c = cam.counters
    assert (c.escalated, c.edge_decided, c.cloud_failed) == (1, 0, 0) and c.bytes_sent > 0 and c.message_units >= 1
    # the track now carries the cloud's label: the same uncertain person is not asked about again
    again = cam.settle(moved(cam, 2, [(102, 50, 142, 150)]), dets(("person", 0.35, (100, 52, 143, 149))),
                       escalator(cloud))
    assert not again.escalated and len(cloud.requests) == 1


def test_the_cloud_down_is_counted_and_the_edge_decides_with_its_best_guess():
    cam = camera()
    cam.look(frame(0), (160, 96))
    event = cam.settle(moved(cam, 1, [(100, 50, 140, 150)]), dets(("person", 0.35, (98, 52, 141, 149))),
                       escalator(FakeCloud(None)))
    assert (event.decided_by, event.escalated, event.cloud_failed) == ("edge", False, True)
    assert event.detections.labels.tolist() == ["person"]  # 0.35 is above the student's calibrated 0.3
    assert (cam.counters.cloud_failed, cam.counters.edge_decided) == (1, 1)


def test_settled_detections_stay_where_nothing_moved_and_guesses_do_not():
    cam = camera()
    cam.look(frame(0), (160, 96))
    parked, walker = (20, 300, 180, 400), (400, 80, 440, 240)
    first = moved(cam, 1, [parked, walker])
    cam.settle(first, dets(("vehicle", 0.9, parked), ("person", 0.4, walker)), None)  # car sure, walker a guess
    after = still(cam, 2, [parked, walker])
    # only the walker moves now, and the student, looking at the walker's crop, does not see the car
    later = cam.look(frame(after, [parked, (420, 80, 460, 240)]), (160, 96))
    assert isinstance(later, Look) and not later.whole_frame
    event = cam.settle(later, dets(), None)
    assert event.detections.labels.tolist() == ["vehicle"]  # the confident car carried, the guess not


def test_an_audit_that_disagrees_with_the_teacher_counts_against_the_student():
    cam = camera(audit_fraction=1.0, labels={"person": {"accept": 0.5, "reject": 0.2}})
    cam.look(frame(0), (160, 96))
    cloud = FakeCloud([])  # the teacher sees nobody
    event = cam.settle(moved(cam, 1, [(100, 50, 140, 150)]), dets(("person", 0.9, (100, 50, 140, 150))),
                       escalator(cloud))
    assert event.decided_by == "audit" and cam.counters.audit == 1
    assert list(cam.guard.audits) == [True] and list(cam.guard.uncertain) == [False]


def test_live_settings_keep_the_motion_background_and_never_grow_the_budget():
    cam = camera(budget_per_hour=100)
    cam.look(frame(0), (160, 96))
    cam.cascade.budget.tokens = 7.0
    background = cam.gate._background
    new = CameraSettings.model_validate({"fps": 2, "motion": {"threshold": 30},
                                         "cascade": {"budget_per_hour": 50,
                                                     "labels": {"person": {"accept": 0.8, "reject": 0.3}}}})
    cam.reconfigure(new)
    assert cam.gate._background is background  # no burst of false motion after a change
    assert (cam.cascade.budget.per_hour, cam.cascade.budget.tokens) == (50, 7.0)
    cam.reconfigure(CameraSettings.model_validate({"cascade": {"budget_per_hour": 5}}))
    assert cam.cascade.budget.tokens == 5.0
    assert cam.cascade.bands["person"] == CascadeSettings().labels["person"]  # the defaults of the newest settings
    assert cam.config.id == "cam" and cam.config.source == "x"  # identity is never a live setting


def test_a_camera_student_brings_its_bands_and_a_rollback_restores_the_cameras():
    cam = camera(labels={"person": {"accept": 0.6, "reject": 0.2}})
    own = load_detector(CENTERNET_STUDENT_MANIFEST)
    cam.start_warmup(0.25)
    cam.use_student(own, Limits(max_escalation=0.3), Bands(accept=0.7, reject=0.1))
    status = cam.status()
    assert status.own_student is not None and status.limits.max_escalation == 0.3 and not status.warming_up
    assert cam.cascade.bands["person"] == Bands(accept=0.7, reject=0.1)
    cam.drop_student({"person": 0.25})
    assert cam.own_student is None and cam.cascade.bands["person"] == Bands(accept=0.6, reject=0.2)
    assert cam.cascade.student_thresholds == {"person": 0.25} and cam.guard.limits == Limits()


@pytest.mark.parametrize("crop", ["frame", "regions"])
def test_an_escalation_sends_what_escalation_crop_says(crop):
    cam = camera()
    cam.look(frame(0), (160, 96))
    cloud = FakeCloud([])
    look = moved(cam, 1, [(100, 50, 140, 150)])
    cam.settle(look, dets(("person", 0.35, (98, 52, 141, 149))), escalator(cloud, crop))
    sent = [c.box for c in cloud.requests[0].crops]
    assert sent == ([(0.0, 0.0, W, H)] if crop == "frame" else [tuple(map(float, r.box)) for r in look.regions])


def test_a_whole_frame_look_at_a_large_frame_is_tiles_and_counts_as_whole():
    config = CameraConfig.model_validate({"id": "cam", "source": "x", "regions": {"refresh_s": 10}})
    cam = CameraPipeline(config, THRESHOLDS)
    look = cam.look(frame(0), (80, 60))  # 640x480 is 8 times 80x60: more than regions.max_downscale (3)
    assert isinstance(look, Look) and len(look.regions) > 1 and look.whole_frame
    assert cam.last_whole_s == 0.0  # the next refresh is due refresh_s after this look


def test_a_new_camera_onboards_every_frame_with_motion_and_a_still_scene_at_its_interval():
    config = CameraConfig.model_validate({"id": "cam", "source": "x", "regions": {"refresh_s": 0},
                                          "onboarding": {"still_check_s": 5}})
    cam = CameraPipeline(config, THRESHOLDS)
    assert cam.onboarding
    cloud = FakeCloud([DetectionRecord("person", 0.9, (100.0, 100.0, 200.0, 300.0))])
    escalator = Escalator(cloud, EscalationSettings(), "site")
    sent = []
    for k in range(12):  # the first frame has "motion" (no background yet), then the same picture
        seen = cam.look(frame(k, [(100, 100, 200, 300)]), (320, 192))
        if isinstance(seen, Look):
            event = cam.settle(seen, dets(("person", 0.95, (100, 100, 200, 300))), escalator)  # sure of it
            assert event.escalated and event.reason == "onboarding" and event.decided_by == "cloud"
            sent.append(k)
    assert sent == [0, 5, 10] and len(cloud.requests) == 3  # confident or not, the cloud decides


def test_live_settings_keep_a_camera_students_bands_until_its_rollback():
    """A fleet-wide settings push must not move a promoted student off the operating point it was judged at;
    the pushed bands are what the camera returns to when its student is rolled back."""
    cam = camera()
    own = load_detector(CENTERNET_STUDENT_MANIFEST)
    cam.use_student(own, Limits(max_escalation=0.3), Bands(accept=0.7, reject=0.1))
    cam.reconfigure(CameraSettings.model_validate({"cascade": {"labels": {
        "person": {"accept": 0.8, "reject": 0.3}, "vehicle": {"accept": 0.8, "reject": 0.3}}}}))
    assert cam.cascade.bands == {"person": Bands(accept=0.7, reject=0.1), "vehicle": Bands(accept=0.7, reject=0.1)}
    cam.drop_student({"person": 0.25})
    assert cam.cascade.bands["person"] == Bands(accept=0.8, reject=0.3)  # the pushed settings, now in force
