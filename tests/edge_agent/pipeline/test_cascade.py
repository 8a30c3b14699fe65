"""Cascade arithmetic, tracker label reuse and budget accounting, table-driven."""

import numpy as np
import pytest

from contracts.detections import Detections
from contracts.jobs import Bands
from edge_agent.pipeline.cascade import Cascade, EscalationBudget
from edge_agent.pipeline.tracker import NOTHING, IouTracker

BANDS = {"person": Bands(accept=0.6, reject=0.2), "vehicle": Bands(accept=0.6, reject=0.2)}
STUDENT_T = {"person": 0.4, "vehicle": 0.4}


def dets(*rows):
    """rows: (label, score, x) -> boxes 40 px wide at x."""
    if not rows:
        return Detections.empty()
    return Detections(np.array([[x, 100, x + 40, 200] for _, _, x in rows], np.float32),
                      np.array([s for _, s, _ in rows]), np.array([lbl for lbl, _, _ in rows]))


@pytest.mark.parametrize(
    ("level", "rows", "escalate", "kept"),
    [
        ("presence", [("person", 0.9, 0)], False, 1),               # confident: edge
        ("presence", [("person", 0.1, 0)], False, 0),               # below reject: dropped
        ("presence", [("person", 0.2, 0)], False, 0),               # reject is inclusive
        ("presence", [("person", 0.3, 0)], True, 0),                # uncertain, below student threshold
        ("presence", [("person", 0.5, 0)], True, 1),                # uncertain, kept as the edge's guess
        ("presence", [("person", 0.9, 0), ("person", 0.3, 300)], False, 1),  # presence already decided
        ("boxes", [("person", 0.9, 0), ("person", 0.3, 300)], True, 1),      # boxes: every box matters
        ("presence", [("person", 0.9, 0), ("vehicle", 0.3, 300)], True, 1),  # vehicle presence unknown
        ("presence", [], False, 0),
    ],
)
def test_cascade_bands(level, rows, escalate, kept):
    tracker = IouTracker()
    cascade = Cascade(BANDS, STUDENT_T, level=level)
    decision = cascade.decide(tracker.update(dets(*rows), 0.0), tracker, 0.0)
    assert decision.escalate is escalate
    assert decision.reason == ("uncertain" if escalate else None)
    assert len(decision.edge) == kept


def test_cloud_confirmed_track_is_not_escalated_again():
    tracker = IouTracker()
    cascade = Cascade(BANDS, STUDENT_T)
    first = tracker.update(dets(("person", 0.3, 0)), 0.0)
    assert cascade.decide(first, tracker, 0.0).escalate
    tracker.confirm(first.track_ids, dets(("person", 0.8, 2)))  # the cloud says: a person, there
    for t in range(1, 30):  # the person walks 5 px a second and stays uncertain for the student
        d = cascade.decide(tracker.update(dets(("person", 0.3, 5 * t)), float(t)), tracker, float(t))
        assert not d.escalate
        assert d.edge.labels.tolist() == ["person"]  # reported with the cloud's label


def test_cloud_rejected_track_is_dropped_and_not_escalated_again():
    tracker = IouTracker()
    cascade = Cascade(BANDS, STUDENT_T)
    first = tracker.update(dets(("person", 0.5, 0)), 0.0)
    tracker.confirm(first.track_ids, Detections.empty())  # the cloud saw nothing there
    assert tracker.get(first.track_ids[0]).cloud_label == NOTHING
    d = cascade.decide(tracker.update(dets(("person", 0.5, 3)), 1.0), tracker, 1.0)
    assert not d.escalate and len(d.edge) == 0


def test_track_expires_and_its_label_is_forgotten():
    tracker = IouTracker(max_age_s=3.0)
    cascade = Cascade(BANDS, STUDENT_T)
    first = tracker.update(dets(("person", 0.3, 0)), 0.0)
    tracker.confirm(first.track_ids, dets(("person", 0.8, 0)))
    assert cascade.decide(tracker.update(dets(("person", 0.3, 0)), 10.0), tracker, 10.0).escalate


def test_tracker_keeps_identity_and_separates_labels():
    tracker = IouTracker(iou_threshold=0.2)
    a = tracker.update(dets(("person", 0.9, 0), ("vehicle", 0.9, 300)), 0.0)
    b = tracker.update(dets(("person", 0.9, 10), ("vehicle", 0.9, 310), ("person", 0.9, 600)), 1.0)
    assert b.track_ids[0] == a.track_ids[0] and b.track_ids[1] == a.track_ids[1]
    assert b.track_ids[2] not in a.track_ids
    c = tracker.update(dets(("vehicle", 0.9, 0)), 2.0)  # same place, other label: a new track
    assert c.track_ids[0] not in b.track_ids


def test_budget_refuses_beyond_the_hourly_rate_and_refills_on_media_time():
    budget = EscalationBudget(per_hour=3)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not budget.take(600.0)  # 10 minutes refill half a token
    assert budget.take(1200.0)     # 20 minutes: one token
    assert not EscalationBudget(0).take(0.0)


def test_budget_refusal_is_decided_at_the_edge_and_counted():
    tracker = IouTracker()
    cascade = Cascade(BANDS, STUDENT_T, budget_per_hour=1)
    results = [cascade.decide(tracker.update(dets(("person", 0.5, 100 * t)), float(t)), tracker, float(t))
               for t in range(3)]
    assert [r.escalate for r in results] == [True, False, False]
    assert [r.budget_refused for r in results] == [False, True, True]
    assert all(len(r.edge) == 1 for r in results)  # the edge's own guess stands: nothing lost


def test_audit_share_escalates_confident_frames_at_about_the_configured_rate():
    tracker = IouTracker()
    cascade = Cascade(BANDS, STUDENT_T, audit_fraction=0.1, seed=1)
    reasons = [cascade.decide(tracker.update(dets(("person", 0.95, 0)), float(t)), tracker, float(t)).reason
               for t in range(2000)]
    share = reasons.count("audit") / len(reasons)
    assert 0.07 < share < 0.13
    assert set(reasons) <= {"audit", None}


@pytest.mark.parametrize(
    ("t", "score", "escalate"),
    [
        (5.0, 0.30, False),   # still trusted: same spot, same doubt
        (5.0, 0.50, True),    # the student's score rose by 0.2: someone may have stepped in; ask again
        (12.0, 0.30, True),   # "nothing here" lapsed after 10 s
    ],
)
def test_nothing_here_is_weaker_than_a_label(t, score, escalate):
    tracker = IouTracker(max_age_s=30.0)
    cascade = Cascade(BANDS, STUDENT_T, nothing_ttl_s=10.0, nothing_rise=0.15)
    first = tracker.update(dets(("person", 0.3, 0)), 0.0)
    tracker.confirm(first.track_ids, Detections.empty(), now_s=0.0)
    d = cascade.decide(tracker.update(dets(("person", score, 2)), t), tracker, t)
    assert d.escalate is escalate


def test_a_confirmed_label_holds_whatever_the_student_says():
    tracker = IouTracker(max_age_s=60.0)
    cascade = Cascade(BANDS, STUDENT_T, nothing_ttl_s=1.0)
    first = tracker.update(dets(("person", 0.3, 0)), 0.0)
    tracker.confirm(first.track_ids, dets(("person", 0.8, 0)), now_s=0.0)
    d = cascade.decide(tracker.update(dets(("person", 0.25, 3)), 50.0), tracker, 50.0)
    assert not d.escalate and d.edge.scores.tolist() == pytest.approx([0.8])
