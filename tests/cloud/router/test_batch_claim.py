"""One message-time claim per gateway batch instead of one per escalation, with dedup as strong as before: a batch
redelivered whole, an escalation re-sent alone after its batch was refused (naming the batch, as the gateway's
spool does), the two in either order, and a gateway with a wrong clock, each found as a duplicate: no second
endpoint call, no second row. A batch from a gateway that does not name its batches on re-send is claimed per
escalation, as before. On moto_server's DynamoDB over HTTP and on the SQLite store, with the real teacher."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace

import pytest

from cloud import constants as c
from contracts.batch import EscalationBatch
from contracts.wire import EscalationRequest
from tests.cloud.conftest import CAMERA, SITE, THING, make_stack, rule_fields

pytestmark = pytest.mark.slow  # moto and the teacher server

T0 = 1_764_400_000.0
LATE = 3600.0  # a re-send an hour later (the spool's replay after an outage): far outside the event window


@pytest.fixture(params=["dynamodb", "sqlite"])
def stack(request, monkeypatch, moto, aws_env, tmp_path):
    settings = {c.STORE_URL: f"sqlite://{tmp_path / 'results.sqlite'}"} if request.param == "sqlite" else {}
    made = make_stack(monkeypatch, moto, aws_env, **settings)
    made.kind = request.param
    yield made
    made.router.store.close()


@pytest.fixture(scope="module")
def plaza_crops(vtest_frames):
    """A vtest frame at the teacher's scale, q70, as the agent's default message carries it (~28 KB)."""
    import cv2

    from contracts.wire import Crop

    small = cv2.resize(vtest_frames[1], (416, 312), interpolation=cv2.INTER_AREA)
    jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    return (Crop(0, (0.0, 0.0, 768.0, 576.0), jpeg, (416, 312)),)


def items(plaza_crops, n: int = 3, created_s: float = T0) -> list[EscalationRequest]:
    return [EscalationRequest(str(uuid.uuid4()), CAMERA, 100 + k, 10.0 + k, "uncertain", plaza_crops,
                              site=SITE, created_s=created_s + k) for k in range(n)]


def deliver(stack, payload: dict, received_s: float):
    raw = json.dumps(payload).encode()
    return stack.router.process({"payload_b64": base64.b64encode(raw).decode(), **rule_fields(THING, received_s)})


def claims(stack) -> dict[str, int]:
    """The claim records the store holds: per message and per batch."""
    if stack.kind == "sqlite":
        rows = stack.router.store._db.execute("SELECT thing FROM message_times").fetchall()
        return {"message": sum(not t.endswith("#batch") for (t,) in rows),
                "batch": sum(t.endswith("#batch") for (t,) in rows)}
    keys = [i["pk"]["S"] for i in stack.client("dynamodb").scan(TableName=stack.resources.table)["Items"]]
    return {"message": sum(k.startswith("MSG#") for k in keys), "batch": sum(k.startswith("BATCH#") for k in keys)}


def rows(stack) -> list[str]:
    return sorted(r.message_id for r in stack.router.store.query_camera(CAMERA, T0 - 200_000, T0 + 10 * LATE).items)


def test_a_batch_claims_once_and_a_whole_redelivery_an_hour_later_is_found(stack, plaza_crops):
    batch = items(plaza_crops)
    payload = EscalationBatch("b-whole", tuple(batch), resends_named=True).to_payload()
    first = deliver(stack, payload, T0 + 1)
    assert json.loads(first.reason) == {"stored": 3} and first.calls["endpoint_invocations"] == 1
    assert claims(stack) == {"message": 0, "batch": 1}  # one claim for three escalations
    again = deliver(stack, payload, T0 + LATE)
    assert json.loads(again.reason) == {"duplicate": 3} and again.calls["endpoint_invocations"] == 0
    assert rows(stack) == sorted(r.message_id for r in batch)
    assert claims(stack) == {"message": 0, "batch": 1}


def test_an_escalation_re_sent_alone_after_a_refused_batch_is_found(stack, plaza_crops):
    """The broker took the batch but its acknowledgement was lost: the gateway spooled the batch escalation by
    escalation, each naming the batch, and replays them an hour later; the cloud already has them."""
    batch = items(plaza_crops)
    deliver(stack, EscalationBatch("b-refused", tuple(batch), resends_named=True).to_payload(), T0 + 1)
    for request in batch:
        resent = replace(request, batch_id="b-refused")
        out = deliver(stack, resent.to_payload(), T0 + LATE)
        assert out.status == "duplicate", out
        assert out.calls["endpoint_invocations"] == 0
    assert rows(stack) == sorted(r.message_id for r in batch)
    assert claims(stack) == {"message": 0, "batch": 1}


def test_escalations_re_sent_alone_before_their_batch_arrives_are_found_by_it(stack, plaza_crops):
    """The other order: the batch's own delivery comes late (queued behind throttling); one of its escalations,
    re-sent alone, came first and claimed the batch."""
    batch = items(plaza_crops)
    alone = replace(batch[0], batch_id="b-late")
    assert deliver(stack, alone.to_payload(), T0 + 1).status == "stored"
    late = deliver(stack, EscalationBatch("b-late", tuple(batch), resends_named=True).to_payload(), T0 + LATE)
    assert json.loads(late.reason) == {"duplicate": 1, "stored": 2}
    assert rows(stack) == sorted(r.message_id for r in batch)
    assert claims(stack) == {"message": 0, "batch": 1}


def test_a_gateway_with_a_wrong_clock_keys_its_items_by_the_batchs_first_receive_time(stack, plaza_crops):
    batch = items(plaza_crops, 2, created_s=T0 - 100_000)  # a day off: outside the window of any receive time
    first = deliver(stack, EscalationBatch("b-clock", tuple(batch), resends_named=True).to_payload(), T0)
    assert json.loads(first.reason) == {"stored": 2}
    stored = stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 1).items
    assert sorted(r.message_id for r in stored) == sorted(r.message_id for r in batch)
    assert {r.t_s for r in stored} == {T0}  # the anchor, not the gateway's clock
    resent = replace(batch[1], batch_id="b-clock")
    assert deliver(stack, resent.to_payload(), T0 + 50).status == "duplicate"
    assert rows(stack) == sorted(r.message_id for r in batch)


def test_a_batch_that_does_not_name_its_re_sends_is_claimed_per_escalation_as_before(stack, plaza_crops):
    """A gateway older than the naming re-sends a refused batch's escalations as plain messages: only a claim
    per message id finds them."""
    batch = items(plaza_crops)
    deliver(stack, EscalationBatch("b-old", tuple(batch)).to_payload(), T0 + 1)
    assert claims(stack) == {"message": 3, "batch": 0}
    out = deliver(stack, batch[2].to_payload(), T0 + LATE)
    assert out.status == "duplicate" and out.calls["endpoint_invocations"] == 0
    assert rows(stack) == sorted(r.message_id for r in batch)
