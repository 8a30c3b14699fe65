"""The router end to end, over HTTP only: moto_server for DynamoDB, S3, SNS (+SQS to read the alert) and
iot-data (the verdict is read back from moto's request recording), the real teacher inference server as
the SageMaker endpoint, a real vtest.avi frame as the escalation."""

from __future__ import annotations

import json
import threading

import pytest

from cloud.router import handler as lambda_handler
from cloud.stores.dynamodb import DynamoDBStore
from contracts.training import TrainingRecord, decode_object
from contracts.wire import Verdict
from tests.cloud.conftest import CAMERA, SITE, THING, escalation_event

pytestmark = pytest.mark.slow  # moto and the teacher server: about a second per test

T0 = 1_764_400_000.0


def test_one_escalation_makes_a_row_an_object_an_alert_and_a_verdict(stack, plaza_crops, monkeypatch):
    event = escalation_event(plaza_crops, created_s=T0)
    mid = event["message_id"]
    before = len(stack.moto.requests())
    verdicts_before = len(stack.moto.published(f"framesieve/{THING}/"))  # moto outlives each test's resources
    monkeypatch.setattr(lambda_handler, "_router", stack.router)
    out = lambda_handler.handler(event, None)
    received = stack.moto.requests()[before:]

    assert out["status"] == "stored", out
    assert out["detections"] >= 2
    # the row, through the store and as DynamoDB holds it
    [row] = stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 1).items
    assert (row.message_id, row.site, row.thing, row.crops) == (mid, SITE, THING, 2)
    assert {d.label for d in row.detections} >= {"person"}
    assert all(0 <= d.box[0] <= d.box[2] <= 768 and 0 <= d.box[1] <= d.box[3] <= 576 for d in row.detections)
    assert [i["sk"]["S"] for i in stack.result_items()] == [f"{int(T0 * 1000):013d}#{mid}"]
    assert stack.router.store.query_site_day(SITE, "2025-11-29").items == [row]
    # the training object: the crops and the teacher's labels in crop pixels
    [key] = stack.training_keys()
    assert key == f"training-data/{SITE}/{CAMERA}/2025-11-29/{mid}.json" == row.training_key
    got = stack.client("s3").get_object(Bucket=stack.resources.bucket, Key=key)
    stored = got["Body"].read()
    # stored gzip-encoded (a quarter less S3 storage for the crops' base64), said so by its Content-Encoding
    assert got["ContentEncoding"] == "gzip" and stored[:2] == b"\x1f\x8b"
    plain = decode_object(stored)
    assert len(stored) < 0.85 * len(plain)
    body = json.loads(plain)
    assert [c["crop_id"] for c in body["crops"]] == [0, 1]
    assert TrainingRecord.from_payload(body).camera == CAMERA  # the format specialization reads
    assert any(d["label"] == "person" for c in body["crops"] for d in c["teacher"])
    assert all(d["box"][2] <= 384 for c in body["crops"] for d in c["teacher"])  # crop pixels, not frame pixels
    # the alert, delivered by SNS to the subscribed queue
    [alert] = stack.alerts(wait_s=1)
    assert (alert["message_id"], alert["camera"], alert["alerts"][0]["label"]) == (mid, CAMERA, "person")
    assert row.alerts == ("person:any-person",)
    # the verdict, as moto received it on the gateway's topic
    [(topic, payload)] = stack.moto.published(f"framesieve/{THING}/")[verdicts_before:]
    assert topic == f"framesieve/{THING}/verdicts" == out["published_to"]
    verdict = Verdict.from_bytes(payload)
    assert verdict.message_id == mid and len(verdict.detections()) == out["detections"]
    assert verdict.accepts_v == 2  # this router reads per-gateway batches: the gateway may send them
    # the AWS calls it took, counted by the router, and the same count as moto saw them
    # reads: the gateway's registry entry, the row; writes: the message's time, the alert slot, the row
    assert out["calls"] == {"endpoint_invocations": 1, "store_reads": 2, "store_writes": 3, "s3_puts": 1,
                            "sns_publishes": 1, "iot_publishes": 1}
    assert row.calls == out["calls"]
    assert len(received) == sum(out["calls"].values()) - out["calls"]["endpoint_invocations"]


def test_a_repeated_delivery_makes_no_second_row_alert_or_object(stack, plaza_crops):
    event = escalation_event(plaza_crops, created_s=T0)
    assert stack.router.process(event).status == "stored"
    assert len(stack.alerts(wait_s=1)) == 1
    again = stack.router.process(dict(event))
    assert again.status == "duplicate"
    # the registry entry is cached; the message's time is read back by its one (refused) write
    assert again.calls == {"endpoint_invocations": 0, "store_reads": 1, "store_writes": 1, "s3_puts": 0,
                           "sns_publishes": 0, "iot_publishes": 0}
    assert len(stack.result_items()) == 1 and len(stack.training_keys()) == 1
    assert stack.alerts() == []


class _FailOnce(DynamoDBStore):
    """The real DynamoDB store whose first row write fails, as a Lambda that dies before its commit."""

    failed = False

    def put_result(self, record):
        if not self.failed:
            self.failed = True
            raise RuntimeError("the Lambda was stopped here")
        return super().put_result(record)


def test_a_retry_after_a_crash_before_the_commit_sends_nothing_twice(stack, plaza_crops):
    stack.router.store = _FailOnce(stack.resources.table)
    event = escalation_event(plaza_crops, created_s=T0)
    try:
        stack.router.process(event)
        raise AssertionError("the first run should have failed")
    except RuntimeError:
        pass
    retried = stack.router.process(event)
    assert retried.status == "stored"
    assert retried.alerts == ["person:any-person"]  # the alert it already sent, not a new one
    assert len(stack.result_items()) == 1 and len(stack.training_keys()) == 1
    assert len(stack.alerts(wait_s=1)) == 1
    assert retried.calls["sns_publishes"] == 0 and retried.calls["s3_puts"] == 1  # the PUT refused by If-None-Match


def test_alert_cooldown_per_camera_and_label(stack, plaza_crops):
    first = stack.router.process(escalation_event(plaza_crops, created_s=T0))
    soon = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 60))
    other_camera = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 60, camera="plaza-2"))
    later = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 301))
    assert [o.status for o in (first, soon, other_camera, later)] == ["stored"] * 4
    assert (first.alerts, soon.alerts) == (["person:any-person"], [])
    assert other_camera.alerts == later.alerts == ["person:any-person"]
    assert sorted(a["camera"] for a in stack.alerts(wait_s=1)) == ["plaza", "plaza", "plaza-2"]
    assert soon.calls["sns_publishes"] == 0


def test_training_capture_is_sampled_by_message_id(monkeypatch, moto, aws_env, plaza_crops):
    from tests.cloud.conftest import make_stack

    stack = make_stack(monkeypatch, moto, aws_env, FRAMESIEVE_TRAINING_SAMPLE_RATE="0",
                       FRAMESIEVE_ALERT_RULES="[]")
    out = stack.router.process(escalation_event(plaza_crops, created_s=T0))
    assert out.status == "stored" and out.training_key == ""
    assert stack.training_keys() == []
    assert out.calls["s3_puts"] == 0 and out.calls["sns_publishes"] == 0 and out.calls["store_writes"] == 2


def test_concurrent_deliveries_of_one_message_make_one_row_one_alert_one_object(stack, plaza_crops):
    event = escalation_event(plaza_crops, created_s=T0)
    barrier, outcomes = threading.Barrier(3), []

    def deliver() -> None:
        barrier.wait(timeout=10)
        outcomes.append(stack.router.process(dict(event)))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(o.status for o in outcomes).count("stored") == 1, [o.to_dict() for o in outcomes]
    assert len(stack.result_items()) == 1 and len(stack.training_keys()) == 1
    assert len(stack.alerts(wait_s=1)) == 1
    assert sum(o.calls["sns_publishes"] for o in outcomes) == 1


def test_store_writes_on_change_skip_unchanged_verdicts_but_keep_every_guarantee(monkeypatch, moto, aws_env,
                                                                                  plaza_crops):
    from tests.cloud.conftest import make_stack

    stack = make_stack(monkeypatch, moto, aws_env, FRAMESIEVE_STORE_WRITES="change", FRAMESIEVE_ALERT_RULES="[]")
    first = stack.router.process(escalation_event(plaza_crops, created_s=T0))
    same = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 5))
    again = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 5, message_id=same.message_id))
    assert (first.status, same.status, again.status) == ("stored", "unchanged", "unchanged")
    # the message's time (a write), then duplicate check + last row
    assert same.calls["store_writes"] == 1 and same.calls["store_reads"] == 2
    assert same.published_to  # the gateway still gets its verdict
    assert len(stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 10).items) == 1
    assert len(stack.training_keys()) == 2  # the repeat's PUT was refused by If-None-Match: no second object
    other = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 9,
                                                  camera="empty-cam"))
    assert other.status == "stored"  # a camera's first verdict is always a change


def test_store_writes_setting_is_validated():
    import pytest

    from cloud.exceptions import ConfigError
    from cloud.router.config import RouterConfig

    with pytest.raises(ConfigError, match="FRAMESIEVE_STORE_WRITES='sometimes'"):
        RouterConfig.from_env({"FRAMESIEVE_STORE_WRITES": "sometimes"})
