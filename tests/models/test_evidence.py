"""Promotion on evidence, with constructed failures: the bounds, the evidence gate and the band choice."""

import math

import numpy as np
import pytest

from contracts.training import TrainingCrop, TrainingRecord
from contracts.wire import Crop, DetectionRecord
from models.student.defaults import DEFAULTS
from models.student.evidence import clopper_pearson_lower, count_evidence, positives_needed, wilson_lower
from models.student.specialize import cascade_outcome, cheapest_by_bound


def test_bounds_known_values():
    z2 = 1.6448536269514722 ** 2
    assert wilson_lower(30, 30) == pytest.approx(1 / (1 + z2 / 30))  # all hits: 0.917, not 1.000
    assert clopper_pearson_lower(30, 30) == pytest.approx(0.05 ** (1 / 30))
    assert clopper_pearson_lower(95, 100) == pytest.approx(0.8977, abs=5e-4)  # tables: 0.8977
    assert wilson_lower(0, 10) == 0.0 and clopper_pearson_lower(0, 10) == 0.0
    # what the defaults demand: with no miss at all, this many positive held-back frames
    assert positives_needed(0.97) == 88 and positives_needed(0.97, method="clopper-pearson") == 99


def _records(labels_per_frame, spacing_s=10.0):
    out = []
    for k, labels in enumerate(labels_per_frame):
        crop = Crop(0, (0.0, 0.0, 64.0, 64.0), b"\xff\xd8", (64, 64))
        teacher = tuple(DetectionRecord(label, 0.9, (1.0, 1.0, 30.0, 30.0)) for label in labels)
        out.append(TrainingRecord(f"m{k:05d}", "cam", 1000.0 + k, k * spacing_s, k, "onboarding", "teacher",
                                  (TrainingCrop(crop, teacher),)))
    return out


def test_promotion_is_refused_on_too_few_positives():
    # 500 records, a person in 1 frame of 10: 10 in the 100 held back, far from 30
    records = _records([("person",) if k % 10 == 0 else () for k in range(500)])
    evidence = count_evidence(records)
    assert not evidence.enough
    assert evidence.labels["person"].present == 10 and evidence.labels["person"].absent == 90
    assert evidence.missing == ["person present in 10 held-back frames, at least 30 needed"]


def test_records_of_one_label_only_keep_the_camera_collecting():
    evidence = count_evidence(_records([("person",)] * 400))  # a person in every frame: nothing absent
    assert evidence.missing == ["person absent in 0 held-back frames, at least 30 needed"]


def test_evidence_must_span_the_cameras_time():
    records = _records([("person",) if k % 2 else () for k in range(400)], spacing_s=0.5)  # 80 held back, 40 s
    evidence = count_evidence(records)
    assert evidence.labels["person"].present == 40 and evidence.labels["person"].absent == 40
    assert len(evidence.missing) == 1 and "cover 40 s of the camera's time, at least 600 s" in evidence.missing[0]
    assert count_evidence(_records([("person",) if k % 2 else () for k in range(400)])).enough


def test_thirteen_perfect_frames_do_not_prove_a_recall_of_097():
    """The issue's case: 13 held-back frames, recall 1.000 at the point estimate; the bound says 0.82."""
    scores = np.array([[0.9, 0.0]] * 13 + [[0.0, 0.0]] * 13)
    present = np.array([[True, False]] * 13 + [[False, False]] * 13)
    outcome = cascade_outcome(scores, present, 0.7, 0.3)
    assert outcome.labels["person"].recall == 1.0 and outcome.labels["person"].recall_lower < 0.83
    assert cheapest_by_bound(scores, present) is None  # not promoted at any bands


def test_a_challenger_that_learnt_one_clothing_colour_is_refused_on_the_other():
    """Fine-tuned on the first half (dark clothes), judged on the held-back second half (grey): it is sure
    there is nobody in 60 of 150 grey-clothed frames. No bands reach the target by the bound: refused. And
    where its doubt is honest (scores in the band), the bound picks bands that send those frames to the cloud."""
    rng = np.random.default_rng(0)
    grey = np.where(np.arange(150) < 60, 0.02, rng.uniform(0.8, 1.0, 150))  # 60 confident misses
    empty = rng.uniform(0.0, 0.04, 150)
    scores = np.stack([np.concatenate([grey, empty]), np.zeros(300)], axis=1)
    present = np.stack([np.arange(300) < 150, np.zeros(300, bool)], axis=1)
    assert cheapest_by_bound(scores, present) is None
    doubtful = scores.copy()
    doubtful[:60, 0] = 0.25  # the same frames, but unsure rather than wrong
    chosen = cheapest_by_bound(doubtful, present)
    assert chosen is not None and chosen.labels["person"].recall == 1.0
    assert chosen.labels["person"].recall_lower >= DEFAULTS.target_recall
    assert chosen.reject < 0.25 < chosen.accept and chosen.escalation_fraction == pytest.approx(0.2)


def test_bands_are_chosen_by_the_bound_not_the_point_estimate():
    # 200 positives. At accept 0.5 / reject 0.4 three are dropped: point recall 0.985 would pass 0.97, its
    # Wilson bound (0.963) does not. At accept 0.3 only one is missed (0.995, bound 0.976): chosen.
    person = np.concatenate([np.full(197, 0.95), [0.35, 0.36, 0.01]])
    scores = np.stack([np.concatenate([person, np.zeros(200)]), np.zeros(400)], axis=1)
    present = np.stack([np.arange(400) < 200, np.zeros(400, bool)], axis=1)
    tight = cascade_outcome(scores, present, 0.5, 0.4)
    assert tight.escalation_fraction == 0.0 and tight.labels["person"].recall == pytest.approx(0.985)
    assert tight.labels["person"].recall_lower < 0.97
    chosen = cheapest_by_bound(scores, present)
    assert chosen.accept == 0.3 and chosen.escalation_fraction == 0.0
    assert chosen.labels["person"].recall_lower >= 0.97
    assert math.isclose(chosen.labels["person"].recall, 199 / 200, abs_tol=1e-4)
