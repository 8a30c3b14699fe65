"""Escalation messages built from real frames stay within the IoT Core payload limit."""

import cv2
import numpy as np
import pytest

from contracts.detections import Detections
from contracts.wire import MAX_MESSAGE_BYTES, DetectionRecord, EscalationRequest
from edge_agent.escalation.crops import build_request, encode_jpeg


@pytest.mark.parametrize("n_crops", [1, 3])
def test_real_frame_messages_fit_and_decode(vtest_frames, n_crops):
    frame = vtest_frames[2]
    boxes = [(0, 0, 768, 576)] if n_crops == 1 else [(0, 0, 400, 300), (300, 200, 768, 576), (10, 10, 330, 202)]
    request = build_request("plaza", 300, 30.0, frame, boxes, "uncertain", Detections.empty())
    data = request.to_bytes()
    assert len(data) <= MAX_MESSAGE_BYTES
    parsed = EscalationRequest.from_bytes(data)
    for crop, box in zip(parsed.crops, boxes, strict=True):
        image = cv2.imdecode(np.frombuffer(crop.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[1::-1] == crop.size
        assert crop.box == tuple(float(v) for v in box)


def test_a_frame_too_detailed_for_the_budget_is_shrunk_not_dropped():
    noise = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), np.uint8)  # incompressible
    jpeg, size = encode_jpeg(noise, 100_000)
    assert len(jpeg) <= 100_000 and size[0] < 1920
    request = build_request("c", 0, 0.0, noise, [(0, 0, 1920, 1080)], "audit", Detections.empty())
    assert len(request.to_bytes()) <= MAX_MESSAGE_BYTES
    crop = request.crops[0]
    whole = crop.to_source(DetectionRecord("person", 0.5, (0, 0, *crop.size)))
    assert whole.box == pytest.approx((0, 0, 1920, 1080))  # boxes on the shrunk JPEG map back to source pixels
