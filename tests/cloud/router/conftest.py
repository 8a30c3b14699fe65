"""Fixtures the router's tests share."""

from __future__ import annotations

import pytest

from contracts.wire import Crop


@pytest.fixture(scope="module")
def lean_crops(vtest_frames):
    """The two halves of a vtest frame at the teacher's scale, as a lean message carries them (~8 KB each)."""
    import cv2

    frame = vtest_frames[1]
    out = []
    for crop_id, (x1, x2) in enumerate(((0, 384), (384, 768))):
        small = cv2.resize(frame[:, x1:x2], (208, 312), interpolation=cv2.INTER_AREA)
        jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
        out.append(Crop(crop_id, (float(x1), 0.0, float(x2), 576.0), jpeg, (208, 312)))
    return tuple(out)
