"""Who may write what (issue 15): the thing name the IoT rule delivers is the authority, the registry says
which site and cameras it may write for, the event time is bounded by the receive time, and a message is
stored once by its id. Over moto_server and the real teacher endpoint, as the other router tests."""

from __future__ import annotations

import copy

import pytest

from contracts.registry import Registration
from contracts.wire import EscalationRequest, Verdict
from tests.cloud.conftest import escalation_event, rule_event, rule_fields

pytestmark = pytest.mark.slow

T0 = 1_764_400_000.0
A, B = Registration("gw-a", "site-a", ("cam-a",)), Registration("gw-b", "site-b", ("cam-b", "cam-b2"))


def _payload(crops, **changes) -> dict:
    event = escalation_event(crops, created_s=T0, camera="cam-a", site="site-a")
    for key in ("topic", "thing_name", "received_ms", "client_id"):
        event.pop(key)
    event.update(changes)
    return event


def _attempts(crops) -> list[tuple[str, dict]]:
    """Every field gateway A controls, set to write for site B's cameras."""
    as_a = rule_fields("gw-a", T0)
    attempts = [
        ("site and camera of B", {**_payload(crops, site="site-b", camera="cam-b"), **as_a}),
        ("its own site, B's camera", {**_payload(crops, camera="cam-b"), **as_a}),
        ("no site, B's camera", {**_payload(crops, site="", camera="cam-b2"), **as_a}),
        ("B's site, its own camera", {**_payload(crops, site="site-b"), **as_a}),
        ("a camera B does not have either", {**_payload(crops, site="site-b", camera="cam-b3"), **as_a}),
        ("B's camera with a trailing space", {**_payload(crops, camera="cam-b "), **as_a}),
        ("B's topic, its own thing name", {**_payload(crops, site="site-b", camera="cam-b"), **as_a,
                                           "topic": "framesieve/gw-b/escalations"}),
        ("B's client id", {**_payload(crops, site="site-b", camera="cam-b"), **as_a, "client_id": "gw-b"}),
        ("B's Basic Ingest topic", {**_payload(crops, camera="cam-b"), **as_a,
                                    "topic": "$aws/rules/ingest/framesieve/gw-b/escalations"}),
        # the rule of infra/ keeps the message apart: its own thing_name/topic/client_id are just text
        ("B's rule fields inside the message", rule_event(
            _payload(crops, site="site-b", camera="cam-b", **{k: v for k, v in rule_fields("gw-b", T0).items()}),
            "gw-a", T0)),
        ("a thing name that is not one", {**_payload(crops, site="site-b", camera="cam-b"),
                                          **rule_fields("gw-b/../gw-a", T0)}),
        ("no thing name at all", _payload(crops, site="site-b", camera="cam-b")),
    ]
    return attempts


def test_gateway_a_cannot_write_for_site_b_by_any_field(stack, plaza_crops):
    store = stack.router.store
    store.register_gateway(A)
    store.register_gateway(B)
    b_verdicts = len(stack.moto.published("framesieve/gw-b/"))
    for name, event in _attempts(plaza_crops):
        out = stack.router.process(copy.deepcopy(event), now_s=T0 + 1)
        assert out.status == "dead_letter" and out.reason.startswith("unauthorized"), (name, out)
        assert out.calls["endpoint_invocations"] == out.calls["s3_puts"] == out.calls["sns_publishes"] == 0, name
        assert not out.published_to or out.published_to == "framesieve/gw-a/verdicts", name
    # zero writes for B: no row, no alert, no training object, no verdict on its topic
    for camera in ("cam-b", "cam-b2", "cam-b3", "cam-b "):
        assert store.query_camera(camera, 0, 2e10).items == []
    assert store.query_site_day("site-b", "2025-11-29").items == []
    assert not [k for k in stack.training_keys() if "/site-b/" in k]
    assert stack.alerts() == []
    assert len(stack.moto.published("framesieve/gw-b/")) == b_verdicts
    letters = store.dead_letters("2025-11-29").items
    assert {letter.kind for letter in letters} == {"unauthorized"} and len(letters) == len(_attempts(plaza_crops))
    # what A may do, it still does: its own camera, its registered site stored whatever it claimed
    mine = stack.router.process({**_payload(plaza_crops, site=""), **rule_fields("gw-a", T0)}, now_s=T0 + 1)
    assert mine.status == "stored", mine
    [row] = store.query_camera("cam-a", T0 - 1, T0 + 1).items
    assert (row.site, row.thing) == ("site-a", "gw-a")


def test_an_unregistered_gateway_gets_an_error_verdict_and_nothing_else(stack, plaza_crops):
    event = escalation_event(plaza_crops, created_s=T0, thing="gw-nobody", camera="cam-x")
    out = stack.router.process(event, now_s=T0)
    assert out.status == "dead_letter" and "not a registered gateway" in out.reason
    assert out.calls == {"endpoint_invocations": 0, "store_reads": 1, "store_writes": 1, "s3_puts": 0,
                         "sns_publishes": 0, "iot_publishes": 1}
    [(topic, payload)] = stack.moto.published("framesieve/gw-nobody/")[-1:]
    verdict = Verdict.from_bytes(payload)
    assert (topic, verdict.message_id, verdict.camera) == ("framesieve/gw-nobody/verdicts", event["message_id"],
                                                           "cam-x")
    assert verdict.error.startswith("unauthorized") and verdict.crops == ()
    assert stack.result_items() == [] and stack.training_keys() == []


def test_a_created_s_far_from_the_receive_time_cannot_claim_another_time(stack, plaza_crops):
    """created_s an hour ahead once claimed the camera's alert cooldown for that hour: the receive time is used."""
    ahead = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 3600, received_s=T0), now_s=T0 + 9)
    assert ahead.status == "stored" and "outside +/-300 s" in ahead.clock, ahead
    [row] = stack.router.store.query_camera("plaza", T0 - 1, T0 + 1).items
    assert row.t_s == T0 and ahead.alerts == ["person:any-person"]
    later = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 301, received_s=T0 + 301.5))
    assert later.status == "stored" and later.alerts == ["person:any-person"]  # the cooldown ended on time
    within = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 1000, received_s=T0 + 1100))
    [row] = stack.router.store.query_camera("plaza", T0 + 999, T0 + 1001).items
    assert within.clock == "" and row.message_id == within.message_id  # the edge's own time, within the window


def test_a_message_without_created_s_is_stored_once(stack, plaza_crops):
    request = EscalationRequest.from_payload(escalation_event(plaza_crops))
    payload = {k: v for k, v in request.to_payload().items() if k != "created_s"}
    first = stack.router.process(rule_event(payload, "gw-plaza", T0), now_s=T0)
    again = stack.router.process(rule_event(payload, "gw-plaza", T0 + 40), now_s=T0 + 40)  # redelivered later
    assert (first.status, again.status) == ("stored", "duplicate"), (first, again)
    assert again.calls["endpoint_invocations"] == 0
    assert len(stack.result_items()) == 1 and len(stack.training_keys()) == 1
    # the same id from another gateway is another message (its own row), never a duplicate of this one
    stack.router.store.register_gateway(A)
    other = stack.router.process(rule_event({**payload, "camera": "cam-a", "site": "site-a"}, "gw-a", T0), now_s=T0)
    assert other.status == "stored"
