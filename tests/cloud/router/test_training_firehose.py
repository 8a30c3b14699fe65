"""The Firehose sink for training records, over HTTP on moto_server (which delivers each PutRecordBatch to the
S3 destination at once, uncompressed) with the real teacher server: a batch's kept records arrive in the
lifecycle's packed folder and every reader (the dashboard's frame view, specialization's sync and
load_records) reads them back; a partial PutRecordBatch failure (a proxy in front of moto answers some records
ServiceUnavailable, as Firehose can) is retried for those records only; a record delivered twice is read once;
a record over Firehose's 1,000 KiB limit, and one that still fails after the retries, go to a direct S3 object.
Nothing is lost."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from cloud.dashboard.web import crops, s3_reader
from cloud.devaws import provision_streams
from cloud.router.config import RouterConfig
from cloud.router.firehose import MAX_BYTES_PER_CALL, MAX_RECORD_BYTES, MAX_RECORDS_PER_CALL, chunks, put_records
from cloud.specialize import sync_records
from contracts.batch import EscalationBatch
from contracts.training import TrainingCrop, TrainingRecord, read_records, unique
from contracts.wire import Crop, DetectionRecord, EscalationRequest
from models.student.records import load_records
from tests.cloud.conftest import CAMERA, SITE, THING, make_stack, rule_fields
from tests.cloud.router.firehose_proxy import FaultyFirehose

T0 = 1_764_400_000.0
slow = pytest.mark.slow  # moto and the teacher server


def test_calls_stay_within_put_record_batch_limits():
    assert [len(g) for g in chunks([10] * 1201)] == [500, 500, 201]
    big = MAX_RECORD_BYTES  # four of the largest records fill a call's 4 MB: the fifth starts the next
    groups = chunks([big] * 9)
    assert [len(g) for g in groups] == [3, 3, 3] and all(len(g) * big <= MAX_BYTES_PER_CALL for g in groups)
    assert sum(chunks([1] * 7, max_records=3), []) == list(range(7))
    assert MAX_RECORDS_PER_CALL == 500 and chunks([]) == []


@pytest.fixture()
def proxy(moto):
    made = FaultyFirehose(moto.url)
    yield made
    made.close()


@pytest.fixture()
def fh_stack(monkeypatch, moto, aws_env, proxy):
    """A stack whose router keeps training records through Firehose delivery streams (on moto, behind the
    fault-injecting proxy)."""
    stack = make_stack(monkeypatch, moto, aws_env)
    settings = provision_streams(moto.url, stack.resources.bucket, name=stack.resources.table.removesuffix("-results"))
    for key, value in {**settings, "AWS_ENDPOINT_URL_FIREHOSE": proxy.url}.items():
        monkeypatch.setenv(key, value)
    stack.router.config = RouterConfig.from_env()
    yield stack
    stack.router.store.close()


def batch_event(crops, n: int, batch_id: str) -> tuple[dict, list[str]]:
    items = [EscalationRequest(str(uuid.uuid4()), CAMERA, 100 + k, 10.0 + k, "uncertain", crops, site=SITE,
                               created_s=T0 + k) for k in range(n)]
    raw = json.dumps(EscalationBatch(batch_id, tuple(items)).to_payload()).encode()
    return {"payload_b64": base64.b64encode(raw).decode(), **rule_fields(THING, T0 + 1)}, [i.message_id for i in items]


def packed(stack) -> dict[str, bytes]:
    s3 = stack.client("s3")
    return {k: s3.get_object(Bucket=stack.resources.bucket, Key=k)["Body"].read()
            for k in stack.training_keys() if k.startswith("training-packed/")}


@slow
def test_a_batchs_records_arrive_packed_and_every_reader_reads_them(fh_stack, proxy, lean_crops, tmp_path):
    event, mids = batch_event(lean_crops, 3, "fh-1")
    # the whole call throttled, then records 0 and 2 refused: sent again, alone
    proxy.plan = ["throttle", "fail-even"]

    out = fh_stack.router.process(event)

    assert json.loads(out.reason) == {"stored": 3}
    assert [c["mode"] for c in proxy.calls] == ["throttle", "fail-even", "pass"]
    assert [len(c["records"]) for c in proxy.calls] == [3, 3, 2]  # then only the failed ones
    objects = packed(fh_stack)
    assert objects and all(k.startswith("training-packed/training/") for k in objects)  # disagreements' stream
    assert not [k for k in fh_stack.training_keys() if k.startswith("training-data/")]  # no direct object
    found = [r for data in objects.values() for r in read_records(data)]
    assert sorted(r.message_id for r in found) == sorted(mids)  # each once: the failed ones were not delivered
    rows = fh_stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 10).items
    assert len(rows) == 3
    for row in rows:  # the hour's folder Firehose delivers to, and the record's id
        folder, _, mid = row.training_key.partition("#")
        assert folder.startswith("training-packed/training/") and folder.endswith("/") and mid == row.message_id
        assert any(k.startswith(folder) for k in objects)

    status, shown = crops(s3_reader(fh_stack.resources.bucket), rows[0].training_key)  # the dashboard's frame view
    assert status == 200 and shown["camera"] == CAMERA and len(shown["crops"]) == 2, shown
    records = tmp_path / "records"  # `framesieve-cloud specialize`: the packed objects synced, this camera's read
    n, fetched = sync_records(fh_stack.client("s3"), fh_stack.resources.bucket, "training-packed/training/",
                              records / "=packed" / "training", packed=True)
    assert n == fetched == len(objects)
    assert sorted(r.message_id for r in load_records(records, CAMERA)) == sorted(mids)
    assert sync_records(fh_stack.client("s3"), fh_stack.resources.bucket, "training-packed/training/",
                        records / "=packed" / "training", packed=True) == (n, 0)  # only new objects


@slow
def test_a_record_delivered_twice_is_read_once(fh_stack, proxy, lean_crops, tmp_path):
    event, mids = batch_event(lean_crops, 3, "fh-2")
    proxy.plan = ["deliver-fail-even"]  # delivered, but answered as failed: the retry delivers them again

    fh_stack.router.process(event)

    found = [r.message_id for data in packed(fh_stack).values() for r in read_records(data)]
    assert sorted(found) == sorted([*mids, mids[0], mids[2]])  # in S3 twice, as Firehose may deliver
    assert sorted(r.message_id for r in unique([r for d in packed(fh_stack).values() for r in read_records(d)])) \
        == sorted(mids)
    records = tmp_path / "records"
    sync_records(fh_stack.client("s3"), fh_stack.resources.bucket, "training-packed/", records, packed=True)
    assert sorted(r.message_id for r in load_records(records, CAMERA)) == sorted(mids)  # read once


@slow
def test_records_that_keep_failing_or_are_too_large_go_to_a_direct_object(fh_stack, proxy, lean_crops):
    event, mids = batch_event(lean_crops, 2, "fh-3")
    proxy.plan = ["fail-even"] * 4  # record 0 fails all four attempts

    fh_stack.router.process(event)

    rows = {r.message_id: r for r in fh_stack.router.store.query_camera(CAMERA, T0 - 1, T0 + 10).items}
    direct = [k for k in fh_stack.training_keys() if k.startswith("training-data/")]
    assert direct == [rows[mids[0]].training_key]  # the fallback: its own gzip object, tagged with its tier
    assert read_records(fh_stack.client("s3").get_object(Bucket=fh_stack.resources.bucket,
                                                         Key=direct[0])["Body"].read())[0].message_id == mids[0]
    assert rows[mids[1]].training_key.startswith("training-packed/training/")  # the other went through

    huge = TrainingRecord("huge-1", CAMERA, T0, 0.0, 1, "audit", "teacher@1",
                          (TrainingCrop(Crop(0, (0.0, 0.0, 8.0, 8.0), b"\xff\xd8" + bytes(800_000), (8, 8)),
                                        (DetectionRecord("person", 0.9, (1, 1, 5, 5)),)),), SITE, THING)
    calls = len(proxy.calls)
    keys = fh_stack.router._pack([(huge, "audit")])  # over 1,000 KiB as a line (base64): never sent to Firehose
    assert len(proxy.calls) == calls
    assert keys["huge-1"].startswith(f"training-data/{SITE}/{CAMERA}/") and keys["huge-1"] in fh_stack.training_keys()


@slow
def test_a_stream_that_is_not_there_is_not_retried_and_retries_stop_at_the_budget(moto, aws_env, proxy):
    from cloud.devaws import dev_client

    result = put_records(dev_client("firehose", moto.url), "no-such-stream", [b"a\n", b"b\n"], sleep=lambda s: None)
    assert result.calls == 1 and sorted(result.failed) == [0, 1] and not result.delivered
    assert result.failed[0].startswith("ResourceNotFoundException")
    # a Firehose that keeps throttling: no retry starts once the time budget is spent
    proxy.plan = ["throttle"] * 10
    slow_sleeps: list[float] = []
    from cloud.awscalls import client

    no_retries = client("firehose", endpoint_url=proxy.url, max_attempts=1)  # as the router's: botocore's off
    result = put_records(no_retries, "no-such-stream", [b"a\n"], attempts=10, budget_s=0.0, sleep=slow_sleeps.append)
    assert result.calls == 1 and list(result.failed) == [0] and result.failed[0].startswith("ThrottlingException")
