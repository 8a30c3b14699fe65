"""The gateway's other messages to the cloud: frame events, specialization steps and telemetry round trips,
and malformed ones rejected with the field named."""

import copy
import json

import pytest

from contracts.device import MAX_REASON, FrameEventMessage, SpecializationEvent, Telemetry, message_type
from contracts.wire import MAX_MESSAGE_BYTES, DetectionRecord, WireError

EVENT = FrameEventMessage("e-1", "plaza", 15, 15.0, "cloud", True, (DetectionRecord("person", 0.9, (1, 2, 30, 60)),),
                          1_764_400_000.0, site="site-1")
TELEMETRY = Telemetry("t-1", "gw-1", 1_764_400_000.0, 60.0, "0.1.0", "1.0.0", 35.5, 410.0, 3, 1200, 0, True,
                      {"plaza": {"fps": 1.0, "motion_rate": 0.8, "escalation_rate": 0.05, "cloud_failed_rate": 0.0,
                                 "own_student": 1.0, "warming_up": 0.0, "guard_max_escalation": 0.25}},
                      max_in_flight=113)
STEP = SpecializationEvent("s-1", "plaza", 1_764_400_000.0, "rollback", "it escalated 61% of the last 50 frames",
                           site="site-1", outcome="rolled-back", version="plaza-2", records=240)


def test_round_trips():
    assert FrameEventMessage.from_bytes(EVENT.to_bytes()) == EVENT
    assert Telemetry.from_bytes(TELEMETRY.to_bytes()) == TELEMETRY
    assert SpecializationEvent.from_bytes(STEP.to_bytes()) == STEP
    assert [message_type(json.loads(m.to_bytes())) for m in (EVENT, STEP)] == ["event", "specialization"]
    long = SpecializationEvent("s-2", "plaza", 1.0, "failed", "x" * 5000)  # a trainer's long error: cut, not refused
    assert len(SpecializationEvent.from_bytes(long.to_bytes()).reason) == MAX_REASON
    assert len(EVENT.to_bytes()) < 1024 < MAX_MESSAGE_BYTES  # one IoT Core 5 KB unit
    older = json.loads(TELEMETRY.to_bytes())  # an agent from before own_student: still read, as 0
    for key in ("own_student", "warming_up", "guard_max_escalation"):
        del older["cameras"]["plaza"][key]
    assert {k: Telemetry.from_payload(older).cameras["plaza"][k]
            for k in ("own_student", "warming_up", "guard_max_escalation")} == dict.fromkeys(
        ("own_student", "warming_up", "guard_max_escalation"), 0.0)
    del older["max_in_flight"]  # an agent from before escalation.max_in_flight: auto: read as 0 (unknown)
    assert Telemetry.from_payload(older).max_in_flight == 0 and TELEMETRY.to_payload()["max_in_flight"] == 113


@pytest.mark.parametrize(("message", "change", "error"), [
    (EVENT, {"decided_by": "oracle"}, "event.decided_by: 'oracle' is not one of"),
    (EVENT, {"escalated": "yes"}, "event.escalated"),
    (EVENT, {"v": 2}, "wire version 2 is not supported"),
    (EVENT, {"detections": [{"label": "person", "score": 2, "box": [0, 0, 1, 1]}]}, "event.detections[0].score"),
    (TELEMETRY, {"type": "event"}, "expected type 'telemetry'"),
    (STEP, {"kind": "retire"}, "specialization.kind: 'retire' is not one of"),
    (STEP, {"camera": ""}, "specialization.camera"),
    (STEP, {"t_s": -1}, "specialization.t_s"),
    (STEP, {"reason": None}, "specialization.reason"),
    (STEP, {"records": 1.5}, "specialization.records"),
    (EVENT, {"type": "specialization"}, "expected type 'event'"),
    (TELEMETRY, {"cpu_percent": float("nan")}, "telemetry.cpu_percent"),
    (TELEMETRY, {"spool": {"rows": 1}}, "telemetry.spool: missing field 'bytes'"),
    (TELEMETRY, {"cameras": {"plaza": {"fps": 1}}}, "telemetry.cameras.plaza: missing field 'motion_rate'"),
])
def test_malformed_messages_name_the_field(message, change, error):
    payload = copy.deepcopy(message.to_payload())
    payload.update(change)
    with pytest.raises(WireError, match=error.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        type(message).from_payload(payload)
