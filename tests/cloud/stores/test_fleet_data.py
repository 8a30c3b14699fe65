"""Frame events as minute counters and the latest telemetry per gateway, on every store backend."""

from __future__ import annotations

from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry
from contracts.wire import DetectionRecord

T0 = 1_764_400_020.0  # 07:07:00 UTC: a minute boundary
PERSON = DetectionRecord("person", 0.9, (1.0, 2.0, 3.0, 4.0))
CAR = DetectionRecord("car", 0.8, (5.0, 6.0, 7.0, 8.0))


def event(mid: str, t_s: float, decided_by: str = "edge", camera: str = "plaza", **kw) -> FrameEventMessage:
    return FrameEventMessage(message_id=mid, camera=camera, frame_index=1, pts_s=0.0, decided_by=decided_by,
                             escalated=kw.pop("escalated", decided_by == "cloud"), wall_time=t_s,
                             detections=kw.pop("detections", ()), **kw)


def telemetry(thing: str, t_s: float, spool_rows: int = 0) -> Telemetry:
    return Telemetry(message_id=f"t{t_s}", thing=thing, t_s=t_s, interval_s=10, agent_version="a", model_version="m",
                     cpu_percent=5, memory_mb=100, spool_rows=spool_rows, spool_bytes=0, spool_evicted=0,
                     connected=True, cameras={"plaza": {"fps": 1.0, "motion_rate": 0.5, "escalation_rate": 0.1,
                                                        "cloud_failed_rate": 0.0}}, site="site-1")


def test_frame_events_sum_into_minutes_once_each(any_store):
    assert any_store.put_frame_event("gw", event("a", T0 + 1, detections=(PERSON, PERSON, CAR)), T0) is True
    assert any_store.put_frame_event("gw", event("b", T0 + 59, "cloud", detections=(PERSON,)), T0) is True
    assert any_store.put_frame_event("gw", event("b", T0 + 59, "cloud", detections=(PERSON,)), T0) is False
    assert any_store.put_frame_event("gw", event("c", T0 + 60, "edge", cloud_failed=True, escalated=True), T0)
    assert any_store.put_frame_event("gw", event("d", T0 + 5, camera="gate"), T0)
    rows = any_store.event_buckets("plaza", T0, T0 + 3600)
    assert rows == [
        {"t_s": int(T0), "sampled": 2, "edge": 1, "cloud": 1, "escalated": 1, "cloud_failed": 0, "people": 3,
         "vehicles": 1},
        {"t_s": int(T0) + 60, "sampled": 1, "edge": 1, "cloud": 0, "escalated": 1, "cloud_failed": 1, "people": 0,
         "vehicles": 0}]
    assert [r["t_s"] for r in any_store.event_buckets("plaza", T0 + 30, T0 + 60)] == [int(T0)]  # [from, to)
    assert any_store.event_buckets("plaza", T0 + 120, T0 + 3600) == []
    assert [r["sampled"] for r in any_store.event_buckets("gate", T0, T0 + 60)] == [1]


def test_only_newer_telemetry_replaces_a_gateways_last(any_store):
    assert any_store.fleet_telemetry() == []
    assert any_store.put_telemetry(telemetry("gw-a", T0, spool_rows=3)) is True
    assert any_store.put_telemetry(telemetry("gw-b", T0)) is True
    assert any_store.put_telemetry(telemetry("gw-a", T0 - 10, spool_rows=9)) is False  # late, out of order
    assert any_store.put_telemetry(telemetry("gw-a", T0 + 10, spool_rows=1)) is True
    got = {t.thing: t for t in any_store.fleet_telemetry()}
    assert set(got) == {"gw-a", "gw-b"}
    assert (got["gw-a"].t_s, got["gw-a"].spool_rows, got["gw-a"].cameras["plaza"]["fps"]) == (T0 + 10, 1, 1.0)


def step(mid: str, t_s: float, kind: str, camera: str = "plaza", reason: str = "why") -> SpecializationEvent:
    return SpecializationEvent(mid, camera, t_s, kind, reason, site="site-1", outcome=kind, version="v1", records=42)


def test_specialization_steps_kept_once_each_newest_first(any_store):
    assert any_store.specialization_history("plaza") == []
    assert any_store.put_specialization("gw", step("s1", T0, "attempt", reason="200 new records")) is True
    assert any_store.put_specialization("gw", step("s2", T0 + 90, "collect", reason="too little evidence")) is True
    assert any_store.put_specialization("gw", step("s2", T0 + 90, "collect")) is False  # a repeated delivery
    assert any_store.put_specialization("gw", step("s3", T0 + 30, "rollback", camera="gate")) is True
    history = any_store.specialization_history("plaza")
    assert [(h["message_id"], h["kind"], h["reason"]) for h in history] == [
        ("s2", "collect", "too little evidence"), ("s1", "attempt", "200 new records")]
    assert history[0] == {"thing": "gw", "message_id": "s2", "site": "site-1", "camera": "plaza", "t_s": T0 + 90,
                          "kind": "collect", "reason": "too little evidence", "outcome": "collect", "version": "v1",
                          "records": 42}
    assert [h["message_id"] for h in any_store.specialization_history("plaza", limit=1)] == ["s2"]
    assert [h["kind"] for h in any_store.specialization_history("gate")] == ["rollback"]
