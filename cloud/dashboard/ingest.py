"""The gateways' frame events, specialization steps and telemetry into the results store, for the dashboard.

Locally the IoT rule bridge (cloud/bridge.py) calls `ingest` for every message on `{prefix}/+/events` and
`{prefix}/+/telemetry`. On AWS the same function runs behind an IoT topic rule
(`SELECT *, topic(2) AS thing_name FROM 'framesieve/+/events'`, and one for telemetry) whose action is a
Lambda with `handler` below: one small write per message, no teacher call. The events topic carries two
message types: a frame event per sampled frame, and now and then a camera's specialization step
(`"type": "specialization"`: an attempt, its verdict, a promotion, a rollback), kept for the Camera page.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from cloud.stores import ResultsStore
from contracts.codec import WireError
from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry, message_type

log = logging.getLogger("framesieve.ingest")


def ingest(store: ResultsStore, thing: str, kind: str, payload: bytes | dict, now_s: float | None = None) -> str:
    """One message of a gateway: "stored", "repeat" (an event counted already, or older telemetry),
    "malformed", or "unauthorized" (a thing or camera the registry does not give to this gateway)."""
    now = time.time() if now_s is None else now_s
    try:
        data = json.loads(payload) if isinstance(payload, bytes) else payload
        kind_class: type[FrameEventMessage | SpecializationEvent | Telemetry] = Telemetry
        if kind == "events":
            kind_class = SpecializationEvent if message_type(data) == "specialization" else FrameEventMessage
        message = kind_class.from_payload(data)
    except (WireError, ValueError, RecursionError) as exc:
        log.warning(json.dumps({"event": "ingest_malformed", "thing": thing, "kind": kind, "error": str(exc)[:200]}))
        return "malformed"
    entry = store.gateway(thing)
    if isinstance(message, Telemetry):
        if entry is None or message.thing != thing:  # a thing reports only on itself
            return "unauthorized"
        return "stored" if store.put_telemetry(message) else "repeat"
    if entry is None or message.camera not in entry.cameras:
        return "unauthorized"
    if isinstance(message, SpecializationEvent):
        return "stored" if store.put_specialization(thing, message) else "repeat"
    return "stored" if store.put_frame_event(thing, message, now) else "repeat"


_store: ResultsStore | None = None


def handler(event: dict[str, Any], _context: Any) -> dict[str, str]:
    """The Lambda behind the events/telemetry topic rules: the rule's SELECT adds `thing_name` and `kind`
    (topic(3)) beside the message's own fields."""
    global _store
    if _store is None:  # one store per Lambda container, reused across invocations
        import os

        from cloud import constants as c
        from cloud.stores import open_store

        _store = open_store(os.environ.get(c.STORE_URL, c.DEFAULT_STORE_URL))
    thing, kind = str(event.pop("thing_name", "")), str(event.pop("kind", ""))
    if kind not in ("events", "telemetry"):
        return {"status": "malformed"}
    return {"status": ingest(_store, thing, kind, event)}
