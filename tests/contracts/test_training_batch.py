"""A gateway batch's training object: its records round-trip, readers take one record or a batch alike, a
record is found by message id, and the object's lifecycle tier keeps every record as long as its own."""

from __future__ import annotations

import pytest

from contracts.codec import WireError
from contracts.training import TrainingBatch, TrainingCrop, TrainingRecord, batch_tier, read_records, record_of
from contracts.wire import Crop, DetectionRecord

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def rec(mid: str, camera: str) -> TrainingRecord:
    crop = TrainingCrop(Crop(0, (0.0, 0.0, 8.0, 8.0), JPEG, (8, 8)), (DetectionRecord("person", 0.9, (1, 1, 5, 5)),))
    return TrainingRecord(mid, camera, 1000.0, 1.0, 10, "uncertain", "teacher@1", (crop,), "site", "gw")


def test_a_batch_object_round_trips_and_readers_take_either_kind():
    batch = TrainingBatch("b1", "gw", (rec("m1", "plaza"), rec("m2", "gate")))
    data = batch.to_bytes()
    assert TrainingBatch.from_payload(__import__("json").loads(data)) == batch
    assert [r.message_id for r in read_records(data)] == ["m1", "m2"]
    assert record_of(data, "m2").camera == "gate"
    with pytest.raises(KeyError):
        record_of(data, "m3")
    with pytest.raises(KeyError):
        record_of(data)  # which one? a batch needs the message id
    single = rec("m9", "plaza").to_bytes()
    assert read_records(single) == [rec("m9", "plaza")] and record_of(single).message_id == "m9"
    with pytest.raises(WireError, match="no records"):
        read_records(b'{"v":1,"type":"training_batch","batch_id":"b","records":[]}')
    with pytest.raises(WireError, match="not JSON"):
        read_records(b"{")


@pytest.mark.parametrize(("tiers", "tier"), [
    (["audit", "audit"], "audit"),  # only audits: kept as long as a result row
    (["audit", "disagreement"], "disagreement"),  # else the training set's retention, for every record in it
    (["low_confidence"], "low_confidence"),
    ([], ""),
])
def test_a_batch_objects_tier_is_the_longest_kept_of_its_records(tiers, tier):
    assert batch_tier(tiers) == tier
