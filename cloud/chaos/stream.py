"""The stream faults, one after another on one running gateway: the endpoint hung and killed, the broker
killed, the gateway itself SIGKILLed with a full spool. Each row says what was checked and the lost,
duplicated and stalled figures, measured from the gateway's events DB, the bridge and the results store."""

from __future__ import annotations

import math
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cloud.chaos.rig import Rig

STALL_TARGET = 0.9  # each camera keeps deciding at least this share of its sampling rate during a fault


@dataclass
class Row:
    fault: str
    checked: str
    lost: int | None = None
    duplicated: int | None = None
    stalled: str = "-"
    ok: bool = True
    detail: str = ""


def _rate_in(rig: Rig, since: float, until: float) -> tuple[bool, str]:
    """Whether every camera decided >= STALL_TARGET of what its sampling rate promises in [since, until) (one
    frame of slack for the window's edges), with the counts and each camera's longest gap between samples."""
    rows = rig.events(since, until)
    expected = rig.fps * (until - since)
    ok, parts = True, []
    for cam in rig.camera_ids():
        times = sorted(r["wall_time"] for r in rows if r["camera"] == cam)
        edges = [since, *times, until]
        gap = max(b - a for a, b in zip(edges, edges[1:], strict=False))
        ok = ok and len(times) >= math.ceil(STALL_TARGET * expected) - 1
        parts.append(f"{cam} {len(times)}/{expected:.1f} (longest gap {gap:.1f} s)")
    # How the frames were decided meanwhile: by the cloud, or at the edge and why (events.fallback)
    how = Counter("cloud" if r["escalated"] else (r.get("fallback") or "edge") for r in rows)
    ways = ", ".join(f"{k} {v}" for k, v in sorted(how.items()))
    return ok, f"decided {', '.join(parts)}; {ways}"


def _window(rig: Rig, fault: str, seconds: float, start: Callable[[], None], end: Callable[[], None],
            settle_s: float) -> Row:
    t0 = time.time()
    start()
    time.sleep(seconds)
    end()
    t1 = time.time()
    time.sleep(settle_s)  # frames sampled in the window finish (verdict or timeout) before they are counted
    ok, text = _rate_in(rig, t0, t1)
    return Row(fault, f"every camera decides >= {STALL_TARGET:.0%} of {rig.fps:g} fps while it lasts",
               stalled=text, ok=ok)


def run_stream_faults(rig: Rig, hang_s: float, outage_s: float, warmup_s: float,
                      progress: Callable[[str], None] = print) -> list[Row]:
    assert rig.agent is not None and rig.teacher is not None and rig.cloud is not None
    settle = rig.verdict_timeout_s + 2
    rig.agent.start()
    progress(f"gateway started with {rig.cameras} cameras at {rig.fps:g} fps; warming up {warmup_s:g} s")
    time.sleep(warmup_s)
    ok, text = _rate_in(rig, time.time() - warmup_s / 2, time.time())
    rows = [Row("none (baseline)", "the gateway keeps its sampling rate with the cloud healthy", stalled=text, ok=ok)]

    teacher = rig.teacher
    progress(f"endpoint hung (SIGSTOP) for {hang_s:g} s")
    rows.append(_window(rig, f"endpoint hung (SIGSTOP) {hang_s:g} s", hang_s,
                        lambda: teacher.signal(signal.SIGSTOP), lambda: teacher.signal(signal.SIGCONT), settle))
    progress(f"endpoint killed (SIGKILL), restarted after {outage_s:g} s")
    rows.append(_window(rig, f"endpoint killed, back after {outage_s:g} s", outage_s, teacher.kill,
                        teacher.start, settle))
    progress(f"broker killed (SIGKILL), restarted after {outage_s:g} s")
    rows.append(_window(rig, f"broker killed, back after {outage_s:g} s", outage_s, rig.broker.kill,
                        rig.broker.start, settle))

    progress(f"gateway SIGKILLed with a full spool (broker away {outage_s:g} s), then started again")
    rig.broker.kill()
    time.sleep(outage_s)
    rig.agent.kill()
    spooled = _spooled(rig)  # what the dead gateway left in its outbox, on disk
    rig.broker.start()
    rig.agent.start()
    time.sleep(warmup_s)

    progress("draining: the gateway stops (SIGTERM) once its spool is empty")
    _drain(rig)
    rig.agent.stop()
    assert rig.cloud.bridge is not None
    bridge = rig.cloud.bridge
    missing = len(spooled["escalation"] - set(bridge.received)) + len(spooled["event"] - bridge.frame_events)
    rows.append(Row("gateway SIGKILLed with a full spool",
                    "every escalation and frame event in its spool at the kill reaches the cloud after the restart",
                    lost=missing, ok=bool(spooled["escalation"] or spooled["event"]) and missing == 0,
                    detail=f"in the spool at the kill: {len(spooled['escalation'])} escalations, "
                           f"{len(spooled['event'])} frame events; {missing} of them never arrived"))
    return rows + _delivery_rows(rig)


def _spooled(rig: Rig) -> dict[str, set[str]]:
    """Message ids in the gateway's outbox, by kind (escalation, event)."""
    db = sqlite3.connect(f"file:{rig.workdir / 'spool.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        out: dict[str, set[str]] = {"escalation": set(), "event": set()}
        for mid, kind in db.execute("SELECT message_id, kind FROM outbox"):
            out.setdefault(kind, set()).add(mid)
        return out
    finally:
        db.close()


def _drain(rig: Rig, limit_s: float = 90.0) -> None:
    """Wait until the gateway's spool (its outbox, read-only) is empty, so what it spooled
    during the faults has had its chance to reach the cloud; the gateway keeps sending new ones meanwhile."""
    spool, deadline = rig.workdir / "spool.sqlite", time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)
            try:
                left = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            left = -1  # not created yet, or busy: look again
        if left == 0:
            return
        time.sleep(0.5)


def _delivery_rows(rig: Rig) -> list[Row]:
    """Over the whole run: escalated frames that never reached the cloud, rows stored twice, event rows
    written twice."""
    assert rig.cloud is not None and rig.cloud.bridge is not None and rig.cloud.router is not None
    events = rig.events()
    # Frames the gateway sent: answered (escalated) or sent and never answered in time (fallback cloud_failed);
    # cloud_busy and cloud_open frames were decided at the edge without asking.
    escalated = [(r["camera"], r["frame_index"]) for r in events
                 if r["escalated"] or r.get("fallback") == "cloud_failed"]
    received = Counter(rig.cloud.bridge.received.values())
    # Frame indices restart with the gateway, so a (camera, frame_index) pair may be two frames: count.
    missing = sum(max(0, n - received.get(key, 0)) for key, n in Counter(escalated).items())
    stored = Counter()
    store = rig.cloud.router.store
    for cam in rig.camera_ids():
        token = None
        while True:
            page = store.query_camera(cam, 0, time.time() + 3600, 500, token)
            stored.update(item.message_id for item in page.items)
            token = page.next_token
            if not token:
                break
    twice = sum(n - 1 for n in stored.values() if n > 1)
    rows_twice = sum(n - 1 for n in Counter((r["camera"], r["frame_index"], r["wall_time"])
                                            for r in events).values() if n > 1)
    # Escalations the cloud got for frames with no event row: in flight when the gateway was SIGKILLed
    # (sampled and sent, never decided). A crash loses those decisions; the spool loses no message.
    with_rows = Counter((r["camera"], r["frame_index"]) for r in events)
    undecided = sum(max(0, n - with_rows.get(key, 0)) for key, n in received.items())
    return [
        Row("all of the above", "every frame the gateway sent reached the cloud (the bridge received it)",
            lost=missing, ok=missing == 0,
            detail=f"{len(escalated)} frames sent, {len(rig.cloud.bridge.received)} messages received "
                   f"({rig.cloud.bridge.deliveries} deliveries); {undecided} received for frames with no event "
                   "row (in flight at the gateway's SIGKILL)"),
        Row("all of the above", "no escalation stored twice; no frame with two event rows",
            duplicated=twice + rows_twice, ok=twice + rows_twice == 0,
            detail=f"{sum(stored.values())} result rows, {len(events)} event rows"),
    ]
