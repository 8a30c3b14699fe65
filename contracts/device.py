"""The gateway's own messages to the cloud, beside the escalations (contracts/wire.py), versioned and
validated the same way:

- FrameEventMessage: the final decision for one sampled frame (the events topic).
- Telemetry: the gateway's health every N seconds (the telemetry topic).
- SpecializationEvent: one step of a camera's specialization (an attempt, its verdict, a promotion, a
  rollback) with its reason, on the events topic beside the frame events (`"type": "specialization"`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from contracts.codec import WIRE_VERSION, WireError, check_version, decode, encode, integer, number, require, text
from contracts.wire import DetectionRecord, detection_records

DECIDED_BY = ("edge", "cloud", "carried", "audit")


def _number(payload: Any, key: str, where: str, default: float | None = None) -> float:
    """A finite, non-negative number (rates, seconds, bytes, percentages)."""
    if default is not None and key not in payload:
        return default
    value = float(require(payload, key, (int, float), where))
    if not math.isfinite(value) or value < 0:
        raise WireError(f"{where}.{key}: {value} must be a finite number >= 0")
    return value


@dataclass(frozen=True)
class FrameEventMessage:
    """The final decision for one sampled frame, as the events topic carries it (at least once: the
    cloud deduplicates by message_id)."""

    message_id: str
    camera: str
    frame_index: int
    pts_s: float
    decided_by: str
    escalated: bool
    detections: tuple[DetectionRecord, ...]
    wall_time: float
    site: str = ""
    cloud_failed: bool = False

    def to_payload(self) -> dict:
        return {"v": WIRE_VERSION, "type": "event", "message_id": self.message_id, "site": self.site,
                "camera": self.camera, "frame_index": self.frame_index, "pts_s": round(self.pts_s, 3),
                "decided_by": self.decided_by, "escalated": self.escalated, "cloud_failed": self.cloud_failed,
                "wall_time": round(self.wall_time, 3), "detections": [d.to_payload() for d in self.detections]}

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"event {self.message_id}")

    @classmethod
    def from_payload(cls, payload: Any) -> FrameEventMessage:
        where = "event"
        check_version(payload, "event", where)
        decided_by = require(payload, "decided_by", str, where)
        if decided_by not in DECIDED_BY:
            raise WireError(f"{where}.decided_by: {decided_by!r} is not one of {DECIDED_BY}")
        return cls(
            message_id=require(payload, "message_id", str, where), camera=require(payload, "camera", str, where),
            frame_index=require(payload, "frame_index", int, where), pts_s=_number(payload, "pts_s", where),
            decided_by=decided_by, escalated=require(payload, "escalated", bool, where),
            detections=detection_records(require(payload, "detections", list, where), f"{where}.detections"),
            wall_time=_number(payload, "wall_time", where), site=str(payload.get("site", "")),
            cloud_failed=bool(payload.get("cloud_failed", False)),
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> FrameEventMessage:
        return cls.from_payload(decode(data, "event"))


CAMERA_RATES = ("fps", "motion_rate", "escalation_rate", "cloud_failed_rate")
# Added later, so optional on the way in (0 when an older agent leaves it out): own_student 1 when the camera
# runs a (specialized) student of its own; warming_up 1 while it onboards (auditing more, collecting its first
# training records); guard_max_escalation the escalation share above which its guard rolls the own student
# back (0: no such limit).
CAMERA_OPTIONAL = ("own_student", "warming_up", "guard_max_escalation")


@dataclass(frozen=True)
class Telemetry:
    """The gateway's health over the last interval. Per camera: sampled fps, and the shares of sampled
    frames with motion, escalated, and decided at the edge because the cloud failed (0..1)."""

    message_id: str
    thing: str
    t_s: float
    interval_s: float
    agent_version: str
    model_version: str
    cpu_percent: float  # of one core, over the interval
    memory_mb: float  # resident set size
    spool_rows: int
    spool_bytes: int
    spool_evicted: int
    connected: bool
    cameras: dict[str, dict[str, float]]
    site: str = ""
    uptime_s: float = 0.0
    max_in_flight: int = 0  # escalations the gateway awaits at once at most (escalation.max_in_flight); 0: unknown

    def to_payload(self) -> dict:
        return {"v": WIRE_VERSION, "type": "telemetry", "message_id": self.message_id, "thing": self.thing,
                "site": self.site, "t_s": round(self.t_s, 3), "interval_s": round(self.interval_s, 3),
                "uptime_s": round(self.uptime_s, 1), "agent_version": self.agent_version,
                "model_version": self.model_version, "cpu_percent": round(self.cpu_percent, 1),
                "memory_mb": round(self.memory_mb, 1), "connected": self.connected,
                "spool": {"rows": self.spool_rows, "bytes": self.spool_bytes, "evicted": self.spool_evicted},
                "max_in_flight": self.max_in_flight,
                "cameras": {k: {r: round(v.get(r, 0.0), 4) for r in CAMERA_RATES + CAMERA_OPTIONAL}
                            for k, v in self.cameras.items()}}

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"telemetry {self.message_id}")

    @classmethod
    def from_payload(cls, payload: Any) -> Telemetry:
        where = "telemetry"
        check_version(payload, "telemetry", where)
        spool = require(payload, "spool", dict, where)
        cameras = require(payload, "cameras", dict, where)
        return cls(
            message_id=require(payload, "message_id", str, where), thing=require(payload, "thing", str, where),
            t_s=_number(payload, "t_s", where), interval_s=_number(payload, "interval_s", where),
            agent_version=require(payload, "agent_version", str, where),
            model_version=require(payload, "model_version", str, where),
            cpu_percent=_number(payload, "cpu_percent", where), memory_mb=_number(payload, "memory_mb", where),
            spool_rows=int(_number(spool, "rows", f"{where}.spool")),
            spool_bytes=int(_number(spool, "bytes", f"{where}.spool")),
            spool_evicted=int(_number(spool, "evicted", f"{where}.spool")),
            connected=require(payload, "connected", bool, where),
            cameras={str(k): {**{r: _number(v, r, f"{where}.cameras.{k}") for r in CAMERA_RATES},
                              **{r: _number(v, r, f"{where}.cameras.{k}", 0.0) for r in CAMERA_OPTIONAL}}
                     for k, v in cameras.items()},
            site=str(payload.get("site", "")), uptime_s=_number(payload, "uptime_s", where, 0.0),
            max_in_flight=int(_number(payload, "max_in_flight", where, 0)),  # absent from older agents
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Telemetry:
        return cls.from_payload(decode(data, "telemetry"))


# What a step of a camera's specialization is: a training attempt started; its verdict (keep the champion,
# collect more evidence, or failed: the trainer crashed, the install was refused, the agent stopped); a
# promoted student installed for the camera; a rollback by its guard.
SPECIALIZATION_KINDS = ("attempt", "keep", "collect", "failed", "promotion", "rollback")
MAX_REASON = 1000  # characters of the reason kept (a trainer's error tail can be long)


@dataclass(frozen=True)
class SpecializationEvent:
    """One step of a camera's specialization on its gateway (edge_agent/specialization/), sent at least once
    through the spool on the events topic; the cloud keeps it once by message_id."""

    message_id: str
    camera: str
    t_s: float
    kind: str
    reason: str
    site: str = ""
    outcome: str = ""  # the gateway's own word for it (promoted, kept, collecting, refused, interrupted...)
    version: str = ""  # the student concerned: the champion trained from, the one promoted or rolled back
    records: int = 0  # the camera's training records at the time

    def to_payload(self) -> dict:
        return {"v": WIRE_VERSION, "type": "specialization", "message_id": self.message_id, "site": self.site,
                "camera": self.camera, "t_s": round(self.t_s, 3), "kind": self.kind,
                "reason": self.reason[:MAX_REASON], "outcome": self.outcome, "version": self.version,
                "records": self.records}

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"specialization {self.message_id}")

    @classmethod
    def from_payload(cls, payload: Any) -> SpecializationEvent:
        where = "specialization"
        check_version(payload, "specialization", where)
        kind = require(payload, "kind", str, where)
        if kind not in SPECIALIZATION_KINDS:
            raise WireError(f"{where}.kind: {kind!r:.40} is not one of {SPECIALIZATION_KINDS}")
        reason = require(payload, "reason", str, where)
        if len(reason) > MAX_REASON:
            raise WireError(f"{where}.reason: {len(reason)} characters, over {MAX_REASON}")
        return cls(
            message_id=text(payload, "message_id", where), camera=text(payload, "camera", where),
            t_s=number(payload, "t_s", where, lo=0), kind=kind, reason=reason,
            site=text(payload, "site", where, required=False), outcome=text(payload, "outcome", where, required=False),
            version=text(payload, "version", where, required=False),
            records=integer(payload, "records", where) if "records" in payload else 0)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> SpecializationEvent:
        return cls.from_payload(decode(data, "specialization"))


def message_type(payload: Any) -> str:
    """The `type` of a gateway message read from the events topic ("event" or "specialization"), "" if none."""
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else ""
