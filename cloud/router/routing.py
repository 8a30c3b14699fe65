"""What the router does with one escalation, as plain functions; `service.Router.process` composes them.

Order, chosen so that every retry is safe (IoT delivers at least once; Lambda retries a failed run):
1. parse and validate (malformed or oversized: a dead letter, a logged reason, a normal return);
2. read the result row by its key (time#message_id): present means a repeat, and nothing else is done;
3. invoke the endpoint (retries with backoff; a final failure: a dead letter, the gateway decides alone);
4. training capture to S3, sampled by message id, written with If-None-Match so a retry makes no 2nd object;
5. alerts: the (camera, label) slot is claimed by conditional write before SNS, released if SNS fails;
6. the verdict to the gateway's topic (iot-data); a repeat publish is harmless, the gateway keys by id;
7. the result row, by conditional write: the commit. A crash before it means 3-6 run again, deduplicated.
AWS failures of the store and SNS raise, so Lambda's bounded async retries take over.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cloud import constants as c
from cloud.alerts import AlertMatch
from cloud.stores import DeadLetter
from contracts.training import TrainingCrop, TrainingRecord
from contracts.wire import MAX_MESSAGE_BYTES, EscalationRequest, InvocationResponse, WireError

EXCERPT_CHARS = 300


class Rejected(Exception):
    """The message cannot be routed; `letter` says why."""

    def __init__(self, letter: DeadLetter):
        super().__init__(letter.reason)
        self.letter = letter


@dataclass(frozen=True)
class Parsed:
    request: EscalationRequest
    topic: str
    thing: str
    t_s: float  # the frame's wall-clock time: the edge's created_s, else when the IoT rule received it
    size: int


@dataclass
class Outcome:
    status: str  # stored | unchanged (store_writes=change) | duplicate | dead_letter
    message_id: str
    reason: str = ""
    detections: int = 0
    alerts: list[str] = field(default_factory=list)
    training_key: str = ""
    published_to: str = ""
    calls: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", [], None) or k in ("status", "calls")}


def parse_event(event: Any, now_s: float) -> Parsed:
    """The escalation the IoT rule delivers (its JSON plus `topic` and `thing_name`), or raw JSON text."""
    rule: dict[str, Any] = {}
    if isinstance(event, dict):
        rule = {k: event[k] for k in c.RULE_FIELDS if k in event}
        payload = {k: v for k, v in event.items() if k not in c.RULE_FIELDS}
        raw = json.dumps(payload, separators=(",", ":")).encode()
    elif isinstance(event, (str, bytes)):
        raw = event.encode() if isinstance(event, str) else event
        payload = None
    else:
        payload, raw = None, repr(event).encode()
    topic, thing = str(rule.get(c.EVENT_TOPIC, "")), str(rule.get(c.EVENT_THING, ""))

    def reject(kind: str, reason: str, message_id: Any = None) -> Rejected:
        ident = message_id if isinstance(message_id, str) and 0 < len(message_id) <= 128 else None
        key = f"{ident or hashlib.sha256(raw).hexdigest()[:32]}:{kind}"
        return Rejected(DeadLetter(key=key, t_s=now_s, kind=kind, reason=reason, topic=topic, thing=thing,
                                   size=len(raw), excerpt=raw[:EXCERPT_CHARS].decode("utf-8", "replace")))

    if len(raw) > MAX_MESSAGE_BYTES:
        mid = payload.get("message_id") if isinstance(payload, dict) else None
        raise reject("oversized", f"the message is {len(raw)} bytes, over the {MAX_MESSAGE_BYTES}-byte IoT "
                                  "limit; the edge must send fewer or smaller crops", mid)
    if payload is None:
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise reject("malformed", f"the message is not JSON: {exc}") from exc
    mid = payload.get("message_id") if isinstance(payload, dict) else None
    try:
        request = EscalationRequest.from_payload(payload)
    except WireError as exc:
        raise reject("malformed", str(exc), mid) from exc
    for name, value in (("message_id", request.message_id), ("camera", request.camera)):
        if not value or len(value) > 128 or not value.isprintable():
            raise reject("malformed", f"escalation.{name}: {value!r:.60} must be 1-128 printable characters", mid)
    received = rule.get(c.EVENT_RECEIVED_MS)
    t_s = request.created_s if request.created_s > 0 else (
        float(received) / 1000 if isinstance(received, (int, float)) and received > 0 else now_s)
    return Parsed(request, topic, thing, t_s, len(raw))


def captured(message_id: str, rate: float) -> bool:
    """Deterministic sampling by message id, so every retry of a message decides the same way."""
    if rate >= 1:
        return True
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "big") / 2 ** 64 < rate


def training_key(prefix: str, parsed: Parsed, day: str) -> str:
    r = parsed.request
    return f"{prefix}{quote(r.site or '_', safe='-_.')}/{quote(r.camera, safe='-_.')}/{day}/" \
           f"{quote(r.message_id, safe='-_.')}.json"


def training_record(parsed: Parsed, response: InvocationResponse) -> bytes:
    """The crops and the teacher's labels in the crop's own pixels (what a student is trained on), with
    each crop's place in the frame: one object per escalation, so one PUT however many crops."""
    r, teacher = parsed.request, dict(response.predictions)
    crops = tuple(TrainingCrop(crop, teacher.get(str(crop.crop_id), ())) for crop in r.crops)
    return TrainingRecord(r.message_id, r.camera, parsed.t_s, r.pts_s, r.frame_index, r.reason, response.model, crops,
                          r.site, parsed.thing, r.student).to_bytes()


def alert_message(parsed: Parsed, matches: list[AlertMatch]) -> dict[str, Any]:
    r = parsed.request
    return {"type": "framesieve-alert", "message_id": r.message_id, "site": r.site, "camera": r.camera,
            "thing": parsed.thing, "t_s": parsed.t_s,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(parsed.t_s)), "frame_index": r.frame_index,
            "alerts": [{"label": m.label, "rule": m.rule.name, "score": round(m.score, 3),
                        "box": [round(v, 1) for v in m.box]} for m in matches]}
