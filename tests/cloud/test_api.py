"""The results API over real HTTP on loopback, on both store backends."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote

import pytest

from cloud.api import start_in_thread
from cloud.stores import DeadLetter, open_store
from tests.cloud.stores.test_contract import T0, record

TOKEN = "test-token-0123456789abcdef"


def _serve(store):
    for k in range(5):
        store.put_result(record(f"m{k}", T0 + k, alerts=("person:r",) if k == 0 else ()))
    store.put_result(record("g", T0, camera="gate/1"))
    store.put_dead_letter(DeadLetter(key="x:malformed", t_s=T0, kind="malformed", reason="no crops"))
    return start_in_thread(store, token=TOKEN)


@pytest.fixture()
def api(any_store):
    server, port = _serve(any_store)
    yield port
    server.stop()


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory):
    store = open_store(f"sqlite://{tmp_path_factory.mktemp('api') / 'results.sqlite'}")
    server, port = _serve(store)
    yield port
    server.stop()
    store.close()


def get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        assert resp.getheader("Content-Type") == "application/json"
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_health(api):
    status, body = get(api, "/health")
    assert status == 200 and body["status"] == "ok"


def test_detections_by_camera_paginated(api):
    path = f"/cameras/plaza/detections?from={T0 + 1}&to=2025-11-29T07:06:45Z&limit=2"
    ids, token, pages = [], None, 0
    while True:
        status, body = get(api, path + (f"&next_token={token}" if token else ""))
        assert status == 200, body
        ids += [i["message_id"] for i in body["items"]]
        pages += 1
        if not (token := body["next_token"]):
            break
    assert ids == ["m1", "m2", "m3", "m4"] and pages >= 2
    status, body = get(api, f"/cameras/{quote('gate/1', safe='')}/detections?from={T0}&to={T0 + 1}")
    assert [i["message_id"] for i in body["items"]] == ["g"]
    assert body["items"][0]["detections"][0] == {"label": "person", "score": 0.8, "box": [10.0, 20.0, 30.0, 60.0],
                                                 "crop_id": 0}


def test_counters_site_day_and_dead_letters(api):
    status, body = get(api, f"/cameras/plaza/counters?from={T0}&to={T0 + 60}")
    assert status == 200 and body["counters"]["escalated"] == 5 and body["counters"]["alerts"] == 1
    status, body = get(api, "/sites/site-1/days/2025-11-29/detections?limit=1000")
    assert status == 200 and len(body["items"]) == 6
    status, body = get(api, "/dead-letters?day=2025-11-29")
    assert status == 200 and [d["key"] for d in body["items"]] == ["x:malformed"]


@pytest.mark.parametrize(("path", "status", "parameter", "message"), [
    ("/cameras/plaza/detections?to=2", 400, "from", "from is required"),
    ("/cameras/plaza/detections?from=yesterday&to=2", 400, "from", "'yesterday' is not a time"),
    ("/cameras/plaza/detections?from=5&to=2", 400, "to", "must be after from"),
    ("/cameras/plaza/detections?from=1&to=2&limit=0", 400, "limit", "from 1 to 1000"),
    ("/cameras/plaza/detections?from=1&to=2&limit=5000", 400, "limit", "from 1 to 1000"),
    ("/cameras/plaza/detections?from=1&to=2&camera=x", 400, "camera", "unknown parameter(s) ['camera']"),
    ("/cameras/plaza/detections?from=1&from=2&to=3", 400, "from", "more than once"),
    ("/cameras/plaza/detections?from=1&to=2&next_token=garbage!", 400, "next_token", "page token"),
    # issue 15: each of these crashed the API or answered NaN
    ("/cameras/plaza/detections?from=nan&to=2", 400, "from", "'nan' is not a time"),
    ("/cameras/plaza/detections?from=1&to=inf", 400, "to", "'inf' is not a time"),
    ("/cameras/plaza/detections?from=1&to=1e400", 400, "to", "is not a time"),
    ("/cameras/plaza/detections?from=-5&to=2", 400, "from", "is not a time"),
    ("/cameras/plaza/detections?from=1&to=2&limit=%C2%B2", 400, "limit", "whole number from 1 to 1000"),
    ("/cameras/plaza/detections?from=1&to=2&limit=%EF%BC%95", 400, "limit", "whole number"),  # fullwidth 5
    ("/cameras/plaza/detections?from=1&to=2&next_token=e30", 400, "next_token", "page token"),  # {}
    ("/cameras/plaza/detections?from=1&to=2&next_token=eyJhZnRlciI6IDV9", 400, "next_token", "page token"),
    ("/cameras/plaza/detections?from=1&to=2&next_token=W10", 400, "next_token", "page token"),  # []
    ("/dead-letters?day=2025-11-29&next_token=%FF%FE", 400, "next_token", "page token"),
    ("/sites/site-1/days/%C2%B2%C2%B2%C2%B2%C2%B2-11-29/detections", 400, "day", "YYYY-MM-DD"),
    ("/cameras/plaza/counters?from=0&to=99999999", 400, "to", "at most"),
    ("/sites/site-1/days/29-11-2025/detections", 400, "day", "YYYY-MM-DD"),
    ("/dead-letters?day=2025-02-30", 400, "day", "YYYY-MM-DD"),
    ("/nothing", 404, "path", "no route GET /nothing"),
])
def test_bad_requests_name_the_parameter(sqlite_api, path, status, parameter, message):
    got, body = get(sqlite_api, path)
    assert (got, body["parameter"]) == (status, parameter), body
    assert message in body["error"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", "Bearer", TOKEN])
def test_every_route_but_health_needs_the_token(sqlite_api, header):
    conn = http.client.HTTPConnection("127.0.0.1", sqlite_api, timeout=10)
    try:
        conn.request("GET", f"/cameras/plaza/detections?from={T0}&to={T0 + 60}",
                     headers={"Authorization": header} if header else {})
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 401 and body["parameter"] == "Authorization", body
    assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert "items" not in body
    assert get(sqlite_api, "/health", token=None)[0] == 200


def test_the_token_is_required_to_start(tmp_path, monkeypatch):
    from cloud.api import read_token
    from cloud.exceptions import ConfigError

    monkeypatch.delenv("FRAMESIEVE_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="needs a token"):
        read_token(None, False, "127.0.0.1")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        read_token(str(tmp_path / "short"), False, "127.0.0.1")
    with pytest.raises(ConfigError, match="--token-file .*missing"):
        read_token(str(tmp_path / "missing"), False, "127.0.0.1")
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert read_token(str(tmp_path / "token"), False, "0.0.0.0") == TOKEN
    monkeypatch.setenv("FRAMESIEVE_API_TOKEN", TOKEN)
    assert read_token(None, False, "127.0.0.1") == TOKEN
    assert read_token(None, True, "127.0.0.1") is None  # --no-auth, loopback only
    with pytest.raises(ConfigError, match="loopback"):
        read_token(None, True, "0.0.0.0")


def test_the_api_keeps_the_same_connection_cap_and_request_deadline(tmp_path):
    import socket
    import time

    store = open_store(f"sqlite://{tmp_path / 'r.sqlite'}")
    server, port = start_in_thread(store, token=TOKEN, max_connections=2, request_deadline_s=1.0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            t0 = time.monotonic()
            closed = False
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
                try:
                    slow.sendall(bytes([byte]))
                    time.sleep(0.2)
                except OSError:
                    closed = True
                    break
                slow.setblocking(False)
                try:
                    closed = slow.recv(100) == b""
                except BlockingIOError:
                    pass
                slow.setblocking(True)
                if closed:
                    break
            assert closed and time.monotonic() - t0 < 2.0  # not per read: 1 s for the whole request
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        assert get(port, "/health")[0] == 503
        for sock in idle:
            sock.close()
        time.sleep(0.3)
        assert get(port, "/health")[0] == 200
    finally:
        server.stop()
        store.close()


def test_the_api_command_needs_a_token_uses_it_and_stops_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from cloud.devaws import free_port

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "FRAMESIEVE_API_TOKEN"}
    store = f"sqlite://{tmp_path / 'r.sqlite'}"
    refused = subprocess.run([sys.executable, "-m", "cloud.cli", "api", "--store", store], cwd=root, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "needs a token" in refused.stderr, refused.stderr
    (tmp_path / "token").write_text(TOKEN + "\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cloud.cli", "api", "--store", store, "--port", str(port),
                             "--token-file", str(tmp_path / "token")], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(port, "/health", token=None)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert get(port, f"/cameras/plaza/counters?from={T0}&to={T0 + 60}", token=None)[0] == 401
        assert get(port, f"/cameras/plaza/counters?from={T0}&to={T0 + 60}")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
