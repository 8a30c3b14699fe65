"""Agreement figures that say how much they know: counts, a 95% interval, and "n/a" where the reference
has no positives or no negatives, never a vacuous 1.000."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.detections import Detections
from edge_agent.bench.sweep import MIN_NEGATIVES, MIN_POSITIVES, evidence_refusal, pick_operating_point, pool_points
from models.metrics import LabelAgreement, agreement_line, presence_text


def _dets(n: int) -> Detections:
    boxes = np.array([[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(n)], np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(n, 0.9, np.float32), np.array(["person"] * n))


def _agreement(pairs: list[tuple[int, int]]) -> LabelAgreement:
    acc = LabelAgreement()
    for said, there in pairs:
        acc.add(_dets(said), _dets(there))
    return acc


def test_no_positives_and_no_negatives_are_not_scored():
    never = _agreement([(0, 0)] * 10).summary()
    assert never["presence_recall"] is None and never["presence_note"] == "no positives"
    assert presence_text(never) == "n/a (no positives)"
    always = _agreement([(1, 1)] * 80).summary()  # what an "always yes" detector gets on vtest's person
    assert always["presence_note"] == "no negatives"
    assert presence_text(always) == presence_text(always, "presence_precision") == "n/a (no negatives)"
    assert "1.000" not in agreement_line("person", always).split("box")[0]


def test_figures_carry_counts_an_interval_and_the_counting_error():
    # 60 frames with one person (57 found), 40 without (1 false alarm with two boxes)
    s = _agreement([(1, 1)] * 57 + [(0, 1)] * 3 + [(2, 0)] + [(0, 0)] * 39).summary()
    assert (s["both_present"], s["ref_present"], s["pred_present"]) == (57, 60, 58)
    assert s["presence_recall"] == pytest.approx(0.95) and s["presence_note"] is None
    lo, hi = s["presence_recall_ci95"]
    assert lo < 0.95 < hi and hi - lo > 0.05  # 60 frames: an interval of several points, not a bare 0.950
    assert s["count_error_mean"] == pytest.approx((3 + 2) / 100)
    assert presence_text(s).startswith("0.950 (57/60, 95% CI ")


def _point(accept, esc, recall, hits, positives, frames, said=None):
    return {"accept": accept, "reject": 0.1, "level": "presence", "escalation_fraction": esc,
            "person_presence_recall": recall, "person_presence_precision": 1.0, "person_box_f1_iou50": 0.8,
            "person_positives": positives, "person_hits": hits, "person_said": said or hits, "person_frames": frames,
            **{f"vehicle_{k}": v for k, v in (("presence_recall", None), ("presence_precision", None),
                                               ("box_f1_iou50", None), ("positives", 0), ("hits", 0), ("said", 0),
                                               ("frames", frames))}}


def test_an_operating_point_is_refused_on_thin_or_one_sided_evidence():
    thirty_six = [_point(0.4, 0.0, 1.0, 30, 30, 36)]  # the bench of a new user: 36 frames, 6 without a person
    assert f"at least {MIN_POSITIVES} with and {MIN_NEGATIVES} without" in evidence_refusal(thirty_six)
    vtest = [_point(0.4, 0.0, 1.0, 80, 80, 80)]  # a person in every frame
    assert "0 do not" in evidence_refusal(vtest)
    enough = [_point(0.4, 0.02, 0.98, 98, 100, 160)]
    assert evidence_refusal(enough) is None
    assert pick_operating_point(enough, 0.97)["accept"] == 0.4


def test_clips_pool_by_their_counts_not_by_averaging_rates():
    a = _point(0.4, 0.1, 1.0, 2, 2, 10)  # 2 positives, both found
    b = _point(0.4, 0.3, 0.5, 50, 100, 100)  # 100 positives, half found
    pooled = pool_points([(10, a), (100, b)])
    assert pooled["person_presence_recall"] == pytest.approx(52 / 102, abs=1e-4)
    assert pooled["person_positives"] == 102 and pooled["vehicle_presence_recall"] is None
    assert pooled["escalation_fraction"] == pytest.approx((10 * 0.1 + 100 * 0.3) / 110, abs=1e-4)
