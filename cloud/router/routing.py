"""What the router does with one escalation, as plain functions; `service.Router.process` composes them.

Order, chosen so that every retry is safe (IoT delivers at least once; Lambda retries a failed run):
1. parse and validate every field (malformed or oversized: a dead letter, a logged reason, a normal return,
   and an error verdict to the gateway when the message named its id);
2. authorize: the thing name the IoT rule delivers is the authority; the message's site and camera must be
   registered to that thing (contracts/registry.py), else a dead letter "unauthorized": no paid call, row,
   alert or S3 object. The stored site is the registered one;
3. the event time: created_s within +/-FRAMESIEVE_EVENT_WINDOW_S of the receive time, else the receive time;
   the first delivery's time is kept per (thing, message id), so a repeat finds the same row key. A gateway
   batch claims once: its first receive time per (thing, batch id), every item's time derived from it
   (pin_to); an escalation re-sent alone after its batch was refused names the batch and takes the same path;
4. read the result row by that key: present means a repeat, and nothing else is done;
5. invoke the endpoint (retries with backoff; a final failure: a dead letter and an error verdict);
6. training capture to S3, sampled by message id, written with If-None-Match so a retry makes no 2nd object;
7. alerts: the (camera, label) slot is claimed by conditional write before SNS, released if SNS fails;
8. the verdict to the gateway's topic (iot-data); a repeat publish is harmless, the gateway keys by id;
9. the result row, by conditional write: the commit. A crash before it means 5-8 run again, deduplicated.
AWS failures of the store and SNS raise, so Lambda's bounded async retries take over.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from cloud import constants as c
from cloud.alerts import AlertMatch
from cloud.stores import DeadLetter
from contracts.batch import reply_of
from contracts.codec import MAX_JSON_DEPTH, check_depth, json_depth, loads
from contracts.registry import THING_NAME
from contracts.training import BATCH_FOLDER, TrainingCrop, TrainingRecord
from contracts.wire import MAX_MESSAGE_BYTES, EscalationRequest, InvocationResponse, WireError

EXCERPT_CHARS = 300
_INGEST = re.compile(r"^\$aws/rules/[^/]+/")  # Basic Ingest: $aws/rules/<rule>/<prefix>/<thing>/escalations


class Rejected(Exception):
    """The message cannot be routed; `letter` says why, `reply` (message id, camera, frame index) is what
    an error verdict needs when the message named them, `thing` where it may go."""

    def __init__(self, letter: DeadLetter, reply: tuple[str, str, int] | None = None):
        super().__init__(letter.reason)
        self.letter, self.reply = letter, reply


@dataclass(frozen=True)
class Parsed:
    request: EscalationRequest  # its site is the registered one once the router has checked it
    topic: str
    thing: str
    t_s: float  # the frame's wall-clock time: the edge's created_s within the window, else the receive time
    size: int
    clock: str = ""  # why t_s is not the edge's created_s, when it is not
    received_s: float = 0.0  # the IoT rule's receive time (the router's clock when the rule gave none)


@dataclass
class Outcome:
    status: str  # stored | unchanged (store_writes=change) | duplicate | dead_letter
    message_id: str
    reason: str = ""
    detections: int = 0
    alerts: list[str] = field(default_factory=list)
    training_key: str = ""
    published_to: str = ""
    clock: str = ""
    calls: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", [], None) or k in ("status", "calls")}


def _identity(rule: dict[str, Any]) -> tuple[str, str, str]:
    """(thing, topic, why not) from the IoT rule's fields: the thing must be a thing name, and the topic
    and client id, where the rule gives them, must name the same thing (the IoT policy binds all three)."""
    thing, topic, client = rule.get(c.EVENT_THING, ""), rule.get(c.EVENT_TOPIC, ""), rule.get(c.EVENT_CLIENT)
    if not isinstance(thing, str) or not THING_NAME.match(thing):
        return "", str(topic)[:200], f"the rule's thing name {thing!r:.60} is missing or not a thing name"
    topic = topic if isinstance(topic, str) else ""
    parts = _INGEST.sub("", topic).split("/")
    if topic and (len(parts) != 3 or parts[1] != thing or parts[2] != "escalations"):
        return thing, topic[:200], f"topic {topic!r:.100} is not the escalation topic of thing {thing!r}"
    if client is not None and client != thing:
        return thing, topic, f"client id {client!r:.60} is not thing {thing!r}"
    return thing, topic, ""


def _lenient(raw: bytes) -> Any:
    try:
        return json.loads(raw) if json_depth(raw, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH else None
    except (ValueError, RecursionError):
        return None


def _received_s(rule: dict[str, Any], now_s: float) -> float:
    received = rule.get(c.EVENT_RECEIVED_MS)
    ok = isinstance(received, (int, float)) and not isinstance(received, bool) and 0 < received < 1e14
    return float(received) / 1000 if ok and math.isfinite(received) else now_s  # type: ignore[arg-type]


def parse_event(event: Any, now_s: float, window_s: float = c.DEFAULT_EVENT_WINDOW_S) -> Parsed:
    """The escalation the IoT rule delivers: its rule fields beside the message (base64 in `payload_b64`,
    or, from the older `SELECT *` rule, the message's own keys), or raw JSON text. Every field is checked,
    bounded and finite here, before anything is paid for."""
    rule: dict[str, Any] = {}
    payload: Any = None
    if isinstance(event, dict):
        rule = {k: event[k] for k in c.RULE_FIELDS if k in event}
        if c.EVENT_PAYLOAD in event:
            encoded = event[c.EVENT_PAYLOAD]
            try:
                raw = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
            except ValueError:  # not base64: refused below as not JSON
                raw = b""
        else:
            payload = {k: v for k, v in event.items() if k not in c.RULE_FIELDS}
            try:
                check_depth(payload, "the message")
                raw = json.dumps(payload, separators=(",", ":")).encode()
            except (WireError, ValueError, TypeError, RecursionError) as exc:
                payload, raw = exc, repr(event)[:EXCERPT_CHARS].encode()
    elif isinstance(event, (str, bytes)):
        raw = event.encode() if isinstance(event, str) else event
    else:
        raw = repr(event)[:EXCERPT_CHARS].encode()
        payload = WireError(f"the event is a {type(event).__name__}, not a JSON object")
    thing, topic, impostor = _identity(rule)

    def reject(kind: str, reason: str, reply: tuple[str, str, int] | None = None) -> Rejected:
        ident = reply[0] if reply else None
        key = f"{ident or hashlib.sha256(raw).hexdigest()[:32]}:{kind}"
        return Rejected(DeadLetter(key=key, t_s=now_s, kind=kind, reason=reason, topic=topic, thing=thing,
                                   size=len(raw), excerpt=raw[:EXCERPT_CHARS].decode("utf-8", "replace")),
                        reply if thing and not impostor else None)

    if len(raw) > MAX_MESSAGE_BYTES:
        raise reject("oversized", f"the message is {len(raw)} bytes, over the {MAX_MESSAGE_BYTES}-byte IoT "
                                  "limit; the edge must send fewer or smaller crops", reply_of(payload))
    if isinstance(payload, Exception):
        raise reject("malformed", f"the message is not JSON within the limits: {payload}")
    if payload is None:
        try:
            payload = loads(raw, "the message")
        except WireError as exc:  # refused; read leniently (NaN allowed) only to tell the gateway which message
            raise reject("malformed", str(exc), reply_of(_lenient(raw))) from exc
    try:
        request = EscalationRequest.from_payload(payload)
    except WireError as exc:
        raise reject("malformed", str(exc), reply_of(payload)) from exc
    reply = (request.message_id, request.camera, request.frame_index)
    if impostor:
        raise reject("unauthorized", impostor, reply)
    received = _received_s(rule, now_s)
    t_s, clock = received, ""
    if request.created_s > 0:
        if abs(request.created_s - received) <= window_s:
            t_s = request.created_s
        else:
            clock = (f"created_s {request.created_s:.3f} is {request.created_s - received:+.0f} s from the IoT "
                     f"receive time, outside +/-{window_s:.0f} s: the receive time is used")
    return Parsed(request, topic, thing, t_s, len(raw), clock, received)


def pin_to(parsed: Parsed, anchor_s: float, window_s: float) -> Parsed:
    """The escalation's time from its batch's anchor (the batch's first receive time, claimed once per batch):
    the edge's created_s within the window of it, else the anchor itself. Every delivery of the item, in its
    batch or re-sent alone naming it, gets the same anchor and so the same time and row key."""
    created = parsed.request.created_s
    if created > 0 and abs(created - anchor_s) <= window_s:
        return replace(parsed, t_s=created, clock="")
    clock = (f"created_s {created:.3f} is {created - anchor_s:+.0f} s from its batch's first receive time, outside "
             f"+/-{window_s:.0f} s: that receive time is used") if created > 0 else ""
    return replace(parsed, t_s=anchor_s, clock=clock)


def captured(message_id: str, rate: float) -> bool:
    """Deterministic sampling by message id, so every retry of a message decides the same way."""
    if rate >= 1:
        return True
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "big") / 2 ** 64 < rate


def training_key(prefix: str, parsed: Parsed, day: str) -> str:
    r = parsed.request
    return direct_key(prefix, r.site, r.camera, r.message_id, day)


def direct_key(prefix: str, site: str, camera: str, message_id: str, day: str) -> str:
    """One escalation's own training object: `<prefix><site>/<camera>/<day>/<message id>.json`."""
    return f"{prefix}{quote(site or '_', safe='-_.')}/{quote(camera, safe='-_.')}/{day}/" \
           f"{quote(message_id, safe='-_.')}.json"


def packed_key(packed_prefix: str, lifecycle: str, sent_s: float, message_id: str) -> str:
    """Where a record sent to a delivery stream is found: the hour's folder Firehose delivers it under
    (`<prefix><lifecycle>/YYYY/MM/DD/HH/`, by arrival time, UTC; the object holding it may be filed under the
    hour before, when its first record arrived then), `#`, its message id. A reader lists the folder."""
    return f"{packed_prefix}{lifecycle}/{time.strftime('%Y/%m/%d/%H', time.gmtime(sent_s))}/#" \
           f"{quote(message_id, safe='-_.')}"


def training_entry(parsed: Parsed, response: InvocationResponse) -> TrainingRecord:
    """The crops and the teacher's labels in the crop's own pixels (what a student is trained on), with
    each crop's place in the frame."""
    r, teacher = parsed.request, dict(response.predictions)
    crops = tuple(TrainingCrop(crop, teacher.get(str(crop.crop_id), ())) for crop in r.crops)
    return TrainingRecord(r.message_id, r.camera, parsed.t_s, r.pts_s, r.frame_index, r.reason, response.model, crops,
                          r.site, parsed.thing, r.student)


def training_record(parsed: Parsed, response: InvocationResponse) -> bytes:
    """One escalation's training object: one PUT however many crops."""
    return training_entry(parsed, response).to_bytes()


def batch_training_key(prefix: str, site: str, thing: str, batch_id: str, day: str) -> str:
    """The one training object of a gateway batch: `<prefix><site>/=batches/<day>/<thing>/<batch id>.json`,
    beside the site's camera folders (its records may be of several cameras). A row's training key is this
    key, then `#` and its message id (`record_key`)."""
    return f"{prefix}{quote(site or '_', safe='-_.')}/{BATCH_FOLDER}/{day}/{quote(thing, safe='-_.')}/" \
           f"{quote(batch_id, safe='-_.')}.json"


def record_key(object_key: str, message_id: str) -> str:
    return f"{object_key}#{quote(message_id, safe='-_.')}"


def alert_message(parsed: Parsed, matches: list[AlertMatch]) -> dict[str, Any]:
    r = parsed.request
    return {"type": "framesieve-alert", "message_id": r.message_id, "site": r.site, "camera": r.camera,
            "thing": parsed.thing, "t_s": parsed.t_s,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(parsed.t_s)), "frame_index": r.frame_index,
            "alerts": [{"label": m.label, "rule": m.rule.name, "score": round(m.score, 3),
                        "box": [round(v, 1) for v in m.box]} for m in matches]}
