"""Per-gateway batches (wire version 2): a gateway's escalations from all its cameras in one message, and
the cloud's answers in one verdict message, matched by message id. Version 1 messages (one escalation, one
verdict) stay valid both ways. A v2 batch sent to a v1 router is dead-lettered and the gateway decides alone,
so a gateway sends batches only once a verdict said the cloud reads them (`Verdict.accepts_v`, which the
router sets to BATCH_VERSION on every verdict), and stops when a verdict no longer says so.

A batch is parsed item by item: one malformed escalation does not spoil the others; it comes back as an
`ItemError` with what an error verdict needs when the item named its id. Pure Python, as wire.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.codec import MAX_MESSAGE_BYTES, WireError, decode, encode, require, text
from contracts.wire import EscalationRequest, Verdict

BATCH_VERSION = 2
MAX_BATCH = 64  # escalations per batch; the 128 KB IoT limit usually binds first
ENVELOPE_BYTES = 256  # what a batch's own JSON adds around its escalations (the gateway's batcher reserves it)
# The gateway's batch window when its config names none (escalation.batch_window_ms): defined here, once, because
# both sides price it: the agent's setting defaults to it and the cloud's Cost page derives occupancy from it.
DEFAULT_BATCH_WINDOW_MS = 250


def _check(payload: Any, kind: str, where: str) -> None:
    version = require(payload, "v", int, where)
    if version != BATCH_VERSION:
        raise WireError(f"{where}: wire version {version} is not a batch (batches are version {BATCH_VERSION})")
    if payload.get("type") != kind:
        raise WireError(f"{where}: expected type {kind!r}, got {payload.get('type')!r:.40}")


@dataclass(frozen=True)
class ItemError:
    index: int
    reason: str
    reply: tuple[str, str, int] | None  # (message id, camera, frame index) when the item named them


def reply_of(value: Any) -> tuple[str, str, int] | None:
    if not isinstance(value, dict):
        return None
    mid, camera, index = value.get("message_id"), value.get("camera"), value.get("frame_index")
    if not (isinstance(mid, str) and 0 < len(mid) <= 128 and mid.isprintable()):
        return None
    camera = camera if isinstance(camera, str) and len(camera) <= 128 and camera.isprintable() else ""
    index = index if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 2 ** 53 else 0
    return mid, camera, index


@dataclass(frozen=True)
class EscalationBatch:
    batch_id: str
    escalations: tuple[EscalationRequest, ...]
    errors: tuple[ItemError, ...] = ()  # items that did not parse (only from_payload fills this)
    # The gateway re-sends a refused batch's escalations naming this batch (EscalationRequest.batch_id), so the
    # router may claim the batch's time once instead of once per escalation. A batch without it (a gateway older
    # than the naming) is claimed per escalation, as before: its re-sent escalations name nothing.
    resends_named: bool = False

    def to_payload(self) -> dict:
        payload = {"v": BATCH_VERSION, "type": "escalation_batch", "batch_id": self.batch_id,
                   "escalations": [e.to_payload() for e in self.escalations]}
        if self.resends_named:
            payload["resends_named"] = True
        return payload

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"escalation batch {self.batch_id}")

    @classmethod
    def from_payload(cls, payload: Any) -> EscalationBatch:
        where = "batch"
        _check(payload, "escalation_batch", where)
        items = require(payload, "escalations", list, where)
        if not items:
            raise WireError(f"{where}.escalations: a batch carries at least one escalation")
        if len(items) > MAX_BATCH:
            raise WireError(f"{where}.escalations: {len(items)} escalations, over the {MAX_BATCH} a batch may carry")
        good, bad, seen = [], [], set()
        for i, item in enumerate(items):
            try:
                request = EscalationRequest.from_payload(item)
            except WireError as exc:
                bad.append(ItemError(i, f"{where}.escalations[{i}]: {exc}", reply_of(item)))
                continue
            if request.message_id in seen:  # the same escalation twice in one batch: answered once
                continue
            seen.add(request.message_id)
            good.append(request)
        named = payload.get("resends_named", False)
        if not isinstance(named, bool):
            raise WireError(f"{where}.resends_named: must be true or false; got {named!r:.40}")
        return cls(text(payload, "batch_id", where), tuple(good), tuple(bad), named)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> EscalationBatch:
        return cls.from_payload(decode(data, "escalation batch"))


@dataclass(frozen=True)
class VerdictBatch:
    batch_id: str
    verdicts: tuple[Verdict, ...]

    def to_payload(self) -> dict:
        return {"v": BATCH_VERSION, "type": "verdict_batch", "batch_id": self.batch_id,
                "verdicts": [v.to_payload() for v in self.verdicts]}

    def to_bytes(self) -> bytes:
        return encode(self.to_payload(), f"verdict batch {self.batch_id}")

    @classmethod
    def from_payload(cls, payload: Any) -> VerdictBatch:
        where = "verdict batch"
        _check(payload, "verdict_batch", where)
        items = require(payload, "verdicts", list, where)
        return cls(text(payload, "batch_id", where), tuple(Verdict.from_payload(v) for v in items))

    @classmethod
    def from_bytes(cls, data: bytes | str) -> VerdictBatch:
        return cls.from_payload(decode(data, "verdict batch", MAX_MESSAGE_BYTES))


def is_batch(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("type") == "escalation_batch"
