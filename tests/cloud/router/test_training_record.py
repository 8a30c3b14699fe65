"""The router keeps each answered escalation as the one training record type the agent's collector also
writes (contracts/training.py), with the gateway that sent it and what its student said."""

from cloud.router.routing import Parsed, training_record
from contracts.training import TrainingRecord
from contracts.wire import DetectionRecord, EscalationRequest, InvocationResponse


def test_the_router_writes_a_training_record_with_thing_and_student(plaza_crops):
    student = (DetectionRecord("person", 0.41, (10.0, 20.0, 50.0, 120.0)),)
    request = EscalationRequest("m-1", "plaza", 7, 7.0, "uncertain", plaza_crops, "site-a", 1234.5, student)
    teacher = DetectionRecord("person", 0.9, (1.0, 2.0, 30.0, 90.0))
    response = InvocationResponse("yolov3-tiny@1", tuple((str(c.crop_id), (teacher,)) for c in plaza_crops))
    record = TrainingRecord.from_bytes(training_record(Parsed(request, "t", "gw-7", 1234.5, 1000), response))
    assert (record.thing, record.site, record.camera, record.teacher_model) == ("gw-7", "site-a", "plaza",
                                                                                "yolov3-tiny@1")
    assert record.student == student and [c.teacher for c in record.crops] == [(teacher,)] * len(plaza_crops)
    assert [c.crop for c in record.crops] == list(plaza_crops)


def test_a_stored_training_object_is_gzip_and_every_reader_takes_both(plaza_crops):
    """The router stores the record gzip-encoded (the base64 of the crops' JPEGs shrinks by ~a quarter);
    read_records takes the stored bytes and an older plain object alike, and names a corrupt or oversized one."""
    import gzip

    import pytest

    from contracts.codec import WireError
    from contracts.training import MAX_OBJECT_BYTES, decode_object, encode_object, read_records

    request = EscalationRequest("m-1", "plaza", 7, 7.0, "uncertain", plaza_crops, "site-a", 1234.5, ())
    response = InvocationResponse("yolov3-tiny@1", tuple((str(c.crop_id), ()) for c in plaza_crops))
    plain = training_record(Parsed(request, "t", "gw-7", 1234.5, 1000), response)
    stored = encode_object(plain)
    assert stored == encode_object(plain)  # no timestamp in it: a retry writes the same bytes
    assert len(stored) < 0.85 * len(plain), (len(stored), len(plain))
    assert read_records(stored) == read_records(plain) and read_records(stored)[0].message_id == "m-1"
    assert decode_object(plain) == plain
    with pytest.raises(WireError, match="corrupt"):
        read_records(stored[:-20] + b"x" * 20)
    with pytest.raises(WireError, match="inflates beyond"):
        decode_object(gzip.compress(b" " * (MAX_OBJECT_BYTES + 10)))
