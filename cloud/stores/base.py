"""The results store behind the router and the API: one abstract base, one backend per service.

What it holds, and the queries it must answer cheaply:
- a result row per escalation, keyed (camera, time, message id): "camera X between t1 and t2" is one
  range read, "site S on day D" is one index read, and the key doubles as the idempotency key (a
  conditional write: a repeated message makes no second row);
- alert cooldowns per (camera, label), claimed by conditional write so concurrent routers agree;
- dead letters: what was refused or could not be answered, with the reason;
- the gateway registry (contracts/registry.py): the site and cameras each thing may write for;
- per message id, the event time its first delivery was given, so a repeat finds the same row key;
- the gateways' frame events as per-minute counters and their latest telemetry (the dashboard's fleet view);
- each camera's specialization steps (attempts, verdicts, promotions, rollbacks), one row each.
"""

from __future__ import annotations

import base64
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from cloud.exceptions import StoreError
from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry
from contracts.registry import Registration


def day_of(t_s: float) -> str:
    """The UTC day of an epoch time, as the site/day index keys it."""
    return time.strftime("%Y-%m-%d", time.gmtime(t_s))


def time_key(t_s: float, message_id: str) -> str:
    """Sort key: zero-padded epoch milliseconds, then the message id (unique within a millisecond)."""
    return f"{int(round(t_s * 1000)):013d}#{message_id}"


@dataclass(frozen=True)
class StoredDetection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # source-frame pixels
    crop_id: int


@dataclass(frozen=True)
class ShadowAnswer:
    """What the other production variant answered for the same crops (TargetVariant), kept beside the served
    answer: it decides nothing (no verdict, no alert), it is only compared (`framesieve-cloud ab report`)."""

    variant: str
    labels: tuple[str, ...] = ()  # labels present in its answer
    counts: dict[str, int] = field(default_factory=dict)  # detections per label
    endpoint_ms: float = 0.0
    error: str = ""  # why it has no answer ("" when it answered)

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "labels": list(self.labels), "counts": dict(self.counts),
                "endpoint_ms": round(self.endpoint_ms, 2), "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowAnswer:
        return cls(str(data.get("variant", "")), tuple(data.get("labels", ())),
                   {str(k): int(v) for k, v in (data.get("counts") or {}).items()},
                   float(data.get("endpoint_ms", 0.0)), str(data.get("error", "")))


@dataclass(frozen=True)
class ResultRecord:
    """The teacher's verdict on one escalation, as stored and served by the API."""

    message_id: str
    camera: str
    t_s: float  # the frame's wall-clock time (the edge's created_s; else when IoT received it)
    site: str = ""
    thing: str = ""
    frame_index: int = 0
    pts_s: float = 0.0
    reason: str = "uncertain"
    model: str = ""
    crops: int = 0
    detections: tuple[StoredDetection, ...] = ()
    alerts: tuple[str, ...] = ()  # "label:rule" of each alert sent for this escalation
    training_key: str = ""  # the S3 key of its training record, if captured
    calls: dict[str, int] = field(default_factory=dict)
    expires_at: int = 0  # epoch seconds; 0: never
    # champion/challenger (cloud/ab/): which production variant answered, how long the call took at the router,
    # the labels the edge reported (for an audit: its own confident decision), and the shadow answer, if any
    variant: str = ""  # SageMaker's InvokedProductionVariant; "" where the endpoint names none
    endpoint_ms: float = 0.0  # the answered invocation's round trip at the router, retries included
    call_images: int = 0  # images in that invocation (more than `crops` when a batch's call answered it)
    edge_labels: tuple[str, ...] = ()  # labels of the edge's own detections for the frame (request.student)
    shadow: ShadowAnswer | None = None

    @property
    def key(self) -> str:
        return time_key(self.t_s, self.message_id)

    @property
    def day(self) -> str:
        return day_of(self.t_s)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["detections"] = [{"label": d.label, "score": round(d.score, 4), "box": [round(v, 1) for v in d.box],
                              "crop_id": d.crop_id} for d in self.detections]
        out["alerts"] = list(self.alerts)
        out["edge_labels"] = list(self.edge_labels)
        out["endpoint_ms"] = round(self.endpoint_ms, 2)
        out["shadow"] = self.shadow.to_dict() if self.shadow else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRecord:
        dets = tuple(StoredDetection(d["label"], float(d["score"]), tuple(float(v) for v in d["box"]),  # type: ignore[arg-type]
                                     int(d.get("crop_id", 0))) for d in data.get("detections", ()))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.update(detections=dets, alerts=tuple(data.get("alerts", ())), t_s=float(data["t_s"]),
                     pts_s=float(data.get("pts_s", 0.0)), calls=dict(data.get("calls", {})),
                     edge_labels=tuple(data.get("edge_labels", ())), endpoint_ms=float(data.get("endpoint_ms", 0.0)),
                     shadow=ShadowAnswer.from_dict(data["shadow"]) if data.get("shadow") else None)
        return cls(**known)


@dataclass(frozen=True)
class DeadLetter:
    """A message the router refused (malformed, oversized) or could not answer (endpoint failure)."""

    key: str  # the message id where one could be read, else a digest of the raw message
    t_s: float
    kind: str  # malformed | oversized | endpoint
    reason: str
    topic: str = ""
    thing: str = ""
    size: int = 0
    excerpt: str = ""  # the start of the raw message, enough to identify it; never the whole crop data

    @property
    def day(self) -> str:
        return day_of(self.t_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_token: str | None  # pass back to get the next page; None: no more


def encode_token(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, keys: set[str]) -> dict[str, str]:
    """A page token this API issued: exactly `keys`, each short text; StoreError ("page token ...") if not."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        value = exc
    if not (isinstance(value, dict) and set(value) == keys
            and all(isinstance(v, str) and len(v) <= 1100 for v in value.values())):
        raise StoreError(f"page token {token[:40]!r} is not one this API issued; start again without it")
    return value


def counters_from(records: Iterable[ResultRecord]) -> dict[str, Any]:
    """Per-camera counters from its rows: what the cloud saw. Sampled frames are counted on the gateway.
    A running sum: rows may come one page at a time and are never held together."""
    labels: dict[str, int] = {}
    out = dict.fromkeys(("escalated", "uncertain", "audit", "with_detections", "alerts", "training_captured"), 0)
    for r in records:
        for label in {d.label for d in r.detections}:
            labels[label] = labels.get(label, 0) + 1
        out["escalated"] += 1
        out["uncertain"] += r.reason == "uncertain"
        out["audit"] += r.reason == "audit"
        out["with_detections"] += bool(r.detections)
        out["alerts"] += len(r.alerts)
        out["training_captured"] += bool(r.training_key)
    return {**out, "frames_with_label": labels}


class ResultsStore(ABC):
    """Results, alert cooldowns and dead letters. Writes are conditional where a repeat must not count twice."""

    @abstractmethod
    def get_result(self, camera: str, t_s: float, message_id: str) -> ResultRecord | None:
        """The row of this escalation, if one was stored (a strongly consistent read)."""

    @abstractmethod
    def put_result(self, record: ResultRecord) -> bool:
        """Store the row unless one with its key exists; False when it did (a repeated message)."""

    def put_results(self, records: list[ResultRecord]) -> int:
        """A batch's rows, written together (DynamoDB: one BatchWriteItem per 25). Unconditional where the
        service has no conditional batch write: the caller has read each row's key first (a repeated message
        is skipped before anything is paid), and a row written twice by racing deliveries is the same row under
        the same key, never a second one. Returns the rows written."""
        return sum(self.put_result(r) for r in records)

    @abstractmethod
    def query_camera(self, camera: str, t1_s: float, t2_s: float, limit: int = 100,
                     token: str | None = None) -> Page:
        """Rows of `camera` with t1 <= t < t2, oldest first."""

    @abstractmethod
    def latest_result(self, camera: str, before_t_s: float) -> ResultRecord | None:
        """The camera's newest row before a time (for writing rows only on a change)."""

    @abstractmethod
    def query_site_day(self, site: str, day: str, limit: int = 100, token: str | None = None) -> Page:
        """Rows of every camera of `site` on UTC day `day` (YYYY-MM-DD), oldest first."""

    @abstractmethod
    def claim_alert(self, camera: str, label: str, now_s: float, cooldown_s: float, message_id: str) -> str:
        """Take the (camera, label) alert slot: "claimed"; "cooldown" when another message alerted less
        than cooldown_s ago; "mine" when this message already holds it (a repeated delivery)."""

    @abstractmethod
    def release_alert(self, camera: str, label: str, message_id: str) -> None:
        """Give a claimed slot back (the SNS publish failed), so a retry can alert."""

    @abstractmethod
    def put_dead_letter(self, letter: DeadLetter) -> bool:
        """Record it unless the same key was recorded that day; False when it was."""

    @abstractmethod
    def dead_letters(self, day: str, limit: int = 100, token: str | None = None) -> Page:
        """Dead letters of a UTC day, in key order."""

    @abstractmethod
    def register_gateway(self, entry: Registration) -> None:
        """Record (or replace) a gateway's site and cameras; StoreError naming the camera when another
        gateway owns one of them (nothing is written then)."""

    @abstractmethod
    def gateway(self, thing: str) -> Registration | None:
        """The registry entry of a thing (a strongly consistent read), None when it has none."""

    @abstractmethod
    def claim_message(self, thing: str, message_id: str, t_s: float, expires_at: int) -> float:
        """The event time of this gateway's message: `t_s` the first time it is seen, else the time the
        first delivery recorded (one atomic write), so every delivery keys the same result row."""

    @abstractmethod
    def claim_batch(self, thing: str, batch_id: str, t_s: float, expires_at: int) -> float:
        """The anchor time of this gateway's batch: `t_s` (the receive time) the first time the batch id is seen,
        whole or as one of its escalations re-sent alone, else the time recorded then (one atomic write); every
        item's time is derived from it (routing.pin_to), so every delivery of an item keys the same row. Kept
        apart from message claims: a message id can never stand for a batch id."""

    @abstractmethod
    def put_frame_event(self, thing: str, event: FrameEventMessage, now_s: float) -> bool:
        """Add a gateway's frame event to its camera's minute (cloud/stores/fleetdata.py) unless this message
        id was counted already; False for a repeat."""

    @abstractmethod
    def put_frame_counts(self, thing: str, camera: str, t_s: float, delta: dict[str, int], message_id: str,
                         now_s: float) -> bool:
        """Add counters (fleetdata.COUNTERS) to the camera's minute of `t_s` unless `message_id` was counted
        already (one write): what put_frame_event does for one event, for many frames of one minute at once
        (the sieve for landed video sums a minute's frames into one write); False for a repeat."""

    @abstractmethod
    def event_buckets(self, camera: str, t1_s: float, t2_s: float) -> list[dict[str, int]]:
        """The camera's minute rows with t1 <= minute < t2, oldest first (bounded: at most 31 days)."""

    @abstractmethod
    def put_telemetry(self, telemetry: Telemetry) -> bool:
        """Keep a gateway's telemetry if it is newer than the one kept; False when it was not."""

    @abstractmethod
    def fleet_telemetry(self) -> list[Telemetry]:
        """The latest telemetry of every gateway that sent one, by thing name."""

    @abstractmethod
    def put_specialization(self, thing: str, event: SpecializationEvent) -> bool:
        """Keep a camera's specialization step (cloud/stores/fleetdata.py specialization_row) unless one with its
        time and message id is kept already; False for a repeat."""

    @abstractmethod
    def specialization_history(self, camera: str, limit: int = 50) -> list[dict[str, Any]]:
        """The camera's newest specialization steps, newest first (at most `limit`)."""

    def counters(self, camera: str, t1_s: float, t2_s: float) -> dict[str, Any]:
        """Counters of one camera over a time range: a running sum over its rows, one page (at most 1000
        rows) in memory at a time. Reads only; no write per escalation."""

        def rows() -> Iterator[ResultRecord]:
            token = None
            while True:
                page = self.query_camera(camera, t1_s, t2_s, limit=1000, token=token)
                yield from page.items
                if not (token := page.next_token):
                    return

        return counters_from(rows())

    def variant_results(self, t1_s: float, t2_s: float) -> Iterator[ResultRecord]:
        """Every row with t1 <= t < t2 that names the production variant that answered it, one page at a time
        (`framesieve-cloud ab report`). A read of the whole range: a report, not a per-escalation path."""
        raise NotImplementedError(f"{type(self).__name__} cannot list rows by variant")

    def ping(self) -> None:
        """Raise StoreError if the store cannot be reached (for the API's health check)."""
        return None

    def close(self) -> None:
        """Release connections."""
        return None
