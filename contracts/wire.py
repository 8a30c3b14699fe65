"""The versioned messages between the edge and the cloud, defined once. Pure Python (no numpy), so the
router Lambda imports it as it is.

- EscalationRequest: edge -> cloud, JPEG crops of one sampled frame the edge could not decide.
- Verdict: cloud -> edge, the teacher's detections per crop, in source-frame pixels.
- InvocationRequest / InvocationResponse: the body of the SageMaker-compatible endpoint
  (`application/json`); a single `image/jpeg` body is answered with an InvocationResponse too.

The gateway's other messages (frame events, telemetry) are in contracts/device.py; the model-update job
document in contracts/jobs.py; the training record in contracts/training.py.

Every message serialises to JSON of at most MAX_MESSAGE_BYTES (the AWS IoT Core payload limit).
Parsing validates every field and raises WireError naming the field and the bad value.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

WIRE_VERSION = 1
MAX_MESSAGE_BYTES = 128 * 1024
REASONS = ("uncertain", "audit")


class WireError(ValueError):
    """A message that is malformed, of an unknown version, or too large."""


def _require(payload: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(payload, dict):
        raise WireError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    if key not in payload:
        raise WireError(f"{where}: missing field {key!r}")
    value = payload[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise WireError(f"{where}.{key}: expected {kind}, got a boolean")
    if not isinstance(value, kind):
        raise WireError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r:.60}")
    return value


def _box(value: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise WireError(f"{where}: a box is [x1, y1, x2, y2], got {value!r:.60}")
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise WireError(f"{where}: box values must be numbers, got {value!r:.60}") from exc
    if not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
        raise WireError(f"{where}: box {list(box)} is not finite with x2 >= x1 and y2 >= y1")
    return box  # type: ignore[return-value]


def _check_version(payload: Any, kind: str, where: str) -> None:
    version = _require(payload, "v", int, where)
    if version != WIRE_VERSION:
        raise WireError(f"{where}: wire version {version} is not supported (this side speaks {WIRE_VERSION})")
    if payload.get("type") != kind:
        raise WireError(f"{where}: expected type {kind!r}, got {payload.get('type')!r}")


def encode(payload: dict, what: str = "message") -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"{what} is {len(data)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit; "
                        "send fewer or smaller crops")
    return data


def decode(data: bytes | str, what: str = "message", limit: int = MAX_MESSAGE_BYTES) -> Any:
    if len(data) > limit:
        raise WireError(f"{what} is {len(data)} bytes, over the {limit}-byte limit")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"{what} is not valid JSON: {exc}") from exc


def b64decode(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{where}: not valid base64 ({exc})") from exc


@dataclass(frozen=True)
class DetectionRecord:
    label: str
    score: float
    box: tuple[float, float, float, float]

    def to_payload(self) -> dict:
        return {"label": self.label, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}

    @classmethod
    def from_payload(cls, payload: Any, where: str = "detection") -> DetectionRecord:
        label = _require(payload, "label", str, where)
        score = float(_require(payload, "score", (int, float), where))
        if not 0.0 <= score <= 1.0:
            raise WireError(f"{where}.score: {score} is outside [0, 1]")
        return cls(label, score, _box(payload.get("box"), f"{where}.box"))


def _records(value: Any, where: str) -> tuple[DetectionRecord, ...]:
    if not isinstance(value, list):
        raise WireError(f"{where}: expected a list of detections")
    return tuple(DetectionRecord.from_payload(d, f"{where}[{i}]") for i, d in enumerate(value))


@dataclass(frozen=True)
class Crop:
    crop_id: int
    box: tuple[float, float, float, float]  # where the crop sits in the source frame, in pixels
    jpeg: bytes
    size: tuple[int, int] = (0, 0)  # the JPEG's width, height (smaller than the box when downscaled)

    def to_payload(self) -> dict:
        return {"crop_id": self.crop_id, "box": [round(v, 1) for v in self.box], "size": list(self.size),
                "jpeg_b64": base64.b64encode(self.jpeg).decode()}

    def to_source(self, record: DetectionRecord) -> DetectionRecord:
        """A detection in the crop JPEG's pixels -> the same detection in source-frame pixels."""
        x1, y1, x2, y2 = self.box
        w, h = self.size
        sx = (x2 - x1) / w if w else 1.0
        sy = (y2 - y1) / h if h else 1.0
        b = record.box
        return DetectionRecord(record.label, record.score,
                               (x1 + b[0] * sx, y1 + b[1] * sy, x1 + b[2] * sx, y1 + b[3] * sy))

    @classmethod
    def from_payload(cls, payload: Any, where: str = "crop") -> Crop:
        crop_id = _require(payload, "crop_id", int, where)
        jpeg = b64decode(_require(payload, "jpeg_b64", str, where), f"{where}.jpeg_b64")
        if not jpeg.startswith(b"\xff\xd8"):
            raise WireError(f"{where}.jpeg_b64: the data is not a JPEG image")
        size = payload.get("size", [0, 0])
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
            raise WireError(f"{where}.size: expected [width, height] in pixels, got {size!r:.40}")
        return cls(crop_id, _box(payload.get("box"), f"{where}.box"), jpeg, (size[0], size[1]))


@dataclass(frozen=True)
class EscalationRequest:
    message_id: str
    camera: str
    frame_index: int
    pts_s: float
    reason: str
    crops: tuple[Crop, ...]
    site: str = ""
    created_s: float = 0.0
    student: tuple[DetectionRecord, ...] = field(default=())

    def to_payload(self) -> dict:
        return {
            "v": WIRE_VERSION, "type": "escalation", "message_id": self.message_id, "site": self.site,
            "camera": self.camera, "frame_index": self.frame_index, "pts_s": round(self.pts_s, 3),
            "reason": self.reason, "created_s": round(self.created_s, 3),
            "crops": [c.to_payload() for c in self.crops],
            "student": [d.to_payload() for d in self.student],
        }

    @cached_property
    def encoded(self) -> bytes:
        # Built, size-checked, counted and sent: encode ~100 KB of JSON once, not at every step.
        return encode(self.to_payload(), f"escalation {self.message_id}")

    def to_bytes(self) -> bytes:
        return self.encoded

    @classmethod
    def from_payload(cls, payload: Any) -> EscalationRequest:
        where = "escalation"
        _check_version(payload, "escalation", where)
        reason = _require(payload, "reason", str, where)
        if reason not in REASONS:
            raise WireError(f"{where}.reason: {reason!r} is not one of {REASONS}")
        crops = _require(payload, "crops", list, where)
        if not crops:
            raise WireError(f"{where}.crops: an escalation carries at least one crop")
        return cls(
            message_id=_require(payload, "message_id", str, where),
            camera=_require(payload, "camera", str, where),
            frame_index=_require(payload, "frame_index", int, where),
            pts_s=float(_require(payload, "pts_s", (int, float), where)),
            reason=reason,
            crops=tuple(Crop.from_payload(c, f"{where}.crops[{i}]") for i, c in enumerate(crops)),
            site=payload.get("site", "") if isinstance(payload.get("site", ""), str) else "",
            created_s=float(payload.get("created_s", 0.0)),
            student=_records(payload.get("student", []), f"{where}.student"),
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> EscalationRequest:
        return cls.from_payload(decode(data, "escalation"))


@dataclass(frozen=True)
class CropVerdict:
    crop_id: int
    detections: tuple[DetectionRecord, ...]  # in source-frame pixels


@dataclass(frozen=True)
class Verdict:
    message_id: str
    camera: str
    frame_index: int
    model: str
    crops: tuple[CropVerdict, ...]

    def detections(self) -> tuple[DetectionRecord, ...]:
        return tuple(d for c in self.crops for d in c.detections)

    def to_payload(self) -> dict:
        return {
            "v": WIRE_VERSION, "type": "verdict", "message_id": self.message_id, "camera": self.camera,
            "frame_index": self.frame_index, "model": self.model,
            "crops": [{"crop_id": c.crop_id, "detections": [d.to_payload() for d in c.detections]}
                      for c in self.crops],
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"verdict {self.message_id}")

    @classmethod
    def from_payload(cls, payload: Any) -> Verdict:
        where = "verdict"
        _check_version(payload, "verdict", where)
        crops = _require(payload, "crops", list, where)
        return cls(
            message_id=_require(payload, "message_id", str, where),
            camera=_require(payload, "camera", str, where),
            frame_index=_require(payload, "frame_index", int, where),
            model=_require(payload, "model", str, where),
            crops=tuple(
                CropVerdict(_require(c, "crop_id", int, f"{where}.crops[{i}]"),
                            _records(_require(c, "detections", list, f"{where}.crops[{i}]"),
                                     f"{where}.crops[{i}].detections"))
                for i, c in enumerate(crops)
            ),
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Verdict:
        return cls.from_payload(decode(data, "verdict"))


def verdict_from_response(request: EscalationRequest, response: InvocationResponse) -> Verdict:
    """The endpoint's answer for an escalation's crops (sent with ids = crop ids) as a Verdict in
    source-frame pixels. Used by the edge's http transport and by the cloud router alike."""
    crops = {str(c.crop_id): c for c in request.crops}
    missing = set(crops) - {i for i, _ in response.predictions}
    if missing:
        raise WireError(f"response has no prediction for crop ids {sorted(missing)}")
    return Verdict(
        message_id=request.message_id, camera=request.camera, frame_index=request.frame_index,
        model=response.model,
        crops=tuple(CropVerdict(crops[i].crop_id, tuple(crops[i].to_source(d) for d in dets))
                    for i, dets in response.predictions if i in crops),
    )


def invocation_for(request: EscalationRequest) -> InvocationRequest:
    return InvocationRequest(tuple((str(c.crop_id), c.jpeg) for c in request.crops))


@dataclass(frozen=True)
class InvocationRequest:
    """A batch of JPEG images for the endpoint: {"instances": [{"id": "...", "jpeg_b64": "..."}]}."""

    images: tuple[tuple[str, bytes], ...]  # (id, jpeg bytes)

    def to_payload(self) -> dict:
        return {"instances": [{"id": i, "jpeg_b64": base64.b64encode(b).decode()} for i, b in self.images]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_payload(), separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: Any) -> InvocationRequest:
        instances = _require(payload, "instances", list, "request")
        if not instances:
            raise WireError("request.instances: at least one image is needed")
        images = []
        for k, inst in enumerate(instances):
            where = f"request.instances[{k}]"
            image_id = inst.get("id", str(k)) if isinstance(inst, dict) else str(k)
            images.append((str(image_id), b64decode(_require(inst, "jpeg_b64", str, where), f"{where}.jpeg_b64")))
        return cls(tuple(images))


@dataclass(frozen=True)
class InvocationResponse:
    """{"model": "name@version", "predictions": [{"id": "...", "detections": [...]}]}; boxes in the
    pixels of the image that was sent."""

    model: str
    predictions: tuple[tuple[str, tuple[DetectionRecord, ...]], ...]

    def to_payload(self) -> dict:
        return {"model": self.model,
                "predictions": [{"id": i, "detections": [d.to_payload() for d in dets]}
                                for i, dets in self.predictions]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_payload(), separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: Any) -> InvocationResponse:
        preds = _require(payload, "predictions", list, "response")
        return cls(
            _require(payload, "model", str, "response"),
            tuple((str(_require(p, "id", (str, int), f"response.predictions[{k}]")),
                   _records(_require(p, "detections", list, f"response.predictions[{k}]"),
                            f"response.predictions[{k}].detections"))
                  for k, p in enumerate(preds)),
        )
