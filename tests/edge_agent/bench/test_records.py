"""The bench counts what the router would keep: training records by the router's own rule, rows when a
camera's labels change."""

from __future__ import annotations

import numpy as np

from contracts.detections import Detections
from contracts.training import read_records
from contracts.wire import CropVerdict, DetectionRecord, EscalationRequest, Verdict
from edge_agent.bench.records import RecordTally, pooled, stored_bytes
from edge_agent.escalation.base import Transport
from edge_agent.escalation.crops import build_request
from models.metrics import wilson_interval


class Scripted(Transport):
    def __init__(self, answers):
        self.answers = list(answers)

    def escalate(self, request: EscalationRequest) -> Verdict:
        found = self.answers.pop(0)
        if found is None:
            return Verdict.failed(request.message_id, request.camera, request.frame_index, "dead-lettered")
        return Verdict(request.message_id, request.camera, request.frame_index, "t", (CropVerdict(0, tuple(found)),))


def request(camera: str, student: list[DetectionRecord], reason: str = "uncertain") -> EscalationRequest:
    image = np.zeros((32, 32, 3), np.uint8)
    return build_request(camera, 0, 0.0, image, [(0, 0, 32, 32)], reason, Detections.from_wire(student))


def d(label: str, score: float) -> DetectionRecord:
    return DetectionRecord(label, score, (1.0, 1.0, 9.0, 9.0))


def test_the_tally_counts_informative_records_and_rows_on_change():
    tally = RecordTally(Scripted([[d("person", 0.9)], [d("person", 0.9)], [d("person", 0.3)],
                                  [d("person", 0.9), d("vehicle", 0.8)], None, [d("person", 0.9)],
                                  [d("person", 0.9)]]))
    tally.escalate(request("a", []))  # missed by the student: kept; the camera's first row
    tally.escalate(request("a", [d("person", 0.4)]))  # agreed, teacher sure: not kept, same labels: no row
    tally.escalate(request("a", [d("person", 0.4)]))  # teacher unsure: kept; same labels: no row
    tally.escalate(request("a", [d("person", 0.4)]))  # a vehicle the student missed: kept; a new row
    tally.escalate(request("a", []))  # an error verdict: not an answer
    tally.escalate(request("b", [d("person", 0.4)]))  # another camera's first row
    audit = request("b", [d("person", 0.9)], reason="audit")
    tally.escalate(audit)  # an agreeing audit: kept, tier audit
    figures = tally.figures()
    nbytes = figures.pop("training_bytes")
    json_bytes = figures.pop("training_json_bytes")
    assert figures.pop("training_share_ci95") == [round(x, 4) for x in wilson_interval(4, 6)]
    tier_bytes = figures.pop("training_tier_bytes")
    assert figures == {"answered": 6, "training_kept": 4, "rows_written_change": 3,
                       "training_tiers": {"audit": 1, "disagreement": 2, "low_confidence": 1},
                       "training_by_reason": {"audit": {"answered": 1, "kept": 1},
                                              "uncertain": {"answered": 5, "kept": 3}}}
    # the bytes are the router's own stored object (contracts.training, gzip-encoded) of each kept answer
    answer = Verdict(audit.message_id, "b", 0, "t", (CropVerdict(0, (d("person", 0.9),)),))
    stored = stored_bytes(audit, answer)
    assert tier_bytes["audit"] == len(stored) and read_records(stored)[0].crops[0].crop == audit.crops[0]
    assert sum(tier_bytes.values()) == nbytes and json_bytes > nbytes  # gzip: smaller than the plain JSON
    other = {"answered": 4, "training_kept": 0, "rows_written_change": 1}
    p = pooled([figures | {"training_bytes": nbytes, "training_json_bytes": json_bytes,
                           "training_tier_bytes": tier_bytes}, other])
    assert p["training_share"] == 0.4 and p["rows_per_escalation"] == 0.4 and p["records_answered"] == 10
    assert p["training_kept"] == 4 and p["training_tiers"] == {"audit": 1, "disagreement": 2, "low_confidence": 1}
    assert p["training_by_reason"]["uncertain"] == {"answered": 5, "kept": 3}
    assert p["training_bytes_per_record"] == round(nbytes / 4, 1)
    assert p["training_json_bytes_per_record"] == round(json_bytes / 4, 1)
    # 4 of 10: the Wilson interval by hand (z = 1.96)
    z, n, k = 1.959964, 10, 4
    centre = (k / n + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((k / n * (1 - k / n) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    assert p["training_share_ci95"] == [round(centre - half, 4), round(centre + half, 4)]
    assert pooled([])["training_share"] is None
