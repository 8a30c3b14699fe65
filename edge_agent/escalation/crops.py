"""Build an escalation message from a frame: JPEG crops under the IoT Core payload limit, none larger than
the teacher's input (it would downscale them anyway, so the extra pixels are paid for and thrown away)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import cv2
import numpy as np

from contracts.detections import Detections
from contracts.wire import MAX_MESSAGE_BYTES, Crop, EscalationRequest, WireError

Box = tuple[int, int, int, int]
# base64 grows data by 4/3; leave room for the JSON around the crops.
_ENVELOPE_BYTES = 2048
MIN_CROP_PX = 96  # a crop smaller than this gives the teacher too little context to agree with itself


def encode_jpeg(image: np.ndarray, budget: int, quality: int = 85,
                max_px: int | None = None) -> tuple[bytes, tuple[int, int]]:
    """JPEG-encode, downscaled first so no side exceeds `max_px`, then lowering quality and size until it
    fits `budget` bytes."""
    h, w = image.shape[:2]
    scale = min(1.0, max_px / max(w, h)) if max_px else 1.0
    while True:
        scaled = image if scale == 1.0 else cv2.resize(image, (max(8, round(w * scale)), max(8, round(h * scale))),
                                                         interpolation=cv2.INTER_AREA)
        for q in sorted({quality, *(v for v in (70, 55, 40) if v < quality)}, reverse=True):
            ok, buf = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok and len(buf) <= budget:
                return buf.tobytes(), (scaled.shape[1], scaled.shape[0])
        if scale < 0.1:
            raise WireError(f"a {w}x{h} crop cannot be encoded in {budget} bytes")
        scale *= 0.75


def lean_boxes(doubt: Sequence[Box], frame_wh: tuple[int, int], margin: float = 0.5,
               min_px: int = MIN_CROP_PX, whole_fraction: float = 0.6) -> list[Box]:
    """Crops around the boxes the cascade is unsure of: each grown by `margin` box sizes per side (the
    teacher needs context), at least `min_px` square, clipped to the frame; overlapping crops merged. When
    they cover more than `whole_fraction` of the frame, the whole frame (one crop costs less than many)."""
    fw, fh = frame_wh
    grown = []
    for x1, y1, x2, y2 in doubt:
        bw, bh = max(1, x2 - x1), max(1, y2 - y1)
        half_w, half_h = max(bw * (0.5 + margin), min_px / 2), max(bh * (0.5 + margin), min_px / 2)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        grown.append([max(0, int(cx - half_w)), max(0, int(cy - half_h)), min(fw, int(cx + half_w + 0.999)),
                      min(fh, int(cy + half_h + 0.999))])
    merged = True
    while merged:  # few boxes per frame: a quadratic pass until no two overlap
        merged = False
        for i in range(len(grown)):
            for j in range(i + 1, len(grown)):
                a, b = grown[i], grown[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    grown[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del grown[j]
                    merged = True
                    break
            if merged:
                break
    area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in grown)
    if not grown or area > whole_fraction * fw * fh:
        return [(0, 0, fw, fh)]
    return [(b[0], b[1], b[2], b[3]) for b in grown if b[2] > b[0] and b[3] > b[1]]


MASK_GREY = 114  # what the teacher sees outside the crops: flat, so JPEG spends almost nothing on it


def build_lean_request(camera: str, frame_index: int, pts_s: float, frame: np.ndarray, boxes: Sequence[Box],
                       reason: str, student: Detections, site: str = "", quality: int = 85,
                       max_px: int = 416, max_bytes: int = MAX_MESSAGE_BYTES) -> EscalationRequest:
    """One image: the frame at the scale the teacher would look at it (longer side `max_px`, its input),
    flat grey outside `boxes`. The teacher stretches whatever it gets to its input, so a small crop sent
    alone is magnified (on vtest a parked car in a 97 px crop, 4x, was no longer found); in place, each crop
    is seen at the whole frame's scale, and the grey costs ~1 KB. Boxes on it map back like any crop's."""
    h, w = frame.shape[:2]
    scale = min(1.0, max_px / max(w, h))
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    small = frame if scale == 1.0 else cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
    if [tuple(b) for b in boxes] == [(0, 0, w, h)]:
        canvas = small
    else:
        canvas = np.full_like(small, MASK_GREY)
        for x1, y1, x2, y2 in boxes:
            # Outward to whole 8x8 JPEG blocks: a block half grey, half picture costs as much as a whole one.
            a, b = int(x1 * scale) // 8 * 8, int(y1 * scale) // 8 * 8
            c, d = min(sw, -(-int(np.ceil(x2 * scale)) // 8) * 8), min(sh, -(-int(np.ceil(y2 * scale)) // 8) * 8)
            canvas[b:d, a:c] = small[b:d, a:c]
    budget = (max_bytes - _ENVELOPE_BYTES - 120 * len(student)) * 3 // 4
    jpeg, size = encode_jpeg(canvas, budget, quality)
    request = EscalationRequest(
        message_id=str(uuid.uuid4()), camera=camera, frame_index=frame_index, pts_s=pts_s, reason=reason,
        crops=(Crop(0, (0.0, 0.0, float(w), float(h)), jpeg, size),), site=site, created_s=time.time(),
        student=student.to_wire(),
    )
    request.to_bytes()
    return request


def build_request(camera: str, frame_index: int, pts_s: float, frame: np.ndarray,
                  boxes: Sequence[Box], reason: str, student: Detections,
                  site: str = "", quality: int = 85, max_bytes: int = MAX_MESSAGE_BYTES,
                  max_px: int | None = None) -> EscalationRequest:
    """One message for one frame; the crops share the payload budget equally."""
    per_crop = (max_bytes - _ENVELOPE_BYTES - 120 * len(student)) * 3 // 4 // max(1, len(boxes))
    crops = []
    for crop_id, (x1, y1, x2, y2) in enumerate(boxes):
        jpeg, size = encode_jpeg(frame[y1:y2, x1:x2], per_crop, quality, max_px)
        crops.append(Crop(crop_id, (float(x1), float(y1), float(x2), float(y2)), jpeg, size))
    request = EscalationRequest(
        message_id=str(uuid.uuid4()), camera=camera, frame_index=frame_index, pts_s=pts_s, reason=reason,
        crops=tuple(crops), site=site, created_s=time.time(),
        student=student.to_wire(),
    )
    request.to_bytes()  # raises WireError if the budget arithmetic was wrong: never send an oversized message
    return request
