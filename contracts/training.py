"""The training record: one escalation's crops with the teacher's labels, as kept for retraining.

Written by the cloud router (S3, under the training prefix) and by the agent's local collector (a
folder, in the embedded default); read by per-camera specialization. Pure Python, defined once.
Boxes of the teacher are in the crop JPEG's own pixels.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any

from contracts.codec import WireError, b64decode
from contracts.wire import Crop, DetectionRecord

TRAINING_VERSION = 1
# Where the router files a gateway batch's one object, beside the site's camera folders; never a camera's
# folder: a camera's name is quoted in a key, and "=" becomes %3D
BATCH_FOLDER = "=batches"
# A packed object of the Firehose sink as a reader keeps it on disk (Firehose names objects without a suffix,
# or `.gz`): JSON lines, gzip-encoded or not
PACKED_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class TrainingCrop:
    crop: Crop
    teacher: tuple[DetectionRecord, ...]  # in the crop JPEG's pixels


@dataclass(frozen=True)
class TrainingRecord:
    message_id: str
    camera: str
    t_s: float  # when the frame was seen (the edge's clock)
    pts_s: float
    frame_index: int
    reason: str
    teacher_model: str
    crops: tuple[TrainingCrop, ...]
    site: str = ""
    thing: str = ""  # the gateway that sent it (the router knows it from the topic)
    student: tuple[DetectionRecord, ...] = ()  # what the edge reported for the frame, in source pixels

    def to_payload(self) -> dict[str, Any]:
        return {
            "v": TRAINING_VERSION, "type": "training", "message_id": self.message_id, "site": self.site,
            "thing": self.thing, "camera": self.camera, "t_s": self.t_s, "frame_index": self.frame_index,
            "pts_s": self.pts_s, "reason": self.reason, "teacher_model": self.teacher_model,
            "crops": [{**c.crop.to_payload(), "teacher": [d.to_payload() for d in c.teacher]} for c in self.crops],
            "student": [d.to_payload() for d in self.student],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_payload(), separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: Any) -> TrainingRecord:
        if not isinstance(payload, dict) or payload.get("type") != "training":
            raise WireError("not a training record (type must be 'training')")
        if payload.get("v") != TRAINING_VERSION:
            raise WireError(f"training record version {payload.get('v')!r} is not supported")
        crops = []
        for i, c in enumerate(payload.get("crops") or []):
            where = f"training.crops[{i}]"
            crop = Crop.from_payload(c, where)
            b64decode(c.get("jpeg_b64"), f"{where}.jpeg_b64")
            teacher = tuple(DetectionRecord.from_payload(d, f"{where}.teacher") for d in c.get("teacher", []))
            crops.append(TrainingCrop(crop, teacher))
        if not crops:
            raise WireError("training record has no crops")
        student = tuple(DetectionRecord.from_payload(d, f"training.student[{i}]")
                        for i, d in enumerate(payload.get("student") or []))
        try:
            return cls(str(payload["message_id"]), str(payload["camera"]), float(payload["t_s"]),
                       float(payload.get("pts_s", 0.0)), int(payload.get("frame_index", 0)),
                       str(payload.get("reason", "")), str(payload.get("teacher_model", "")), tuple(crops),
                       str(payload.get("site", "")), str(payload.get("thing", "")), student)
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"training record field missing or malformed: {exc}") from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainingRecord:
        try:
            return cls.from_payload(json.loads(data))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WireError(f"training record is not JSON: {exc}") from exc


@dataclass(frozen=True)
class TrainingBatch:
    """The training records of one gateway batch (wire v2), kept as one S3 object: one PUT per batch instead
    of one per escalation. Its records may be of several cameras of the gateway; a reader takes its own."""

    batch_id: str
    thing: str
    records: tuple[TrainingRecord, ...]

    def to_payload(self) -> dict[str, Any]:
        return {"v": TRAINING_VERSION, "type": "training_batch", "batch_id": self.batch_id, "thing": self.thing,
                "records": [r.to_payload() for r in self.records]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_payload(), separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: Any) -> TrainingBatch:
        if not isinstance(payload, dict) or payload.get("type") != "training_batch":
            raise WireError("not a training batch (type must be 'training_batch')")
        if payload.get("v") != TRAINING_VERSION:
            raise WireError(f"training batch version {payload.get('v')!r} is not supported")
        items = payload.get("records")
        if not isinstance(items, list) or not items:
            raise WireError("training batch has no records")
        return cls(str(payload.get("batch_id", "")), str(payload.get("thing", "")),
                   tuple(TrainingRecord.from_payload(r) for r in items))


# The router stores a training object gzip-encoded (S3 Content-Encoding: gzip, the key still .json): the crops'
# JPEGs are base64 in the JSON, and gzip takes back most of base64's third (29,064 B -> 21,946 B for a 416 px
# vtest frame at quality 70), which is S3 storage for as long as the tier is kept. Readers take both.
GZIP_MAGIC = b"\x1f\x8b"
# A training object decompressed: far above a gateway batch (<= 128 KB sent), and above a packed object of the
# Firehose sink (its buffer, at most 128 MiB, is counted before compression)
MAX_OBJECT_BYTES = 256 * 1024 * 1024


def encode_object(data: bytes) -> bytes:
    """A training object's bytes as stored: gzip (level 6, no timestamp: the same record, the same bytes)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def decode_object(data: bytes) -> bytes:
    """A stored training object's text: gunzipped when gzip-encoded (every member of a multi-member stream:
    a Firehose object whose records were compressed apart), else as it is (older objects, the agent's local
    folder, moto's uncompressed Firehose delivery). Refuses one that would inflate beyond MAX_OBJECT_BYTES."""
    if not data.startswith(GZIP_MAGIC):
        return data
    parts, total, rest = [], 0, data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(rest, MAX_OBJECT_BYTES + 1 - total)
        except zlib.error as exc:
            raise WireError(f"training object is gzip-encoded but corrupt: {exc}") from exc
        total += len(out)
        if total > MAX_OBJECT_BYTES or inflater.unconsumed_tail:
            raise WireError(f"training object inflates beyond {MAX_OBJECT_BYTES} bytes: refused")
        if not inflater.eof:
            raise WireError("training object is gzip-encoded but corrupt: the stream ends early (truncated)")
        parts.append(out)
        rest = inflater.unused_data
        if rest and not rest.startswith(GZIP_MAGIC):
            raise WireError("training object is gzip-encoded but has trailing bytes that are not gzip")
    return b"".join(parts)


def read_records(data: bytes, skipped: list[str] | None = None) -> list[TrainingRecord]:
    """The records of a training object: one escalation's (`training`), a batch's (`training_batch`), or a
    packed object of the Firehose sink (newline-delimited records, one per line); plain or gzip-encoded.
    In a packed object a bad line is skipped and named in `skipped` (raised when `skipped` is None and no
    line is readable): one corrupt record must not hide the thousands beside it. Firehose delivers at least
    once, so a packed record may be found twice: readers dedup by message id (`unique`)."""
    text = decode_object(data)
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        lines = [line for line in text.split(b"\n") if line.strip()]
        if len(lines) > 1:  # JSON lines: a packed object
            return _packed(lines, skipped)
        raise WireError(f"training record is not JSON: {exc}") from exc
    if isinstance(payload, dict) and payload.get("type") == "training_batch":
        return list(TrainingBatch.from_payload(payload).records)
    return [TrainingRecord.from_payload(payload)]


def _packed(lines: list[bytes], skipped: list[str] | None) -> list[TrainingRecord]:
    out: list[TrainingRecord] = []
    bad: list[str] = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(TrainingRecord.from_bytes(line))
        except WireError as exc:
            bad.append(f"line {n}: {exc}")
    if bad and skipped is None and not out:
        raise WireError(f"packed training object: no readable record ({bad[0]})")
    if skipped is not None:
        skipped.extend(bad)
    return out


def unique(records: list[TrainingRecord]) -> list[TrainingRecord]:
    """Each message id once, the first found kept (a redelivered Firehose batch, or a record found both in a
    packed object and as a direct object after a fallback, is the same escalation)."""
    seen: set[str] = set()
    out = []
    for r in records:
        if r.message_id not in seen:
            seen.add(r.message_id)
            out.append(r)
    return out


def to_line(record: TrainingRecord) -> bytes:
    """One record as the Firehose sink sends it: its JSON and a newline, so the delivered object is JSON lines."""
    return record.to_bytes() + b"\n"


def record_of(data: bytes, message_id: str | None = None) -> TrainingRecord:
    """One escalation's record from a training object: the object's own, or in a batch the one of
    `message_id` (KeyError when the batch does not hold it)."""
    records = read_records(data)
    if message_id is None and len(records) == 1:
        return records[0]
    for r in records:
        if r.message_id == message_id:
            return r
    raise KeyError(message_id)


# Which escalations are worth keeping as training data, and for how long (the S3 object's `tier` tag; the
# bucket's lifecycle rules expire each tier on its own clock). An escalation where the student's labels and
# the teacher's agree and the teacher is sure teaches nothing new: it is not kept.
TIERS = ("onboarding", "disagreement", "low_confidence", "audit")
LOW_CONFIDENCE = 0.5  # a label whose best teacher detection is below this is a hard example


def informative(reason: str, student: tuple[DetectionRecord, ...], teacher: tuple[DetectionRecord, ...],
                low: float = LOW_CONFIDENCE) -> str:
    """The escalation's tier, or "" when it carries nothing to learn from. Onboarding frames are a new
    camera's first training set; a disagreement (the labels present differ) or a label the teacher is unsure
    of (its best detection of it below `low`) is a hard example, one faint box beside a sure one is not; an
    agreeing audit is the guard's evidence, kept for less time."""
    if reason == "onboarding":
        return "onboarding"
    if {d.label for d in student} != {d.label for d in teacher}:
        return "disagreement"
    best: dict[str, float] = {}
    for d in teacher:
        best[d.label] = max(best.get(d.label, 0.0), d.score)
    if any(score < low for score in best.values()):  # the teacher unsure the label is there at all
        return "low_confidence"
    return "audit" if reason == "audit" else ""


# The Firehose sink keeps records by lifecycle, one delivery stream (and one S3 prefix, with its own lifecycle
# rule) each: an agreeing audit for as long as a result row; every other tier (the training set) for the
# training retention, moved to Glacier Instant Retrieval after 30 days. Tags cannot go on a Firehose object.
LIFECYCLES = ("audit", "training")


def lifecycle(tier: str) -> str:
    """The lifecycle (delivery stream, packed prefix) a record of this tier goes to."""
    return "audit" if tier == "audit" else "training"


def batch_tier(tiers: list[str]) -> str:
    """The lifecycle tier of an object holding several records: the longest kept of theirs, so no record
    expires early ("audit", kept as long as a result row, only when every record is an audit)."""
    return next((t for t in tiers if t != "audit"), "audit" if tiers else "")
