"""Build an escalation message from a frame: JPEG crops under the IoT Core payload limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import cv2
import numpy as np

from contracts.detections import Detections
from contracts.wire import MAX_MESSAGE_BYTES, Crop, EscalationRequest, WireError

# base64 grows data by 4/3; leave room for the JSON around the crops.
_ENVELOPE_BYTES = 2048


def encode_jpeg(image: np.ndarray, budget: int, quality: int = 85) -> tuple[bytes, tuple[int, int]]:
    """JPEG-encode, lowering quality and then size until it fits `budget` bytes."""
    h, w = image.shape[:2]
    scale = 1.0
    while True:
        scaled = image if scale == 1.0 else cv2.resize(image, (max(8, int(w * scale)), max(8, int(h * scale))),
                                                         interpolation=cv2.INTER_AREA)
        for q in (quality, 70, 55, 40):
            ok, buf = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok and len(buf) <= budget:
                return buf.tobytes(), (scaled.shape[1], scaled.shape[0])
        if scale < 0.1:
            raise WireError(f"a {w}x{h} crop cannot be encoded in {budget} bytes")
        scale *= 0.75


def build_request(camera: str, frame_index: int, pts_s: float, frame: np.ndarray,
                  boxes: Sequence[tuple[int, int, int, int]], reason: str, student: Detections,
                  site: str = "", quality: int = 85, max_bytes: int = MAX_MESSAGE_BYTES) -> EscalationRequest:
    """One message for one frame; the crops share the payload budget equally."""
    per_crop = (max_bytes - _ENVELOPE_BYTES - 120 * len(student)) * 3 // 4 // max(1, len(boxes))
    crops = []
    for crop_id, (x1, y1, x2, y2) in enumerate(boxes):
        jpeg, size = encode_jpeg(frame[y1:y2, x1:x2], per_crop, quality)
        crops.append(Crop(crop_id, (float(x1), float(y1), float(x2), float(y2)), jpeg, size))
    request = EscalationRequest(
        message_id=str(uuid.uuid4()), camera=camera, frame_index=frame_index, pts_s=pts_s, reason=reason,
        crops=tuple(crops), site=site, created_s=time.time(),
        student=student.to_wire(),
    )
    request.to_bytes()  # raises WireError if the budget arithmetic was wrong: never send an oversized message
    return request
