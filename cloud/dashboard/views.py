"""What each dashboard page shows, computed from the results store: plain dicts the pages render as JSON.

Counts of sampled, edge-decided and escalated frames come from the gateways' frame events (minute rows,
cloud/stores/fleetdata.py); online state, student and spool from their telemetry; alerts and escalated
crops from the router's result rows; a camera's specialization history from the steps its gateway sends.
Every read is bounded (by time: a day for the fleet, at most a week for a camera; the history by count) so
a page costs the same however long the fleet has run.
"""

from __future__ import annotations

from typing import Any

from cloud.stores import ResultRecord, ResultsStore
from cloud.stores.fleetdata import COUNTERS, SPECIALIZATION_READ
from contracts.device import Telemetry

HOUR, DAY = 3600, 86400
MAX_TIMELINE_S = 7 * DAY
ONLINE_INTERVALS = 3  # a gateway is online until three telemetry intervals pass without one (at least 60 s)


def _sum(rows: list[dict[str, int]], since: float) -> dict[str, int]:
    return {k: sum(r[k] for r in rows if r["t_s"] >= since) for k in COUNTERS}


def _online(t: Telemetry, now: float) -> bool:
    return now - t.t_s <= max(60.0, ONLINE_INTERVALS * t.interval_s)


def _cameras(store: ResultsStore) -> list[tuple[str, Telemetry, str]]:
    """(camera, its gateway's telemetry, site) for every camera of every gateway that reported."""
    out = []
    for t in store.fleet_telemetry():
        entry = store.gateway(t.thing)
        names = sorted(set(t.cameras) | set(entry.cameras if entry else ()))
        out += [(name, t, entry.site if entry else t.site) for name in names]
    return out


def _rows(store: ResultsStore, camera: str, t1: float, t2: float, pages: int = 3) -> list[ResultRecord]:
    out, token = [], None
    for _ in range(pages):  # bounded: at most 3000 rows a camera per view
        page = store.query_camera(camera, t1, t2, 1000, token)
        out += page.items
        if not (token := page.next_token):
            break
    return out


def _alert(r: ResultRecord) -> dict[str, Any]:
    return {"camera": r.camera, "site": r.site, "thing": r.thing, "t_s": r.t_s, "message_id": r.message_id,
            "rules": list(r.alerts), "training_key": r.training_key,
            "detections": [{"label": d.label, "score": round(d.score, 3)} for d in r.detections]}


def _student(rates: dict[str, float]) -> str:
    if rates.get("own_student"):
        return "own (specialized)"
    return "generic, onboarding" if rates.get("warming_up") else "generic"


def _guard(rates: dict[str, float]) -> str:
    """What watches the camera's own student (from telemetry; an older agent reports none of it)."""
    if not rates.get("own_student"):
        return "none: runs the shared student"
    limit = rates.get("guard_max_escalation", 0.0)
    return f"rolls back above {limit:.0%} escalated" if limit else "watching recall (no escalation limit)"


def fleet(store: ResultsStore, now: float) -> dict[str, Any]:
    gateways, cameras, alerts = [], [], []
    seen: set[str] = set()
    for name, t, site in _cameras(store):
        if t.thing not in seen:
            seen.add(t.thing)
            gateways.append({"thing": t.thing, "site": site, "online": _online(t, now), "last_seen_s": t.t_s,
                             "connected": t.connected, "spool_rows": t.spool_rows, "spool_bytes": t.spool_bytes,
                             "spool_evicted": t.spool_evicted, "cpu_percent": t.cpu_percent,
                             "memory_mb": t.memory_mb, "model_version": t.model_version,
                             "agent_version": t.agent_version})
        rows = store.event_buckets(name, now - DAY, now + 60)
        rates = t.cameras.get(name, {})
        hour_alerts = [_alert(r) for r in _rows(store, name, now - HOUR, now + 60, pages=1) if r.alerts]
        alerts += hour_alerts
        cameras.append({"camera": name, "site": site, "thing": t.thing, "online": _online(t, now),
                        "student": _student(rates), "guard": _guard(rates),
                        "fps": rates.get("fps", 0.0), "escalation_rate": rates.get("escalation_rate", 0.0),
                        "hour": _sum(rows, now - HOUR), "day": _sum(rows, now - DAY),
                        "alerts_hour": len(hour_alerts)})
    sites = sorted({c["site"] for c in cameras})
    return {"now_s": now, "sites": sites, "gateways": gateways, "cameras": cameras,
            "alerts": sorted(alerts, key=lambda a: -a["t_s"])[:20]}


def camera(store: ResultsStore, name: str, now: float, span_s: float = DAY) -> dict[str, Any]:
    span_s = min(max(span_s, HOUR), MAX_TIMELINE_S)
    buckets = store.event_buckets(name, now - span_s, now + 60)
    recent = _rows(store, name, now - span_s, now + 60)
    escalations = [{"t_s": r.t_s, "reason": r.reason, "alerts": list(r.alerts), "training_key": r.training_key,
                    "message_id": r.message_id, "detections": len(r.detections)} for r in recent]
    return {"camera": name, "now_s": now, "from_s": now - span_s, "buckets": buckets,
            "escalations": escalations[-200:], "latest_crops": [e for e in escalations if e["training_key"]][-6:],
            "specialization": store.specialization_history(name, SPECIALIZATION_READ)}


def alerts(store: ResultsStore, now: float, span_s: float = DAY) -> dict[str, Any]:
    out = [_alert(r) for name, _, _ in _cameras(store) for r in _rows(store, name, now - span_s, now + 60) if r.alerts]
    return {"now_s": now, "alerts": sorted(out, key=lambda a: -a["t_s"])[:200]}


def cost(store: ResultsStore, now: float) -> dict[str, Any]:
    # imported here: the price file needs pydantic and PyYAML, which the other pages do without (the dashboard's
    # Lambda zip brings them along, built for its platform: cloud/packaging.py package_dashboard)
    from cloud.dashboard.cost import CameraDay, fleet_cost

    cams = _cameras(store)
    per_gateway: dict[str, int] = {}
    for _, t, _ in cams:
        per_gateway[t.thing] = per_gateway.get(t.thing, 0) + 1
    days = []
    for name, t, _ in cams:
        rows = store.event_buckets(name, now - DAY, now + 60)
        day = _sum(rows, now - DAY)
        # a camera seen for less than a day: its counts scaled to a whole day from the minutes it has
        seen_s = (now - rows[0]["t_s"]) if rows else DAY
        scale = DAY / min(DAY, max(60.0, seen_s))
        hour = _rows(store, name, now - HOUR, now + 60, pages=1)
        alerts_n = sum(1 for r in hour if r.alerts) * 24
        # live batching evidence: each row names the images of the router invocation that answered it, so a
        # batch of n escalations' rows add up to one invocation (crops / call_images each)
        answered = [r for r in hour if r.call_images > 0]
        days.append(CameraDay(name, day["sampled"] * scale, day["escalated"] * scale, alerts_n, per_gateway[t.thing],
                              gateway=t.thing, answered_rows=len(answered),
                              answered_messages=sum(max(1, r.crops) / max(r.call_images, r.crops, 1)
                                                    for r in answered),
                              rows=len(hour), kept_rows=sum(1 for r in hour if r.training_key)))
    return {"now_s": now, **fleet_cost(days)}
