"""A gateway's batch through the router, over HTTP (moto_server, the real teacher server): one endpoint call,
one verdict message with every answer matched by id, a row per escalation; and the bad input of issue 14:
a malformed crop in a batch, an oversized batch, the same batch twice. Nothing is lost: every escalation
is answered, or dead-lettered with an error verdict. What a batch stores is written once: one S3 training
object, one DynamoDB BatchWriteItem for its rows; read back by the dashboard and by specialization."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from cloud.dashboard.web import crops, s3_reader
from cloud.exceptions import StoreError
from cloud.specialize import sync_records
from cloud.stores.dynamodb import DynamoDBStore
from contracts.batch import EscalationBatch, VerdictBatch
from contracts.training import TrainingBatch, decode_object
from contracts.wire import EscalationRequest
from models.student.records import load_records
from tests.cloud.conftest import CAMERA, SITE, THING, rule_fields

pytestmark = pytest.mark.slow  # moto and the teacher server

T0 = 1_764_400_000.0


def item(crops, k: int) -> EscalationRequest:
    return EscalationRequest(str(uuid.uuid4()), CAMERA, 100 + k, 10.0 + k, "uncertain", crops, site=SITE,
                             created_s=T0 + k)


def event(payload: dict | bytes) -> dict:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"payload_b64": base64.b64encode(raw).decode(), **rule_fields(THING, T0 + 1)}


def verdicts_since(stack, before: int) -> list[VerdictBatch]:
    return [VerdictBatch.from_bytes(p) for _, p in stack.moto.published(f"framesieve/{THING}/")[before:]]


def operations(stack, since: int) -> list[str]:
    """The DynamoDB operations and S3 PUTs moto received since request `since`, in order."""
    out = []
    for req in stack.moto.requests()[since:]:
        target = {k.lower(): v for k, v in req.get("headers", {}).items()}.get("x-amz-target", "")
        if target.startswith("DynamoDB_"):
            out.append(target.split(".", 1)[1])
        elif req["method"] == "PUT" and stack.resources.bucket in req["url"]:
            out.append("S3 PUT")
    return out


def test_a_batch_is_one_call_one_verdict_message_and_a_row_each_the_bad_crop_dead_lettered(stack, lean_crops,
                                                                                          tmp_path):
    good = [item(lean_crops, k) for k in range(3)]
    payload = EscalationBatch("batch-1", tuple(good)).to_payload()
    bad = item(lean_crops[:1], 9).to_payload()
    bad["crops"][0]["jpeg_b64"] = base64.b64encode(b"not a jpeg").decode()
    payload["escalations"].insert(1, bad)
    before = len(stack.moto.published(f"framesieve/{THING}/"))
    requests_before = len(stack.moto.requests())

    out = stack.router.process(event(payload))

    assert out.status == "batch" and json.loads(out.reason) == {"dead_letter": 1, "stored": 3}
    assert out.calls["endpoint_invocations"] == 1  # six crops of three escalations, one call
    assert out.calls["iot_publishes"] == 1  # one verdict message for the whole batch
    [answer] = verdicts_since(stack, before)
    by_id = {v.message_id: v for v in answer.verdicts}
    assert set(by_id) == {g.message_id for g in good} | {bad["message_id"]}
    assert by_id[bad["message_id"]].error.startswith("malformed") and not by_id[bad["message_id"]].crops
    assert all(by_id[g.message_id].detections() and not by_id[g.message_id].error for g in good)
    rows = stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 10).items
    assert sorted(r.message_id for r in rows) == sorted(g.message_id for g in good)
    # every row names the variant that answered the one call, and the images that call carried (for the cost
    # per image of `framesieve-cloud ab report`: the call's time is shared, not counted once per escalation)
    assert {(r.variant, r.call_images) for r in rows} == {("AllTraffic", sum(len(g.crops) for g in good))}
    assert len({r.endpoint_ms for r in rows}) == 1 and rows[0].endpoint_ms > 0
    import datetime as dt
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")  # dead letters are kept by the router's own clock
    assert [d.key for d in stack.router.store.dead_letters(today).items
            if d.key.startswith(bad["message_id"])] == [f"{bad['message_id']}:malformed"]

    # what it wrote: one S3 training object for the batch, one DynamoDB batch write for its rows
    ops = operations(stack, requests_before)
    assert ops.count("BatchWriteItem") == 1 and ops.count("S3 PUT") == 1, ops
    [key] = stack.training_keys()
    assert key == f"training-data/{SITE}/=batches/2025-11-29/{THING}/batch-1.json"
    s3 = stack.client("s3")
    assert s3.get_object_tagging(Bucket=stack.resources.bucket, Key=key)["TagSet"] == [
        {"Key": "tier", "Value": "disagreement"}]  # the student saw nothing the teacher found
    stored = s3.get_object(Bucket=stack.resources.bucket, Key=key)["Body"].read()
    batch = TrainingBatch.from_payload(json.loads(decode_object(stored)))  # gzip-encoded, as every training object
    assert sorted(r.message_id for r in batch.records) == sorted(g.message_id for g in good)
    assert {r.training_key for r in rows} == {f"{key}#{g.message_id}" for g in good}

    # delivered again (IoT is at least once): nothing is paid for or stored twice
    requests_before = len(stack.moto.requests())
    again = stack.router.process(event(payload))
    assert json.loads(again.reason) == {"dead_letter": 1, "duplicate": 3}
    assert again.calls["endpoint_invocations"] == 0
    assert len(stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 10).items) == 3
    ops = operations(stack, requests_before)
    assert "BatchWriteItem" not in ops and "S3 PUT" not in ops, ops
    assert stack.training_keys() == [key]

    # every reader of training records finds each escalation's record in the batch's object
    row = rows[0]
    status, shown = crops(s3_reader(stack.resources.bucket), row.training_key)  # the dashboard's frame view
    assert status == 200 and shown["camera"] == CAMERA and shown["crops"], shown
    folder = tmp_path / "records"  # `framesieve-cloud specialize`: the site's batch objects synced, this camera's read
    synced, _ = sync_records(s3, stack.resources.bucket, f"training-data/{SITE}/=batches/", folder / "=batches")
    assert synced == 1
    assert sorted(r.message_id for r in load_records(folder, CAMERA)) == sorted(g.message_id for g in good)
    assert load_records(folder, "another-camera") == []


def test_an_oversized_batch_is_dead_lettered_and_every_escalation_in_it_gets_an_error_verdict(stack, plaza_crops):
    many = [item(plaza_crops, k) for k in range(12)]  # 12 x 2 full-size crops: far over 128 KB
    payload = EscalationBatch("batch-big", tuple(many)).to_payload()
    before = len(stack.moto.published(f"framesieve/{THING}/"))
    out = stack.router.process(event(payload))
    assert out.status == "dead_letter" and "over the 131072-byte IoT limit" in out.reason
    assert out.calls["endpoint_invocations"] == 0
    [answer] = verdicts_since(stack, before)
    assert sorted(v.message_id for v in answer.verdicts) == sorted(m.message_id for m in many)
    assert all(v.error for v in answer.verdicts)
    assert stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 20).items == []


class _BatchWriteFailsOnce(DynamoDBStore):
    """The real DynamoDB store whose first batch write of rows fails, as a Lambda stopped before its commit."""

    failed = False

    def put_results(self, records):
        if not self.failed:
            self.failed = True
            raise StoreError("the Lambda was stopped here")
        return super().put_results(records)


def test_a_batch_retried_after_a_crash_before_its_rows_writes_each_thing_once(stack, lean_crops):
    stack.router.store = _BatchWriteFailsOnce(stack.resources.table)
    good = [item(lean_crops, k) for k in range(2)]
    payload = EscalationBatch("batch-crash", tuple(good)).to_payload()
    with pytest.raises(StoreError):
        stack.router.process(event(payload))  # the training object is written, the rows are not
    [key] = stack.training_keys()
    requests_before = len(stack.moto.requests())
    retried = stack.router.process(event(payload))  # Lambda's retry of the failed invocation
    assert json.loads(retried.reason) == {"stored": 2}
    assert operations(stack, requests_before).count("BatchWriteItem") == 1
    assert retried.calls["s3_puts"] == 1 and stack.training_keys() == [key]  # the PUT refused by If-None-Match
    rows = stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 10).items
    assert sorted(r.message_id for r in rows) == sorted(g.message_id for g in good)
    assert all(r.training_key.startswith(f"{key}#") for r in rows)
