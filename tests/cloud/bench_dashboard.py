"""First paint of the dashboard on loopback with a week of rows for 20 cameras, measured and printed (not a
test: timings depend on the machine). Run: `.venv/bin/python -m tests.cloud.bench_dashboard`.

The store (SQLite) is filled in bulk, as a week of the ingest path and the router would have left it: for
each of 20 cameras on 2 gateways, a minute row of frame-event counters for every minute of 7 days (1 fps
sampled) and one result row per minute (an escalation a minute, every 50th with an alert). Then Chromium
logs in and loads `/` REPEAT times; printed: the server's time for /dashboard/fleet, the browser's first
contentful paint (the page itself) and when the fleet's data is painted (`data-painted`, set by app.js).
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cloud.api import start_in_thread
from cloud.stores import ResultRecord, StoredDetection, open_store
from cloud.stores.sqlite import SQLiteStore
from contracts.device import Telemetry
from contracts.registry import Registration

CAMERAS, GATEWAYS, DAYS, REPEAT = 20, 2, 7, 5
TOKEN = "bench-token-" + "x" * 20


def fill(store: SQLiteStore, now: float) -> int:
    per_gw = CAMERAS // GATEWAYS
    names = [f"cam-{i:02d}" for i in range(CAMERAS)]
    for g in range(GATEWAYS):
        cams = names[g * per_gw:(g + 1) * per_gw]
        store.register_gateway(Registration(f"gw-{g}", f"site-{g}", tuple(cams)))
        store.put_telemetry(Telemetry(f"t{g}", f"gw-{g}", now - 5, 10, "0.1", "generic@1", 20, 300, 0, 0, 0, True,
                                      {c: {"fps": 1.0, "motion_rate": 0.6, "escalation_rate": 0.02,
                                           "cloud_failed_rate": 0} for c in cams}, site=f"site-{g}"))
    minutes = range(int(now // 60) * 60 - DAYS * 86400, int(now // 60) * 60 + 60, 60)
    det = (StoredDetection("person", 0.8, (10, 20, 30, 60), 0),)
    db = store._db  # bulk load in one transaction: the store's own writes are one row per call
    with store._lock:
        db.execute("BEGIN")
        for cam in names:
            db.executemany("INSERT INTO event_buckets (camera, t_s, sampled, edge, cloud, escalated, cloud_failed, "
                           "people, vehicles) VALUES (?, ?, 60, 59, 1, 1, 0, 90, 12)", [(cam, t) for t in minutes])
            rows = []
            for i, t in enumerate(minutes):
                r = ResultRecord(f"m{cam}{t}", cam, t + 7.5, site=f"site-{names.index(cam) // per_gw}",
                                 thing=f"gw-{names.index(cam) // per_gw}", detections=det, model="teacher@1",
                                 alerts=("person:any-person",) if i % 50 == 0 else ())
                rows.append((cam, r.key, r.site, r.day, 0, json.dumps(r.to_dict())))
            db.executemany("INSERT INTO results (camera, sk, site, day, expires_at, data) VALUES (?, ?, ?, ?, ?, ?)",
                           rows)
        db.execute("COMMIT")
    return len(minutes) * CAMERAS


def main() -> int:
    from tests.cloud.browser import chromium, log_in, why_not

    folder = Path(tempfile.mkdtemp(prefix="framesieve-dash-bench-"))
    store = open_store(f"sqlite://{folder / 'results.sqlite'}")
    assert isinstance(store, SQLiteStore)
    t0 = time.perf_counter()
    n = fill(store, time.time())
    print(f"store: {CAMERAS} cameras x {DAYS} days: {n:,} minute rows and {n:,} result rows "
          f"({(folder / 'results.sqlite').stat().st_size / 2**20:.0f} MB), filled in {time.perf_counter() - t0:.0f} s")
    server, port = start_in_thread(store, token=TOKEN)
    try:
        api_ms = []
        for _ in range(REPEAT):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            t1 = time.perf_counter()
            conn.request("GET", "/dashboard/fleet", headers={"Authorization": f"Bearer {TOKEN}"})
            body = conn.getresponse().read()
            api_ms.append(1000 * (time.perf_counter() - t1))
            conn.close()
        assert len(json.loads(body)["cameras"]) == CAMERAS
        print(f"GET /dashboard/fleet: median {statistics.median(api_ms):.0f} ms, max {max(api_ms):.0f} ms "
              f"({len(body) / 1024:.0f} KB)")
        if why_not():
            print(f"browser not measured: {why_not()}")
            return 0
        driver = chromium()
        try:
            log_in(driver, f"http://127.0.0.1:{port}", TOKEN)
            fcp, painted = [], []
            for _ in range(REPEAT):
                driver.get("about:blank")  # else a second get of the same URL may only change its hash
                driver.get(f"http://127.0.0.1:{port}/#/fleet")
                deadline = time.monotonic() + 10
                while not driver.execute_script("return performance.getEntriesByName('data-painted').length"):
                    assert time.monotonic() < deadline, "the fleet was not painted within 10 s"
                    time.sleep(0.02)
                fcp.append(driver.execute_script(
                    "return performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                painted.append(driver.execute_script(
                    "return performance.getEntriesByName('data-painted')[0].startTime"))
            driver.get("about:blank")  # stops the page's polling before the server goes
        finally:
            driver.quit()
        print(f"Chromium, from navigation: first contentful paint median {statistics.median(fcp):.0f} ms "
              f"(max {max(fcp):.0f}); fleet data painted median {statistics.median(painted):.0f} ms "
              f"(max {max(painted):.0f}); target < 1000 ms")
    finally:
        server.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
