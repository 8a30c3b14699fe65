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
from models.manifest import load_manifest
from tests.cloud.conftest import escalation_event

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


BAD = [
    ("not json", lambda crops: b'{"v": 1, "type": "escalation", "crops": [', "malformed", "not JSON"),
    ("not an object", lambda crops: b"[1, 2, 3]", "malformed", "expected a JSON object"),
    ("no crops", lambda crops: _event(crops, crops=[]), "malformed", "at least one crop"),
    ("no message id", lambda crops: _event(crops, message_id=None), "malformed", "missing field 'message_id'"),
    ("wrong version", lambda crops: _event(crops, v=2), "malformed", "wire version 2 is not supported"),
    ("bad base64", _bad_crop, "malformed", "not valid base64"),
    ("camera with a newline", lambda crops: _event(crops, camera="a\nb"), "malformed", "printable"),
    ("oversized", lambda crops: _event(crops, crops=[{**_event(crops)["crops"][0],
                                                      "jpeg_b64": base64.b64encode(b"\xff\xd8" + b"\0" * 140_000)
                                                      .decode()}]), "oversized", "over the 131072-byte IoT limit"),
]


@pytest.mark.parametrize(("make", "kind", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_messages_become_dead_letters_without_an_exception(stack, plaza_crops, make, kind, reason):
    event = make(plaza_crops)
    published = len(stack.moto.published("framesieve/gw-plaza/"))  # moto outlives this test's resources
    out = stack.router.process(event, now_s=T0)
    assert out.status == "dead_letter" and out.reason.startswith(kind) and reason in out.reason, out
    assert out.calls["endpoint_invocations"] == 0 and out.calls["store_writes"] == 1
    [letter] = stack.router.store.dead_letters(DAY).items
    thing = "gw-plaza" if isinstance(event, dict) else ""  # raw text carries no rule fields
    assert (letter.kind, letter.thing) == (kind, thing) and reason in letter.reason
    assert len(letter.excerpt) <= 300
    assert stack.router.process(event, now_s=T0 + 5).status == "dead_letter"  # delivered again
    assert len(stack.router.store.dead_letters(DAY).items) == 1
    assert stack.result_items() == [] and len(stack.moto.published("framesieve/gw-plaza/")) == published


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
    assert out.calls["s3_puts"] == out.calls["sns_publishes"] == out.calls["iot_publishes"] == 0
    [letter] = stack.router.store.dead_letters(DAY).items
    assert letter.kind == "endpoint" and f"after {attempts} attempt(s)" in letter.reason
    if kind == "model":
        assert "CUDA error" in letter.reason
    assert stack.result_items() == []  # no row: a later delivery of the message gets another chance


def test_the_iot_rule_event_fixture_with_a_crop_the_endpoint_refuses(stack):
    """The event as the IoT rule delivers it (tests/cloud/events): its 1x1 crop is valid wire format, but the
    endpoint refuses images under 8x8 (HTTP 400): final, no retry, a dead letter naming the reason."""
    event = json.loads((Path(__file__).parents[1] / "events" / "iot_rule_escalation.json").read_text())
    out = stack.router.process(event, now_s=T0)
    assert out.status == "dead_letter" and out.reason.startswith("endpoint: refused"), out
    assert out.calls["endpoint_invocations"] == 1
    [letter] = stack.router.store.dead_letters(DAY).items
    assert letter.key == f"{event['message_id']}:endpoint" and letter.thing == "gw-site1-01"
    assert "HTTP 400" in letter.reason
