"""The dashboard's server side on a real loopback server: pages, login cookie, token checks, the JSON views
fed by the ingest path the IoT rules run (cloud/dashboard/ingest.py), and the live cost."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from cloud.api import start_in_thread
from cloud.dashboard.cost import CameraDay, fleet_cost
from cloud.dashboard.ingest import ingest
from cloud.stores import open_store
from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry
from contracts.registry import Registration
from contracts.wire import DetectionRecord

TOKEN = "t" * 24
PERSON = DetectionRecord("person", 0.9, (1.0, 2.0, 3.0, 4.0))


def _event(mid: str, t_s: float, decided_by: str, camera: str = "plaza") -> dict:
    return FrameEventMessage(mid, camera, 1, 0.0, decided_by, decided_by == "cloud", (PERSON,), t_s).to_payload()


def _telemetry(thing: str, t_s: float) -> dict:
    return Telemetry("t1", thing, t_s, 10.0, "0.1", "generic@1", 12.0, 150.0, 4, 4096, 0, True,
                     {"plaza": {"fps": 1.0, "motion_rate": 1, "escalation_rate": 0.5, "cloud_failed_rate": 0,
                                "own_student": 1, "guard_max_escalation": 0.3}},
                     site="site-1").to_payload()


@pytest.fixture()
def api(tmp_path):
    store = open_store(f"sqlite://{tmp_path / 'r.sqlite'}")
    store.register_gateway(Registration("gw", "site-1", ("plaza", "gate")))
    server, port = start_in_thread(store, token=TOKEN)
    yield store, port
    server.stop()
    store.close()


def _get(port: int, path: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_ingest_counts_registered_cameras_once_and_refuses_the_rest(api):
    store, _ = api
    now = time.time()
    assert ingest(store, "gw", "events", json.dumps(_event("a", now, "edge")).encode()) == "stored"
    assert ingest(store, "gw", "events", json.dumps(_event("a", now, "edge")).encode()) == "repeat"
    assert ingest(store, "gw", "events", _event("b", now, "edge", camera="yard")) == "unauthorized"
    assert ingest(store, "gw-other", "events", _event("c", now, "edge")) == "unauthorized"
    assert ingest(store, "gw", "events", b'{"v": 1, "type": "event"}') == "malformed"
    assert ingest(store, "gw", "telemetry", _telemetry("gw-other", now)) == "unauthorized"  # reports on another
    assert ingest(store, "gw", "telemetry", _telemetry("gw", now)) == "stored"
    assert [b["sampled"] for b in store.event_buckets("plaza", now - 120, now + 60)] == [1]


def test_specialization_steps_on_the_events_topic_reach_the_camera_page_once(api):
    store, port = api
    now = time.time()

    def step(mid: str, t_s: float, kind: str, reason: str, camera: str = "plaza") -> bytes:
        return SpecializationEvent(mid, camera, t_s, kind, reason, outcome=kind, records=120).to_bytes()

    assert ingest(store, "gw", "events", step("s1", now - 60, "attempt", "120 new records")) == "stored"
    assert ingest(store, "gw", "events", step("s2", now - 5, "rollback", "it escalated 61% of the last 50 frames")) \
        == "stored"
    assert ingest(store, "gw", "events", step("s2", now - 5, "rollback", "again")) == "repeat"
    assert ingest(store, "gw", "events", step("s3", now, "attempt", "x", camera="yard")) == "unauthorized"
    assert ingest(store, "gw-other", "events", step("s4", now, "attempt", "x")) == "unauthorized"
    assert ingest(store, "gw", "events", b'{"v": 1, "type": "specialization", "kind": "retire"}') == "malformed"
    assert store.event_buckets("plaza", now - 120, now + 60) == []  # a step is not a sampled frame

    status, _, body = _get(port, "/dashboard/cameras/plaza", {"Authorization": f"Bearer {TOKEN}"})
    history = json.loads(body)["specialization"]
    assert status == 200 and [(h["kind"], h["reason"], h["thing"]) for h in history] == [
        ("rollback", "it escalated 61% of the last 50 frames", "gw"), ("attempt", "120 new records", "gw")]
    assert json.loads(_get(port, "/dashboard/cameras/gate", {"Authorization": f"Bearer {TOKEN}"})[2])[
        "specialization"] == []
    assert _get(port, "/dashboard/cameras/plaza")[0] == 401
    # the results API's own route: the same steps, paged by limit
    status, _, body = _get(port, "/cameras/plaza/specialization?limit=1", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and [h["kind"] for h in json.loads(body)["items"]] == ["rollback"]
    assert _get(port, "/cameras/plaza/specialization?limit=0", {"Authorization": f"Bearer {TOKEN}"})[0] == 400
    assert _get(port, "/cameras/plaza/specialization")[0] == 401


def test_pages_login_cookie_and_tokens(api):
    store, port = api
    now = time.time()
    ingest(store, "gw", "telemetry", _telemetry("gw", now))
    for i, by in enumerate(("edge", "edge", "cloud")):
        ingest(store, "gw", "events", _event(f"e{i}", now - 1, by))

    status, headers, _ = _get(port, "/")
    assert status == 303 and headers["Location"] == "/login"
    status, headers, body = _get(port, "/login")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'name="token"' in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert _get(port, "/static/vendor/uplot/uPlot.iife.min.js")[0] == 200
    assert _get(port, "/static/../api.py")[0] == 404
    assert _get(port, "/dashboard/fleet")[0] == 401

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = _get(port, "/login", form, "POST", b"token=wrong-token-of-enough-length")
    assert status == 401 and b"not right" in body
    for cross in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert _get(port, "/login", {**form, **cross}, "POST", f"token={TOKEN}".encode())[0] == 403
    status, headers, _ = _get(port, "/login", {**form, "Origin": f"http://127.0.0.1:{port}"}, "POST",
                              f"token={TOKEN}".encode())
    cookie = headers["Set-Cookie"]
    assert status == 303 and headers["Location"] == "/"
    assert cookie.startswith(f"framesieve_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # loopback is http: a Secure cookie would never come back
    jar = {"Cookie": cookie.split(";")[0]}
    status, headers, body = _get(port, "/", jar)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/static/app.js" in body

    for auth in (jar, {"Authorization": f"Bearer {TOKEN}"}):
        status, _, body = _get(port, "/dashboard/fleet", auth)
        fleet = json.loads(body)
        assert status == 200 and [c["camera"] for c in fleet["cameras"]] == ["gate", "plaza"]
        plaza = fleet["cameras"][1]
        assert plaza["hour"] | {} == {"sampled": 3, "edge": 2, "cloud": 1, "escalated": 1, "cloud_failed": 0,
                                      "people": 3, "vehicles": 0}
        assert fleet["gateways"][0]["online"] and fleet["gateways"][0]["spool_rows"] == 4
        assert (plaza["student"], plaza["guard"]) == ("own (specialized)", "rolls back above 30% escalated")
        assert (fleet["cameras"][0]["student"], fleet["cameras"][0]["guard"]) == ("generic",
                                                                               "none: runs the shared student")
    assert _get(port, "/dashboard/fleet", {"Cookie": "framesieve_token=" + "x" * 24})[0] == 401
    status, _, body = _get(port, "/dashboard/cameras/plaza?hours=999", jar)
    assert status == 400 and "999" in json.loads(body)["error"]
    camera = json.loads(_get(port, "/dashboard/cameras/plaza?hours=2", jar)[2])
    assert sum(b["cloud"] for b in camera["buckets"]) == 1
    assert json.loads(_get(port, "/dashboard/crops?key=x", jar)[2])["error"].startswith("no training capture")
    cost = json.loads(_get(port, "/dashboard/cost", jar)[2])
    assert {c["camera"] for c in cost["cameras"]} == {"gate", "plaza"}
    assert _get(port, "/dashboard/alerts", jar)[0] == 200
    assert _get(port, "/cameras/plaza/counters?from=0&to=1", jar)[0] == 200  # the JSON API takes the cookie too


def test_live_cost_breaks_even_where_hybrid_meets_baseline():
    # a camera at 1 fps all day, one of 20 on its gateway: the hybrid is cheaper at 1 % escalated, dearer at all
    low = fleet_cost([CameraDay("a", 86400, 864, 0, 20)])["cameras"][0]
    high = fleet_cost([CameraDay("a", 86400, 86400, 0, 20)])["cameras"][0]
    assert low["hybrid_usd_per_day"] < low["baseline_usd_per_day"]
    assert 0.01 < low["break_even_share"] < 1 and low["break_even_share"] == high["break_even_share"]
    assert high["hybrid_usd_per_day"] > high["baseline_usd_per_day"]
    alone = fleet_cost([CameraDay("a", 86400, 0, 0, 1)])["cameras"][0]  # a whole gateway for one camera
    assert alone["break_even_share"] < 0 and alone["hybrid_usd_per_day"] > alone["baseline_usd_per_day"]
    at = fleet_cost([CameraDay("a", 86400, 86400 * low["break_even_share"], 0, 20)])["cameras"][0]
    assert at["hybrid_usd_per_day"] == pytest.approx(at["baseline_usd_per_day"], rel=1e-3)
    assert high["hybrid_usd_per_month"] == pytest.approx(high["hybrid_usd_per_day"] * 730 / 24)


def test_without_auth_the_login_sets_nothing_the_client_typed(tmp_path):
    store = open_store(f"sqlite://{tmp_path / 'r.sqlite'}")
    server, port = start_in_thread(store, token=None)  # --no-auth, loopback only
    try:
        status, headers, _ = _get(port, "/login", {"Content-Type": "application/x-www-form-urlencoded"}, "POST",
                                  b"token=x%0d%0aSet-Cookie:%20evil=1")
        assert status == 303 and "Set-Cookie" not in headers and "evil" not in str(headers)
        assert _get(port, "/")[0] == 200
    finally:
        server.stop()
        store.close()
