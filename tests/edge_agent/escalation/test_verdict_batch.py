"""A batch's verdict message on the gateway: each answer goes to the escalation awaiting it, matched by id;
answers nobody awaits any more (decided at the edge after the timeout) are counted and dropped."""

from __future__ import annotations

import threading

from contracts.batch import VerdictBatch
from contracts.wire import Crop, CropVerdict, DetectionRecord, EscalationRequest, Verdict
from edge_agent.escalation.mqtt import MqttTransport, _Waiter

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def transport_without_a_broker() -> MqttTransport:
    t = MqttTransport.__new__(MqttTransport)  # only the verdict side: no link, no broker
    t._waiting, t._lock = {}, threading.Lock()
    t.verdicts = t.late_verdicts = t.rejected = t.timeouts = t.spooled = t.error_verdicts = 0
    t.batcher, t.cloud_batches, t.batching_fallbacks, t._last_verdict_s, t.single_messages = None, False, 0, 0.0, 0
    return t


def request(mid: str) -> EscalationRequest:
    return EscalationRequest(mid, "plaza", 7, 0.7, "uncertain", (Crop(0, (0.0, 0.0, 8.0, 8.0), JPEG, (8, 8)),))


def test_a_verdict_batch_wakes_each_waiter_and_counts_the_ones_nobody_waits_for():
    t = transport_without_a_broker()
    waiting = _Waiter(request("m1"))
    t._waiting["m1"] = waiting
    answers = (Verdict("m1", "plaza", 7, "t@1", (CropVerdict(0, (DetectionRecord("person", 0.9, (1, 1, 5, 5)),)),)),
               Verdict("gone", "plaza", 7, "t@1", ()),  # its escalation timed out and was decided at the edge
               Verdict.failed("gone-too", "plaza", 7, "malformed"))
    t._on_verdict("framesieve/gw/verdicts", VerdictBatch("b1", answers).to_bytes())
    assert waiting.event.is_set() and waiting.verdict is not None and waiting.verdict.detections()[0].label == "person"
    assert (t.verdicts, t.late_verdicts, t.rejected) == (1, 2, 0)
    t._on_verdict("framesieve/gw/verdicts", b'{"v":2,"type":"verdict_batch","batch_id":"b2","verdicts":[{"v":1}]}')
    assert t.rejected == 1  # a malformed batch is rejected whole, logged; the waits go on
