"""The per-gateway batch (wire version 2): item by item, so one bad escalation spoils none of the others."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contracts.batch import MAX_BATCH, EscalationBatch, VerdictBatch
from contracts.wire import Crop, CropVerdict, DetectionRecord, EscalationRequest, Verdict, WireError

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def escalation(mid: str) -> EscalationRequest:
    return EscalationRequest(mid, "plaza", 3, 1.5, "uncertain", (Crop(0, (0.0, 0.0, 8.0, 8.0), JPEG, (8, 8)),),
                             created_s=1_764_400_000.0)


def test_a_batch_round_trips_and_a_malformed_item_is_set_aside_with_its_id():
    payload = EscalationBatch("b1", (escalation("m1"), escalation("m2"))).to_payload()
    bad = escalation("m3").to_payload()
    bad["crops"][0]["jpeg_b64"] = "aGVsbG8="  # "hello": not a JPEG
    payload["escalations"].insert(1, bad)
    payload["escalations"].append(escalation("m1").to_payload())  # the same escalation twice: answered once
    batch = EscalationBatch.from_payload(payload)
    assert [e.message_id for e in batch.escalations] == ["m1", "m2"]
    [err] = batch.errors
    assert err.index == 1 and err.reply == ("m3", "plaza", 3) and "not a JPEG" in err.reason


def test_a_batch_says_its_re_sends_name_it_and_a_re_sent_escalation_names_its_batch():
    batch = EscalationBatch("b1", (escalation("m1"),), resends_named=True)
    assert EscalationBatch.from_bytes(batch.to_bytes()).resends_named is True
    assert EscalationBatch.from_payload(EscalationBatch("b1", (escalation("m1"),)).to_payload()).resends_named is False
    resent = replace(escalation("m1"), batch_id="b1")
    assert EscalationRequest.from_bytes(resent.to_bytes()).batch_id == "b1"
    assert "batch_id" not in escalation("m1").to_payload()  # a plain escalation's bytes are as before
    bad = resent.to_payload() | {"batch_id": "x" * 500}
    with pytest.raises(WireError, match="escalation.batch_id"):
        EscalationRequest.from_payload(bad)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(v=1), "wire version 1 is not a batch"),
    (lambda p: p.update(escalations=[]), "at least one escalation"),
    (lambda p: p.update(escalations=p["escalations"] * (MAX_BATCH + 1)), f"over the {MAX_BATCH}"),
    (lambda p: p.update(batch_id=""), "batch_id"),
    (lambda p: p.update(resends_named="yes"), "resends_named: must be true or false"),
])
def test_a_bad_batch_is_refused_naming_what_is_wrong(change, message):
    payload = EscalationBatch("b1", (escalation("m1"),)).to_payload()
    change(payload)
    with pytest.raises(WireError, match=message):
        EscalationBatch.from_payload(payload)


def test_a_verdict_batch_carries_answers_and_error_verdicts_matched_by_id():
    answers = (Verdict("m1", "plaza", 3, "t@1", (CropVerdict(0, (DetectionRecord("person", 0.9, (1, 1, 5, 5)),)),)),
               Verdict.failed("m3", "plaza", 3, "malformed: not a JPEG"))
    back = VerdictBatch.from_bytes(VerdictBatch("b1", answers).to_bytes())
    assert back.batch_id == "b1" and [v.message_id for v in back.verdicts] == ["m1", "m3"]
    assert back.verdicts[1].error.startswith("malformed") and back.verdicts[0].detections()[0].label == "person"
