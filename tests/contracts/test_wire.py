"""The edge<->cloud messages: round trips, a stored v1 message, and a table of malformed ones."""

import copy
import json
import re
from pathlib import Path

import pytest

from contracts.wire import (
    MAX_MESSAGE_BYTES,
    Crop,
    CropVerdict,
    DetectionRecord,
    EscalationRequest,
    InvocationRequest,
    InvocationResponse,
    Verdict,
    WireError,
    invocation_for,
    verdict_from_response,
)

STORED = json.loads((Path(__file__).parent / "events" / "escalation_v1.json").read_text())


def test_stored_v1_escalation_parses_and_round_trips():
    request = EscalationRequest.from_payload(STORED)
    assert request.camera == "plaza" and request.crops[0].size == (160, 96)
    again = EscalationRequest.from_bytes(request.to_bytes())
    assert again == request


def test_verdict_round_trip_and_crop_mapping_to_source_pixels():
    request = EscalationRequest.from_payload(STORED)
    response = InvocationResponse("teacher@1", (("0", (DetectionRecord("person", 0.9, (16, 8, 32, 48)),)),))
    verdict = verdict_from_response(request, InvocationResponse.from_payload(response.to_payload()))
    # crop box 320x192 sent as a 160x96 JPEG: x2 scale, then offset by the crop's corner
    assert verdict.detections()[0].box == (132.0, 66.0, 164.0, 146.0)
    assert Verdict.from_bytes(verdict.to_bytes()) == verdict
    with pytest.raises(WireError, match=r"crop ids \['0'\]"):
        verdict_from_response(request, InvocationResponse("t", ()))


def test_invocation_request_carries_crops_by_id():
    request = EscalationRequest.from_payload(STORED)
    body = invocation_for(request)
    assert InvocationRequest.from_payload(json.loads(body.to_bytes())) == body


def _edit(path, value):
    payload = copy.deepcopy(STORED)
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("v",), 2, "wire version 2"),
        (("type",), "verdict", "expected type 'escalation'"),
        (("camera",), KeyError, "missing field 'camera'"),
        (("frame_index",), "12", "frame_index"),
        (("frame_index",), True, "boolean"),
        (("reason",), "curious", "reason"),
        (("crops",), [], "at least one crop"),
        (("crops", 0, "jpeg_b64"), "%%%", "not valid base64"),
        (("crops", 0, "jpeg_b64"), "aGVsbG8=", "not a JPEG"),
        (("crops", 0, "box"), [1, 2, 3], "a box is"),
        (("crops", 0, "box"), [5, 5, 1, 1], "x2 >= x1"),
        (("crops", 0, "size"), [-1, 3], "size"),
        (("student", 0, "score"), 1.5, "outside [0, 1]"),
        # what crashed the router (issue 15): each must be a named WireError, never a TypeError or a NaN row
        (("created_s",), "abc", "escalation.created_s"),
        (("created_s",), [], "escalation.created_s"),
        (("created_s",), float("inf"), "escalation.created_s"),
        (("created_s",), 1e300, "escalation.created_s"),
        (("created_s",), 10 ** 400, "escalation.created_s"),
        (("created_s",), -5, "escalation.created_s"),
        (("pts_s",), float("nan"), "escalation.pts_s"),
        (("pts_s",), float("inf"), "escalation.pts_s"),
        (("student", 0, "score"), float("nan"), "outside [0, 1]"),
        (("frame_index",), 2 ** 70, "frame_index"),
        (("site",), ["b"], "escalation.site"),
        (("site",), "x" * 200, "escalation.site"),
        (("camera",), "", "escalation.camera"),
        (("message_id",), "a\nb", "escalation.message_id"),
        (("crops", 0, "box"), [0, 0, 1e300, 1], "box"),
        (("crops", 0, "box"), [0, 0, 10 ** 400, 1], "box"),
        (("crops", 0, "crop_id"), 2 ** 40, "crop_id"),
    ],
)
def test_malformed_escalations_name_the_field(path, value, message):
    with pytest.raises(WireError, match=re.escape(message)):
        EscalationRequest.from_payload(_edit(path, value))


@pytest.mark.parametrize("text", ['{"v": 1, "pts_s": NaN}', '{"v": 1, "pts_s": Infinity}', '{"v": 1e400}',
                                  "[" * 50_000 + "]" * 50_000, '{"a":' * 20 + "1" + "}" * 20])
def test_json_the_strict_codec_refuses(text):
    with pytest.raises(WireError, match="not valid JSON|levels deep"):
        EscalationRequest.from_bytes(text)


def test_not_json_and_oversized():
    with pytest.raises(WireError, match="not valid JSON"):
        EscalationRequest.from_bytes(b"{nope")
    with pytest.raises(WireError, match="over the"):
        EscalationRequest.from_bytes(b" " * (MAX_MESSAGE_BYTES + 1))
    big = Crop(0, (0, 0, 10, 10), b"\xff\xd8" + b"\0" * MAX_MESSAGE_BYTES, (10, 10))
    with pytest.raises(WireError, match="over the 131072-byte limit"):
        EscalationRequest("m", "c", 0, 0.0, "uncertain", (big,)).to_bytes()
    empty = Verdict("m", "c", 0, "t", (CropVerdict(0, ()),))
    assert Verdict.from_bytes(empty.to_bytes()).detections() == ()


def test_a_crops_pixels_and_the_source_frames_map_both_ways():
    from contracts.wire import Crop, DetectionRecord

    crop = Crop(0, (100.0, 50.0, 500.0, 250.0), b"\xff\xd8", (200, 100))  # shrunk to half for the message
    source = DetectionRecord("person", 0.7, (140.0, 70.0, 180.0, 150.0))
    in_crop = crop.from_source(source)
    assert in_crop.box == (20.0, 10.0, 40.0, 50.0)
    assert crop.to_source(in_crop) == source
    assert crop.from_source(DetectionRecord("person", 0.7, (90.0, 40.0, 120.0, 60.0))).box[:2] == (0.0, 0.0)


def test_an_error_verdict_round_trips_and_carries_no_crops():
    failed = Verdict.failed("m1", "cam", 7, "dead letter: malformed created_s")
    back = Verdict.from_bytes(failed.to_bytes())
    assert back.error == "dead letter: malformed created_s" and back.crops == () and back.frame_index == 7
    payload = failed.to_payload() | {"crops": [{"crop_id": 0, "detections": []}]}
    with pytest.raises(WireError, match="carries no crops"):
        Verdict.from_payload(payload)
    assert "error" not in Verdict("m", "c", 0, "t", ()).to_payload()


@pytest.mark.parametrize(("value", "read"), [(2, 2), (None, 0), ("2", 0), (True, 0), (-1, 0), (10**9, 0)])
def test_a_verdict_says_which_wire_versions_its_sender_reads(value, read):
    payload = Verdict("m", "c", 0, "t", ()).to_payload()
    assert "accepts_v" not in payload  # an older cloud's verdict: nothing said
    if value is not None:
        payload["accepts_v"] = value
    assert Verdict.from_payload(payload).accepts_v == read
    assert Verdict.from_bytes(Verdict("m", "c", 0, "t", (), accepts_v=2).to_bytes()).accepts_v == 2
