"""What the router does with messages it cannot route: malformed or oversized messages and a failing
endpoint become dead letters with a reason, and the call returns normally (no exception, so no Lambda
retry loop). The failing endpoints are real servers on loopback: the project's inference server with a
model that raises, a server that throttles, and a port nobody listens on."""

from __future__ import annotations

import base64
import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cloud.devaws import free_port
from cloud.inference.server import start_in_thread
from cloud.router.config import RouterConfig
from cloud.router.service import Router
from contracts.registry import Registration
from contracts.wire import Verdict
from models.manifest import load_manifest
from tests.cloud.conftest import escalation_event, rule_event

T0 = 1_764_400_000.0
DAY = "2025-11-29"


def _event(real_crops, **changes):
    event = copy.deepcopy(escalation_event(real_crops, created_s=T0))
    for key, value in changes.items():
        if value is None:
            event.pop(key)
        else:
            event[key] = value
    return event


def _bad_crop(crops):
    event = _event(crops)
    event["crops"][0]["jpeg_b64"] = "***not base64***"
    return event


def _raw(crops, text_edit):
    """The message as JSON text with one field's value replaced by raw JSON (NaN, Infinity, ...)."""
    event = _event(crops)
    rule = {k: event.pop(k) for k in ("topic", "thing_name", "received_ms", "client_id")}
    key, value = text_edit
    event[key] = "@@"
    return rule_event(json.dumps(event).replace('"@@"', value).encode(), rule["thing_name"], T0)


DEEP = "[" * 8_000 + "]" * 8_000  # with the crops, within the IoT size limit
# (id, message, kind, reason, an error verdict goes back: the message named its id)
BAD = [
    ("not json", lambda crops: b'{"v": 1, "type": "escalation", "crops": [', "malformed", "not valid JSON", False),
    ("not an object", lambda crops: b"[1, 2, 3]", "malformed", "expected a JSON object", False),
    ("no crops", lambda crops: _event(crops, crops=[]), "malformed", "at least one crop", True),
    ("no message id", lambda crops: _event(crops, message_id=None), "malformed", "missing field 'message_id'", False),
    ("wrong version", lambda crops: _event(crops, v=2), "malformed", "wire version 2 is not supported", True),
    ("bad base64", _bad_crop, "malformed", "not valid base64", True),
    ("camera with a newline", lambda crops: _event(crops, camera="a\nb"), "malformed", "printable", True),
    ("oversized", lambda crops: _event(crops, crops=[{**_event(crops)["crops"][0],
                                                      "jpeg_b64": base64.b64encode(b"\xff\xd8" + b"\0" * 140_000)
                                                      .decode()}]), "oversized", "over the 131072-byte IoT limit",
     True),
    # issue 15: each of these crashed the router, was stored, or was answered after a paid call
    ("created_s text", lambda crops: _event(crops, created_s="abc"), "malformed", "escalation.created_s", True),
    ("created_s list", lambda crops: _event(crops, created_s=[]), "malformed", "escalation.created_s", True),
    ("created_s Infinity", lambda crops: _raw(crops, ("created_s", "Infinity")), "malformed", "not valid JSON",
     True),
    ("created_s inf in the event", lambda crops: _event(crops, created_s=float("inf")), "malformed",
     "escalation.created_s", True),
    ("created_s 1e300", lambda crops: _event(crops, created_s=1e300), "malformed", "escalation.created_s", True),
    ("pts_s NaN", lambda crops: _raw(crops, ("pts_s", "NaN")), "malformed", "not valid JSON", True),
    ("pts_s nan in the event", lambda crops: _event(crops, pts_s=float("nan")), "malformed", "escalation.pts_s",
     True),
    ("pts_s 1e400", lambda crops: _raw(crops, ("pts_s", "1e400")), "malformed", "not valid JSON", True),
    ("deeply nested text", lambda crops: _raw(crops, ("student", DEEP)), "malformed", "levels deep", False),
    ("deeply nested event", lambda crops: _event(crops, student=json.loads("[" * 900 + "]" * 900)), "malformed",
     "nested more than", False),
    ("payload_b64 not base64", lambda crops: {**rule_event(b"{}", "gw-plaza", T0), "payload_b64": "%%%"},
     "malformed", "not valid JSON", False),
]


@pytest.mark.parametrize(("make", "kind", "reason", "answered"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_messages_become_dead_letters_without_an_exception(stack, plaza_crops, make, kind, reason, answered):
    event = make(plaza_crops)
    published = len(stack.moto.published("framesieve/gw-plaza/"))  # moto outlives this test's resources
    out = stack.router.process(event, now_s=T0)
    assert out.status == "dead_letter" and out.reason.startswith(kind) and reason in out.reason, out
    assert out.calls["endpoint_invocations"] == 0 and out.calls["store_writes"] == 1
    [letter] = stack.router.store.dead_letters(DAY).items
    thing = "gw-plaza" if isinstance(event, dict) else ""  # raw text carries no rule fields
    assert (letter.kind, letter.thing) == (kind, thing) and reason in letter.reason
    assert len(letter.excerpt) <= 300
    # the gateway hears at once that no answer will come, where it can tell which message it was
    verdicts = [Verdict.from_bytes(p) for _, p in stack.moto.published("framesieve/gw-plaza/")[published:]]
    assert out.calls["iot_publishes"] == len(verdicts) == int(answered)
    if answered:
        sent = event if "message_id" in event else json.loads(base64.b64decode(event["payload_b64"]))
        assert verdicts[0].message_id == sent["message_id"] and verdicts[0].crops == ()
        assert verdicts[0].error.startswith(kind) and out.published_to == "framesieve/gw-plaza/verdicts"
    assert stack.router.process(event, now_s=T0 + 5).status == "dead_letter"  # delivered again
    assert len(stack.router.store.dead_letters(DAY).items) == 1
    assert stack.result_items() == []


class _Raises:
    """A model that fails on every batch, as a broken GPU or a bad model file would."""

    def __init__(self, manifest):
        self.manifest = manifest

    def detect(self, frames):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class _Throttles(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the base class's name
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"message": "Rate exceeded"}).encode()
        self.send_response(429)
        self.send_header("x-amzn-ErrorType", "ThrottlingException")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def failing_endpoint(teacher_manifest):
    server, port = start_in_thread(_Raises(load_manifest(teacher_manifest)))
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def throttling_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize(("endpoint", "kind", "attempts"), [
    ("failing_endpoint", "model", 1),  # the model failed (HTTP 424): retrying would fail again
    ("throttling_endpoint", "throttled", 3),
    ("closed_port", "unavailable", 3),
])
def test_endpoint_failures_are_recorded_and_handled(stack, plaza_crops, monkeypatch, request, endpoint, kind,
                                                    attempts):
    url = f"http://127.0.0.1:{free_port()}" if endpoint == "closed_port" else request.getfixturevalue(endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    router = Router(RouterConfig.from_env(), store=stack.router.store)
    out = router.process(_event(plaza_crops), now_s=T0)
    assert out.status == "dead_letter" and out.reason.startswith(f"endpoint: {kind}"), out
    assert out.calls["endpoint_invocations"] == attempts
    assert out.calls["s3_puts"] == out.calls["sns_publishes"] == 0 and out.calls["iot_publishes"] == 1
    [letter] = stack.router.store.dead_letters(DAY).items
    assert letter.kind == "endpoint" and f"after {attempts} attempt(s)" in letter.reason
    if kind == "model":
        assert "CUDA error" in letter.reason
    assert stack.result_items() == []  # no row: a later delivery of the message gets another chance
    [(_, payload)] = [(t, p) for t, p in stack.moto.published("framesieve/gw-plaza/")  # moto's, all tests'
                      if b'"verdict_batch"' not in p and Verdict.from_bytes(p).message_id == out.message_id]
    assert Verdict.from_bytes(payload).error.startswith("endpoint: ")  # the gateway stops waiting


def test_the_iot_rule_event_fixture_with_a_crop_the_endpoint_refuses(stack):
    """The event as the IoT rule delivers it (tests/cloud/events): its 1x1 crop is valid wire format, but the
    endpoint refuses images under 8x8 (HTTP 400): final, no retry, a dead letter naming the reason."""
    event = json.loads((Path(__file__).parents[1] / "events" / "iot_rule_escalation.json").read_text())
    stack.router.store.register_gateway(Registration("gw-site1-01", "site-1", ("plaza-fixture",)))
    event["camera"] = "plaza-fixture"  # "plaza" belongs to the stack's own gateway: one owner per camera
    out = stack.router.process(event, now_s=T0)
    assert out.status == "dead_letter" and out.reason.startswith("endpoint: refused"), out
    assert out.calls["endpoint_invocations"] == 1
    [letter] = stack.router.store.dead_letters(DAY).items
    assert letter.key == f"{event['message_id']}:endpoint" and letter.thing == "gw-site1-01"
    assert "HTTP 400" in letter.reason
