"""Lean messages: only what the cascade is unsure of leaves the gateway, at the teacher's scale, never larger
than its input; the per-camera JPEG quality is the one its calibration chose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from contracts.detections import Detections
from contracts.wire import DetectionRecord, EscalationRequest
from edge_agent.app.camera import CameraPipeline
from edge_agent.app.escalate import Escalator
from edge_agent.app.look import Look
from edge_agent.config import CameraConfig, EscalationSettings
from edge_agent.escalation.crops import MASK_GREY, build_lean_request, build_request, lean_boxes
from tests.edge_agent.app.test_camera_pipeline import BANDS, THRESHOLDS, FakeCloud, dets, frame


def test_lean_boxes_grow_merge_and_give_way_to_the_whole_frame():
    # grown by half a box size per side, at least 96 px square, clipped to the frame
    assert lean_boxes([(100, 100, 140, 200)], (640, 480)) == [(72, 50, 168, 250)]
    assert lean_boxes([(0, 0, 10, 10)], (640, 480)) == [(0, 0, 53, 53)]
    # two that overlap once grown are one crop; far apart they stay two
    assert lean_boxes([(100, 100, 140, 200), (150, 100, 190, 200)], (640, 480)) == [(72, 50, 218, 250)]
    assert len(lean_boxes([(10, 10, 50, 50), (500, 400, 540, 440)], (640, 480))) == 2
    # most of the frame: one whole-frame crop costs less than several
    assert lean_boxes([(100, 50, 540, 430)], (640, 480)) == [(0, 0, 640, 480)]
    assert lean_boxes([], (640, 480)) == [(0, 0, 640, 480)]


def test_a_lean_message_is_one_image_at_the_teachers_input_grey_outside_the_doubt(vtest_frames):
    image = vtest_frames[1]  # 768x576
    box = (600, 40, 740, 140)
    lean = build_lean_request("plaza", 150, 15.0, image, [box], "uncertain", Detections.empty(), quality=60)
    whole = build_request("plaza", 150, 15.0, image, [(0, 0, 768, 576)], "uncertain", Detections.empty(), quality=80)
    assert len(lean.crops) == 1 and lean.crops[0].size == (416, 312)  # never larger than the teacher's input
    assert len(lean.to_bytes()) * 5 < len(whole.to_bytes())  # measured: 103 KB -> ~15 KB on vtest
    sent = cv2.imdecode(np.frombuffer(lean.crops[0].jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert np.abs(sent[200:300, 20:200] - MASK_GREY).max() <= 3  # far from the doubt: nothing of the frame
    small = cv2.resize(image, (416, 312), interpolation=cv2.INTER_AREA).astype(int)
    inside = sent[30:70, 330:395]
    # inside it: the picture (JPEG at 60 moves it by ~7 levels on average), nowhere near the grey
    assert np.abs(inside - small[30:70, 330:395]).mean() < 12 < np.abs(inside - MASK_GREY).mean()
    parsed = EscalationRequest.from_bytes(lean.to_bytes())
    back = parsed.crops[0].to_source(DetectionRecord("vehicle", 0.9, (0.0, 0.0, 416.0, 312.0)))
    assert back.box == pytest.approx((0, 0, 768, 576))  # boxes on it map back to source pixels


def _camera() -> CameraPipeline:
    config = CameraConfig.model_validate({"id": "cam", "source": "x", "regions": {"refresh_s": 0},
                                          "cascade": {"audit_fraction": 0.0, "labels": BANDS},
                                          "onboarding": {"enabled": False}})
    return CameraPipeline(config, THRESHOLDS)


def test_by_default_the_whole_frame_is_sent_at_the_teachers_input_not_larger():
    cam = _camera()
    cam.look(frame(0), (160, 96))
    look = cam.look(frame(1, [(100, 50, 140, 150)]), (160, 96))
    assert isinstance(look, Look)
    cloud = FakeCloud([DetectionRecord("person", 0.9, (101.0, 52.0, 139.0, 148.0))])
    escalator = Escalator(cloud, EscalationSettings(), "site-1")
    event = cam.settle(look, dets(("person", 0.35, (98, 52, 141, 149))), escalator)
    crop = cloud.requests[0].crops[0]
    assert crop.box == (0.0, 0.0, 640.0, 480.0) and crop.size == (416, 312)  # was 640x480
    assert event.decided_by == "cloud" and list(event.detections.labels) == ["person"]


def test_uncertain_sends_the_cascades_doubt_and_the_edge_keeps_what_it_was_sure_of_elsewhere():
    cam = _camera()
    cam.look(frame(0), (160, 96))
    look = cam.look(frame(1, [(100, 50, 140, 150), (500, 300, 560, 420)]), (160, 96))
    assert isinstance(look, Look)
    cloud = FakeCloud([DetectionRecord("person", 0.9, (101.0, 52.0, 139.0, 148.0))])
    settings = EscalationSettings(crop_by_camera={"cam": "uncertain"}, jpeg_quality_by_camera={"cam": 40})
    escalator = Escalator(cloud, settings, "site-1")
    # unsure of a person at the left; sure of a vehicle at the right
    event = cam.settle(look, dets(("person", 0.35, (98, 52, 141, 149)), ("vehicle", 0.9, (500, 300, 560, 420))),
                       escalator)
    request = cloud.requests[0]
    assert len(request.crops) == 1 and max(request.crops[0].size) <= settings.max_crop_px
    sent = cv2.imdecode(np.frombuffer(request.crops[0].jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    sx = request.crops[0].size[0] / 640
    assert np.abs(sent[int(330 * sx):int(400 * sx), int(510 * sx):int(550 * sx)] - MASK_GREY).max() <= 3
    # the cloud's person, the edge's own vehicle outside the crop
    assert sorted(str(lb) for lb in event.detections.labels) == ["person", "vehicle"]
    # the calibrated quality is used: the same message at quality 90 is larger
    at_90 = Escalator(FakeCloud([]), EscalationSettings(crop="uncertain", jpeg_quality=90), "s")
    cam2 = _camera()
    cam2.look(frame(0), (160, 96))
    look2 = cam2.look(frame(1, [(100, 50, 140, 150), (500, 300, 560, 420)]), (160, 96))
    cam2.settle(look2, dets(("person", 0.35, (98, 52, 141, 149))), at_90)
    assert len(request.to_bytes()) < len(at_90.transport.requests[0].to_bytes())  # type: ignore[attr-defined]


@pytest.mark.parametrize("key, bad", [("jpeg_quality_by_camera", {"cam": 20}),
                                      ("jpeg_quality_by_camera", {"cam": 101}),
                                      ("jpeg_quality_by_camera", {"cam": "high"}),
                                      ("crop_by_camera", {"cam": "tiles"})])
def test_a_calibrated_setting_out_of_range_is_refused_naming_it(key, bad):
    with pytest.raises(ValidationError) as err:
        EscalationSettings(**{key: bad})
    assert key in str(err.value) and "cam" in str(err.value)


def test_the_calibration_picks_the_smallest_message_that_keeps_the_whole_frames_agreement():
    from edge_agent.bench.lean import calibrated

    result = {"escalations": 10, "whole": {"agree": 9, "bytes_mean": 100_000.0}}
    for kind, agree in (("q", [7, 8, 9]), ("f", [9, 9, 10])):
        for q, a in zip((30, 50, 70), agree, strict=True):
            result[f"{kind}{q}"] = {"agree": a, "bytes_mean": float(q * 100 + (0 if kind == "q" else 1000))}
    assert calibrated(result, (30, 50, 70)) == {"crop": "frame", "quality": 30, "bytes_mean": 4000.0}
    result["q70"]["bytes_mean"] = 3500.0  # the doubt alone, once it keeps the agreement and is smaller
    assert calibrated(result, (30, 50, 70))["crop"] == "uncertain"
    for kind in "qf":
        for q in (30, 50, 70):
            result[f"{kind}{q}"]["agree"] = 8
    assert calibrated(result, (30, 50, 70)) is None  # nothing keeps it: no calibration, the defaults stay
    assert calibrated({"escalations": 0}) is None
