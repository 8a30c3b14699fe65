"""A packed object of the Firehose sink: JSON lines, one record each, gzip-compressed by Firehose (or not, as
moto delivers it, or as gzip members compressed apart); a bad line is skipped and named, the rest read; a
record delivered twice (Firehose is at-least-once) is read once."""

from __future__ import annotations

import gzip

import pytest

from contracts.codec import WireError
from contracts.training import (
    TrainingBatch,
    TrainingCrop,
    TrainingRecord,
    decode_object,
    lifecycle,
    read_records,
    record_of,
    to_line,
    unique,
)
from contracts.wire import Crop, DetectionRecord

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def rec(mid: str, camera: str = "plaza") -> TrainingRecord:
    crop = TrainingCrop(Crop(0, (0.0, 0.0, 8.0, 8.0), JPEG, (8, 8)), (DetectionRecord("person", 0.9, (1, 1, 5, 5)),))
    return TrainingRecord(mid, camera, 1000.0, 1.0, 10, "uncertain", "teacher@1", (crop,), "site", "gw")


LINES = b"".join(to_line(rec(m, cam)) for m, cam in (("m1", "plaza"), ("m2", "gate"), ("m3", "plaza")))


@pytest.mark.parametrize("stored", [
    LINES,  # moto's delivery: the records as sent, concatenated
    gzip.compress(LINES),  # Firehose's CompressionFormat GZIP: the whole object
    b"".join(gzip.compress(to_line(rec(m, cam))) for m, cam in (("m1", "plaza"), ("m2", "gate"), ("m3", "plaza"))),
], ids=["plain", "gzip", "gzip-members"])
def test_packed_objects_are_read_line_by_line_whatever_the_compression(stored):
    assert [r.message_id for r in read_records(stored)] == ["m1", "m2", "m3"]
    assert record_of(stored, "m2").camera == "gate"
    with pytest.raises(KeyError):
        record_of(stored, "m4")


def test_a_bad_line_is_skipped_and_named_the_others_read():
    data = to_line(rec("m1")) + b'{"v":1,"type":"training","crops":[]}\n' + b"{broken\n" + to_line(rec("m2"))
    skipped: list[str] = []
    assert [r.message_id for r in read_records(data, skipped)] == ["m1", "m2"]
    assert len(skipped) == 2 and skipped[0].startswith("line 2:") and skipped[1].startswith("line 3:")
    with pytest.raises(WireError, match="no readable record"):
        read_records(b"{broken\n{also broken\n")


def test_a_record_delivered_twice_is_read_once_and_single_objects_still_read():
    twice = gzip.compress(to_line(rec("m1")) + to_line(rec("m2"))) + gzip.compress(to_line(rec("m1")))
    assert [r.message_id for r in unique(read_records(twice))] == ["m1", "m2"]
    assert read_records(to_line(rec("m9"))) == [rec("m9")]  # one line: one record
    batch = TrainingBatch("b", "gw", (rec("m1"), rec("m2"))).to_bytes()
    assert [r.message_id for r in read_records(gzip.compress(batch))] == ["m1", "m2"]


def test_trailing_bytes_after_gzip_members_are_refused():
    with pytest.raises(WireError, match="trailing bytes"):
        decode_object(gzip.compress(LINES) + b"junk")
    with pytest.raises(WireError, match="truncated"):
        decode_object(gzip.compress(LINES)[:-20])


@pytest.mark.parametrize(("tier", "life"), [("audit", "audit"), ("disagreement", "training"),
                                            ("low_confidence", "training"), ("onboarding", "training"),
                                            ("kept", "training")])
def test_each_tier_goes_to_its_lifecycle(tier, life):
    assert lifecycle(tier) == life
