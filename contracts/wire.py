"""The versioned messages between the edge and the cloud, defined once. Pure Python (no numpy), so the
router Lambda imports it as it is.

- EscalationRequest: edge -> cloud, JPEG crops of one sampled frame the edge could not decide.
- Verdict: cloud -> edge, the teacher's detections per crop, in source-frame pixels; or, with `error`, the
  cloud's word that it will not answer (dead-lettered, endpoint failed), so the edge decides at once.
- InvocationRequest / InvocationResponse: the body of the SageMaker-compatible endpoint
  (`application/json`); a single `image/jpeg` body is answered with an InvocationResponse too.

The gateway's other messages (frame events, telemetry) are in contracts/device.py; the model-update job
document in contracts/jobs.py; the training record in contracts/training.py.

Every message serialises to JSON of at most MAX_MESSAGE_BYTES (the AWS IoT Core payload limit).
Parsing validates every field and raises WireError naming the field and the bad value; the codec itself
(JSON within the limit, field checks) is contracts/codec.py.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from contracts.codec import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES  # part of this module's interface too
from contracts.codec import (
    WIRE_VERSION,
    WireError,
    b64decode,
    box_value,
    check_version,
    decode,
    encode,
    integer,
    number,
    require,
    text,
)

ERROR_CHARS = 300  # an error verdict says why in at most this much text
REASONS = ("uncertain", "audit", "onboarding")  # onboarding: a camera without a proven student
MAX_SECONDS = 1e11  # epoch seconds (year 5138) and media times stay below this


@dataclass(frozen=True)
class DetectionRecord:
    label: str
    score: float
    box: tuple[float, float, float, float]

    def to_payload(self) -> dict:
        return {"label": self.label, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}

    @classmethod
    def from_payload(cls, payload: Any, where: str = "detection") -> DetectionRecord:
        label = text(payload, "label", where)
        score = number(payload, "score", where, 0.0, 1.0)
        return cls(label, score, box_value(payload.get("box"), f"{where}.box"))


def detection_records(value: Any, where: str) -> tuple[DetectionRecord, ...]:
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

    def from_source(self, record: DetectionRecord) -> DetectionRecord:
        """The inverse of `to_source`: a source-pixel detection in the crop JPEG's pixels (what a training
        record keeps), clipped at the crop's top-left."""
        x1, y1, x2, y2 = self.box
        w, h = self.size
        sx = w / (x2 - x1) if w and x2 > x1 else 1.0
        sy = h / (y2 - y1) if h and y2 > y1 else 1.0
        b = record.box
        box = ((b[0] - x1) * sx, (b[1] - y1) * sy, (b[2] - x1) * sx, (b[3] - y1) * sy)
        return DetectionRecord(record.label, record.score, (max(0.0, box[0]), max(0.0, box[1]), max(0.0, box[2]),
                                                            max(0.0, box[3])))

    @classmethod
    def from_payload(cls, payload: Any, where: str = "crop") -> Crop:
        crop_id = integer(payload, "crop_id", where, 0, 2 ** 31)
        jpeg = b64decode(require(payload, "jpeg_b64", str, where), f"{where}.jpeg_b64")
        if not jpeg.startswith(b"\xff\xd8"):
            raise WireError(f"{where}.jpeg_b64: the data is not a JPEG image")
        size = payload.get("size", [0, 0])
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 for v in size)):
            raise WireError(f"{where}.size: expected [width, height] in pixels, got {size!r:.40}")
        return cls(crop_id, box_value(payload.get("box"), f"{where}.box"), jpeg, (size[0], size[1]))


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
    # Set only on an escalation re-sent alone after the batch that carried it was refused (the gateway spools a
    # refused batch escalation by escalation): the router takes its time from that batch's claim, as the batch's
    # own delivery did, so the two find each other (cloud/router/routing.py pin_to). Routers that predate it
    # ignore the key (unknown keys are ignored) and claim per message.
    batch_id: str = ""

    def to_payload(self) -> dict:
        payload = {
            "v": WIRE_VERSION, "type": "escalation", "message_id": self.message_id, "site": self.site,
            "camera": self.camera, "frame_index": self.frame_index, "pts_s": round(self.pts_s, 3),
            "reason": self.reason, "created_s": round(self.created_s, 3),
            "crops": [c.to_payload() for c in self.crops],
            "student": [d.to_payload() for d in self.student],
        }
        if self.batch_id:
            payload["batch_id"] = self.batch_id
        return payload

    @cached_property
    def encoded(self) -> bytes:
        # Built, size-checked, counted and sent: encode ~100 KB of JSON once, not at every step.
        return encode(self.to_payload(), f"escalation {self.message_id}")

    def to_bytes(self) -> bytes:
        return self.encoded

    @classmethod
    def from_payload(cls, payload: Any) -> EscalationRequest:
        where = "escalation"
        check_version(payload, "escalation", where)
        reason = require(payload, "reason", str, where)
        if reason not in REASONS:
            raise WireError(f"{where}.reason: {reason!r} is not one of {REASONS}")
        crops = require(payload, "crops", list, where)
        if not crops:
            raise WireError(f"{where}.crops: an escalation carries at least one crop")
        # Every field bounded and finite before anyone pays for a model call on it: a created_s of 1e300
        # or a pts_s of NaN is a malformed message, not a stored row.
        return cls(
            message_id=text(payload, "message_id", where),
            camera=text(payload, "camera", where),
            frame_index=integer(payload, "frame_index", where),
            pts_s=number(payload, "pts_s", where, 0.0, MAX_SECONDS),
            reason=reason,
            crops=tuple(Crop.from_payload(c, f"{where}.crops[{i}]") for i, c in enumerate(crops)),
            site=text(payload, "site", where, required=False),
            created_s=number(payload, "created_s", where, 0.0, MAX_SECONDS, default=0.0),
            student=detection_records(payload.get("student", []), f"{where}.student"),
            batch_id=text(payload, "batch_id", where, required=False),
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
    # Non-empty: the cloud could not answer (the message was dead-lettered, the endpoint failed), so the
    # edge decides alone now instead of waiting out its timeout. An error verdict carries no crops.
    error: str = ""
    # The highest wire version the sender reads: a router that reads per-gateway batches (contracts/batch.py)
    # says 2 on every verdict, and a gateway batches only once its cloud has said so. 0: not said (a cloud
    # older than batches); older gateways ignore the key.
    accepts_v: int = 0

    def detections(self) -> tuple[DetectionRecord, ...]:
        return tuple(d for c in self.crops for d in c.detections)

    def to_payload(self) -> dict:
        return {
            "v": WIRE_VERSION, "type": "verdict", "message_id": self.message_id, "camera": self.camera,
            "frame_index": self.frame_index, "model": self.model,
            "crops": [{"crop_id": c.crop_id, "detections": [d.to_payload() for d in c.detections]}
                      for c in self.crops],
            **({"error": self.error[:ERROR_CHARS]} if self.error else {}),
            **({"accepts_v": self.accepts_v} if self.accepts_v else {}),
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"verdict {self.message_id}")

    @classmethod
    def failed(cls, message_id: str, camera: str, frame_index: int, error: str, model: str = "") -> Verdict:
        """The cloud's "no answer" for one escalation: the edge stops waiting and decides alone."""
        return cls(message_id, camera, frame_index, model, (), error[:ERROR_CHARS] or "failed")

    @classmethod
    def from_payload(cls, payload: Any) -> Verdict:
        where = "verdict"
        check_version(payload, "verdict", where)
        crops = require(payload, "crops", list, where)
        error = payload.get("error", "")
        if not isinstance(error, str):
            raise WireError(f"{where}.error: expected text, got {error!r:.60}")
        if error and crops:
            raise WireError(f"{where}: an error verdict ({error!r:.60}) carries no crops")
        accepts = payload.get("accepts_v", 0)
        return cls(
            error=error[:ERROR_CHARS],
            accepts_v=accepts if isinstance(accepts, int) and not isinstance(accepts, bool) and 0 <= accepts < 100
            else 0,
            message_id=require(payload, "message_id", str, where),
            camera=require(payload, "camera", str, where),
            frame_index=require(payload, "frame_index", int, where),
            model=require(payload, "model", str, where),
            crops=tuple(
                CropVerdict(require(c, "crop_id", int, f"{where}.crops[{i}]"),
                            detection_records(require(c, "detections", list, f"{where}.crops[{i}]"),
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
        instances = require(payload, "instances", list, "request")
        if not instances:
            raise WireError("request.instances: at least one image is needed")
        images = []
        for k, inst in enumerate(instances):
            where = f"request.instances[{k}]"
            image_id = inst.get("id", str(k)) if isinstance(inst, dict) else str(k)
            images.append((str(image_id), b64decode(require(inst, "jpeg_b64", str, where), f"{where}.jpeg_b64")))
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
        preds = require(payload, "predictions", list, "response")
        return cls(
            require(payload, "model", str, "response"),
            tuple((str(require(p, "id", (str, int), f"response.predictions[{k}]")),
                   detection_records(require(p, "detections", list, f"response.predictions[{k}]"),
                            f"response.predictions[{k}].detections"))
                  for k, p in enumerate(preds)),
        )
