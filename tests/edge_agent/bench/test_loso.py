"""Leave one scene out: the pooling and the intervals on constructed rows, and one real run end to end."""

from __future__ import annotations

import json

import pytest

from edge_agent.bench.loso import _rate, pool, run_loso
from edge_agent.bench.loso_report import write_report
from models.metrics import wilson_interval
from models.student.derived import build_derived


@pytest.mark.parametrize("k, n, lo, hi", [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634),
                                          (97, 100, 0.9154, 0.9897)])
def test_wilson_interval_matches_the_textbook_values(k, n, lo, hi):
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)


def test_a_rate_with_nothing_behind_it_is_not_a_number():
    assert _rate(0, 0) == {"value": None, "k": 0, "n": 0, "ci95": None}
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def _row(scene, frames, escalated, person, vehicle):
    def label(k, n, pred):
        return {"presence_recall": _rate(k, n), "presence_precision": _rate(k, pred),
                "false_presence": _rate(pred - k, frames - n), "reference_frames": n,
                "recall_by_size": {b: _rate(k, n) for b in ("small", "medium", "large")}}
    return {"scene": scene, "frames": frames, "escalated": _rate(escalated, frames),
            "labels": {"person": label(*person), "vehicle": label(*vehicle)}}


def test_pooling_sums_counts_and_the_worst_scene_is_the_lowest_recall_with_positives():
    rows = [_row("a", 80, 8, (78, 80, 80), (0, 0, 3)),
            _row("b", 30, 15, (0, 0, 0), (20, 25, 21)),
            _row("c", 10, 1, (3, 6, 3), (0, 0, 0))]
    pooled = pool(rows)
    assert pooled["labels"]["person"]["presence_recall"]["k"] == 81
    assert pooled["labels"]["person"]["presence_recall"]["n"] == 86
    assert pooled["worst"]["person"]["scene"] == "c" and pooled["worst"]["person"]["value"] == 0.5
    assert pooled["worst"]["vehicle"]["scene"] == "b"  # "a" and "c" have no vehicles: not 1.000, not considered
    assert pooled["worst"]["escalated"]["scene"] == "b"
    assert pooled["escalated"] == _rate(24, 120)
    # false presence: frames without the label where it was reported (a: 3 of 80, c: none of 10)
    assert pooled["labels"]["vehicle"]["false_presence"]["k"] == 4


@pytest.mark.slow
def test_a_real_run_judges_each_scene_by_a_student_that_never_saw_it(tmp_path, shared_footage):
    scenes = ["people-detection.gif", "worker-zone-detection.gif", "classroom.gif"]
    seen: list[tuple[str, list[str]]] = []

    def build(fold, others):
        seen.append((fold.name, sorted(s.name for s in others)))
        return build_derived(fold, others)

    result = run_loso(scenes, build, "derived", tmp_path, with_sweep=False)
    assert seen == [(s.rsplit(".", 1)[0], sorted(set(scenes) - {s})) for s in scenes]
    rows = {r["scene"]: r for r in result["scenes"]}
    assert set(rows) == set(scenes)
    people = rows["people-detection.gif"]["labels"]
    # No vehicle in the room: its recall is n/a, never 1.000
    assert people["vehicle"]["reference_frames"] == 0 and people["vehicle"]["presence_recall"]["value"] is None
    for row in rows.values():
        assert row["frames"] > 0 and row["escalated"]["n"] == row["frames"]
        assert set(row["labels"]["person"]["calibration"]) == {"ece", "frames", "confident_misses", "positives"}
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["schema"] == "framesieve.loso/1" and len(saved["scenes"]) == 3
    report = write_report(result, tmp_path).read_text()
    assert "n/a" in report and "| **pooled** |" in report and (tmp_path / "loso.png").stat().st_size > 10_000


def _swept(scene, frames, person_n, vehicle_n, points):
    row = _row(scene, frames, 0, (person_n, person_n, person_n), (vehicle_n, vehicle_n, vehicle_n))
    row["sweep"] = [{"accept": a, "reject": r, "escalation_fraction": e, "person_presence_recall": pr,
                     "vehicle_presence_recall": vr} for a, r, e, pr, vr in points]
    return row


def test_bands_are_chosen_on_the_other_scenes_and_judged_on_the_left_out_one():
    from edge_agent.bench.loso_bands import choose, judged_out_of_sample

    # (accept, reject, escalated, person recall, vehicle recall)
    a = _swept("a", 10, 10, 0, [(0.5, 0.2, 0.1, 1.0, 1.0), (0.5, 0.3, 0.0, 0.96, 1.0)])
    b = _swept("b", 10, 0, 10, [(0.5, 0.2, 0.2, 1.0, 0.95), (0.5, 0.3, 0.1, 1.0, 0.92)])
    c = _swept("c", 20, 20, 0, [(0.5, 0.2, 0.3, 1.0, 1.0), (0.5, 0.3, 0.05, 0.80, 1.0)])
    # On all three, 0.5/0.3 fails c's person floor: 0.5/0.2 ships.
    assert choose([a, b, c]) == {"accept": 0.5, "reject": 0.2, "escalation_fraction": 0.225}
    judged = judged_out_of_sample([a, b, c])
    folds = {f["scene"]: f for f in judged["folds"]}
    # Leaving c out, a and b allow the cheaper 0.5/0.3, and c is judged at it: its person recall falls to 0.8.
    assert (folds["c"]["bands"]["accept"], folds["c"]["bands"]["reject"]) == (0.5, 0.3)
    assert folds["c"]["person"]["presence_recall"] == 0.80
    assert folds["b"]["person"]["presence_recall"] is None  # no person in b: n/a, not 1.0
    assert judged["pooled"]["person"]["worst"]["scene"] == "c"
    assert judged["pooled"]["person"]["n"] == 30


@pytest.mark.slow
def test_int8_self_is_calibrated_on_the_scenes_first_frames_and_judged_on_the_later_ones(tmp_path, shared_footage):
    scenes = ["worker-zone-detection.gif", "classroom.gif"]
    with pytest.raises(ValueError, match="give judge_after"):
        run_loso(scenes, lambda fold, others: build_derived(fold, others), "derived", tmp_path, self_int8=True)
    whole = run_loso(scenes, lambda fold, others: build_derived(fold, others), "derived", tmp_path / "fp32",
                     with_sweep=False, judge=["worker-zone-detection.gif"])["scenes"][0]
    result = run_loso(scenes, lambda fold, others: build_derived(fold, others), "derived", tmp_path / "int8",
                      with_sweep=False, judge=["worker-zone-detection.gif"], judge_after=1 / 3, self_int8=True,
                      keep_students=True)
    (row,) = result["scenes"]
    assert 1.0 < row["judged_from_s"] < 2.0 and 0 < row["frames"] < whole["frames"]  # only the later frames
    check = row["int8_check"]
    assert check["calibration_frames"] + check["frames"] <= 64 and check["frames"] >= 1
    assert row["precision_judged"] == ("fp32" if check["gate_failed"] else "int8")
    int8 = json.loads((tmp_path / "int8" / "students" / "worker-zone-detection" / "int8-self" / "manifest.json")
                      .read_text())
    assert int8["precision"] == "int8" and int8["training"]["int8_calibration"]["scene"] == "worker-zone-detection.gif"
    assert int8["training"]["int8_calibration"]["frames"] == check["calibration_frames"]
