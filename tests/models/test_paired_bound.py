"""The INT8 gate's cost check: a paired lower bound on the extra escalations, not the counts' difference."""

from __future__ import annotations

import pytest

from models.metrics import paired_difference_lower, wilson_interval
from models.student.self_int8 import gate_reason


def check(both: int, int8_only: int, fp32_only: int, frames: int) -> dict:
    return {"frames": frames, "pairs": frames, "agreement": 1.0, "fp32_kept": 10, "lost": 0, "lost_share": 0.0,
            "score_diff_mean": 0.01, "escalated_int8": both + int8_only, "escalated_fp32": both + fp32_only,
            "extra_escalation": (int8_only - fp32_only) / frames, "escalated_both": both,
            "escalated_int8_only": int8_only, "escalated_fp32_only": fp32_only}


def gate(c: dict) -> str | None:
    return gate_reason(c, min_agreement=0.85, max_lost_share=0.02, max_score_diff_mean=0.05, max_extra_escalation=0.05)


def test_the_same_judgements_are_no_evidence_of_an_excess():
    assert paired_difference_lower(10, 0, 0, 20) <= 0


def test_flips_both_ways_pass_where_the_counts_alone_would_fail():
    # 30 held-out frames: INT8 escalates 6 the fp32 does not and misses 2 it does: 10 against 6
    unpaired = wilson_interval(4, 30, 0.90)[0]  # the old test: the net 4 of 30 as a proportion
    assert unpaired > 0.05
    assert paired_difference_lower(4, 6, 2, 18) < 0.05
    assert gate(check(4, 6, 2, 30)) is None


def test_a_one_sided_excess_fails_and_says_by_how_much():
    assert paired_difference_lower(5, 8, 0, 17) > 0.05
    reason = gate(check(5, 8, 0, 30))
    assert reason is not None and "13 of the 30 frames against the fp32's 5" in reason


@pytest.mark.parametrize("cells", [(4, 3, 0, 8), (5, 8, 0, 17), (20, 10, 4, 66), (0, 3, 1, 11)])
def test_the_bound_is_below_the_estimate_and_closes_on_it_with_more_frames(cells):
    n = sum(cells)
    estimate = (cells[1] - cells[2]) / n
    small = paired_difference_lower(*cells)
    large = paired_difference_lower(*(100 * k for k in cells))
    assert small < large < estimate
    assert estimate - large < 0.3 * (estimate - small)


def test_no_pairs_is_an_error():
    with pytest.raises(ValueError, match="at least one pair"):
        paired_difference_lower(0, 0, 0, 0)
