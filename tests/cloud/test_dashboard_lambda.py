"""The API and dashboard as a Lambda behind a function URL: payload 2.0 events in, the same answers as the
loopback server out (token, cookie login, pages, data), on a real SQLite store."""

from __future__ import annotations

import base64
import json
import time

import pytest

from cloud.dashboard import lambda_api
from cloud.dashboard.ingest import ingest
from cloud.stores import open_store
from contracts.registry import Registration
from tests.cloud.test_dashboard_api import TOKEN, _event, _telemetry


def _call(method: str, path: str, query: str = "", headers: dict | None = None, body: bytes = b"",
          cookies: list[str] | None = None) -> tuple[int, dict, bytes, list[str]]:
    event = {"version": "2.0", "rawPath": path, "rawQueryString": query, "headers": headers or {},
             "requestContext": {"http": {"method": method}}, "body": base64.b64encode(body).decode(),
             "isBase64Encoded": True, **({"cookies": cookies} if cookies else {})}
    out = lambda_api.handler(event, None)
    body = base64.b64decode(out["body"]) if out.get("isBase64Encoded") else out.get("body", "").encode()
    return out["statusCode"], out.get("headers", {}), body, out.get("cookies", [])


@pytest.fixture()
def lambda_env(tmp_path, monkeypatch):
    url = f"sqlite://{tmp_path / 'r.sqlite'}"
    store = open_store(url)
    store.register_gateway(Registration("gw", "site-1", ("plaza",)))
    now = time.time()
    ingest(store, "gw", "telemetry", _telemetry("gw", now))
    ingest(store, "gw", "events", _event("e1", now, "cloud"))
    store.close()
    monkeypatch.setenv("FRAMESIEVE_STORE", url)
    monkeypatch.setenv("FRAMESIEVE_API_TOKEN", TOKEN)
    monkeypatch.delenv("FRAMESIEVE_TRAINING_BUCKET", raising=False)
    monkeypatch.setattr(lambda_api, "_server", None)
    yield
    if lambda_api._server is not None:
        lambda_api._server.store.close()


def test_function_url_events_get_the_servers_answers(lambda_env):
    assert _call("GET", "/dashboard/fleet")[0] == 401
    status, headers, _, _ = _call("GET", "/")
    assert status == 303 and headers["Location"] == "/login"
    status, headers, body, _ = _call("GET", "/login")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'name="token"' in body

    form = {"content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin",
            "origin": "https://d111.cloudfront.net", "host": "abc.lambda-url.us-east-1.on.aws"}
    status, _, _, cookies = _call("POST", "/login", headers=form, body=f"token={TOKEN}".encode())
    assert status == 303 and len(cookies) == 1
    assert "HttpOnly" in cookies[0] and "SameSite=Strict" in cookies[0] and "Secure" in cookies[0]
    assert _call("POST", "/login", headers={**form, "sec-fetch-site": "cross-site"},
                 body=f"token={TOKEN}".encode())[0] == 403

    status, _, body, _ = _call("GET", "/dashboard/fleet", cookies=[cookies[0].split(";")[0]])
    assert status == 200 and json.loads(body)["cameras"][0]["hour"]["escalated"] == 1
    status, _, body, _ = _call("GET", "/dashboard/cameras/plaza", "hours=0",
                               headers={"authorization": f"Bearer {TOKEN}"})
    assert status == 400 and json.loads(body)["parameter"] == "hours"
    assert _call("DELETE", "/dashboard/fleet")[0] == 405
    assert _call("POST", "/dashboard/fleet", headers={"authorization": f"Bearer {TOKEN}"})[0] == 405


def test_the_ingest_lambda_takes_what_the_topic_rules_send(lambda_env, monkeypatch):
    from cloud.dashboard import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "_store", None)
    now = time.time()
    # SELECT *, topic(2) AS thing_name, topic(3) AS kind: the message's fields and the rule's, side by side
    assert ingest_module.handler({**_event("e2", now, "edge"), "thing_name": "gw", "kind": "events"}, None) == \
        {"status": "stored"}
    assert ingest_module.handler({**_event("e2", now, "edge"), "thing_name": "gw", "kind": "events"}, None) == \
        {"status": "repeat"}
    assert ingest_module.handler({**_telemetry("gw", now + 1), "thing_name": "gw", "kind": "telemetry"}, None) == \
        {"status": "stored"}
    assert ingest_module.handler({"thing_name": "gw", "kind": "escalations"}, None) == {"status": "malformed"}
    assert sum(b["sampled"] for b in ingest_module._store.event_buckets("plaza", now - 120, now + 60)) == 2
    ingest_module._store.close()
