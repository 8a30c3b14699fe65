"""What the dashboard needs from the gateways' own messages (contracts/device.py), reduced to what a store
keeps: per camera, one row of counters per minute of frame events; per gateway, its latest telemetry.

Frame events arrive once per sampled frame (about one a second per camera): kept one by one, a week of 20
cameras is 12 M rows; kept as minute buckets it is 200 k, and a day's timeline is one range read of 1440.

A camera's specialization steps (contracts/device.py SpecializationEvent) are rare (an attempt every hour or
so at most) and kept one by one, newest first on read, for SPECIALIZATION_KEEP_S.
"""

from __future__ import annotations

from typing import Any

from contracts.device import FrameEventMessage, SpecializationEvent

BUCKET_S = 60
EVENT_DEDUP_S = 2 * 86400  # a repeated event (QoS 1) arrives within seconds; its id is kept two days
COUNTERS = ("sampled", "edge", "cloud", "escalated", "cloud_failed", "people", "vehicles")
SPECIALIZATION_KEEP_S = 180 * 86400
SPECIALIZATION_READ = 50  # the most steps a camera's history shows
VEHICLES = frozenset({"vehicle", "car", "truck", "bus", "motorcycle", "bicycle"})


def bucket_of(t_s: float) -> int:
    return int(t_s // BUCKET_S) * BUCKET_S


def event_delta(event: FrameEventMessage) -> dict[str, int]:
    """The counters one frame event adds to its minute. people/vehicles: objects seen, summed over frames
    (divide by `sampled` for the mean count per frame)."""
    labels = [d.label for d in event.detections]
    return {"sampled": 1, "edge": int(event.decided_by in ("edge", "carried")),
            "cloud": int(event.decided_by in ("cloud", "audit")), "escalated": int(event.escalated),
            "cloud_failed": int(event.cloud_failed), "people": labels.count("person"),
            "vehicles": sum(label in VEHICLES for label in labels)}


def bucket_row(t_s: int, counters: dict[str, Any]) -> dict[str, int]:
    return {"t_s": int(t_s), **{k: int(counters.get(k, 0)) for k in COUNTERS}}


def specialization_row(thing: str, event: SpecializationEvent) -> dict[str, Any]:
    """What the store keeps of a specialization step and the API serves: the message's fields and its gateway."""
    payload = event.to_payload()
    return {"thing": thing, **{k: v for k, v in payload.items() if k not in ("v", "type")}}
