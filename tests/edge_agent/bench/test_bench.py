"""Bench arithmetic on constructed cases with known answers, and one short bench run on real footage."""

import json
import struct

import numpy as np
import pytest

from contracts.detections import Detections
from edge_agent.bench.metrics import clip_summary
from edge_agent.bench.runner import Baseline, Hybrid
from edge_agent.bench.sweep import pick_operating_point

PERSON = {"label": "person", "score": 0.9, "box": [10, 10, 50, 100]}


def _dets(*boxes, label="person"):
    if not boxes:
        return Detections.empty()
    return Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.9), np.array([label] * len(boxes)))


def _line(i, decided_by, escalated, dets):
    return {"camera": "c", "frame_index": i, "pts_s": float(i), "decided_by": decided_by, "escalated": escalated,
            "detections": dets}


def test_clip_summary_known_answers():
    # 4 frames at 1 fps. Baseline: a person in frames 0, 1, 2; nobody in 3.
    ref = {0: _dets([10, 10, 50, 100]), 1: _dets([10, 10, 50, 100]), 2: _dets([10, 10, 50, 100]), 3: _dets()}
    baseline = Baseline(frames={}, detections=ref, cpu_s=0.4, fps=1.0)
    lines = [
        _line(0, "cloud", True, [PERSON]),                       # right, escalated
        _line(1, "edge", False, [PERSON]),                       # right
        _line(2, "carried", False, []),                          # carried and wrong: person missed
        _line(3, "edge", False, [{**PERSON, "box": [200, 200, 240, 290]}]),  # false presence
    ]
    counters = {"motion_skipped": 1, "edge_decided": 2, "escalated": 1, "audit": 0, "budget_refused": 0,
                "cloud_failed": 0, "bytes_sent": 36_000, "message_units": 8}
    s = clip_summary(Hybrid(lines, counters, cpu_s=0.04, student_calls=3), baseline, held_from_s=2.0)
    assert s["escalation_fraction"] == 0.25
    p = s["labels"]["person"]
    assert (p["presence_recall"], p["presence_precision"]) == (pytest.approx(2 / 3, abs=1e-4),) * 2
    assert p["box_f1_iou50"] == pytest.approx(2 * 2 / (3 + 3), abs=1e-4)
    assert s["carried_wrong"] == {"person": 1, "vehicle": 0}
    assert s["edge_cpu_s_per_frame"] == 0.01 and s["baseline_cpu_s_per_frame"] == 0.1 and s["cpu_ratio"] == 0.1
    assert s["cameras_per_core"] == 100.0
    assert s["bytes_per_camera_hour"] == 36_000 * 3600 / 4
    assert s["message_bytes_mean"] == 36_000.0
    held = s["held_back"]
    assert held["frames"] == 2 and held["escalation_fraction"] == 0.0
    assert held["labels"]["person"]["presence_recall"] == 0.0  # the one present frame (2) was missed


def test_operating_point_is_the_cheapest_meeting_the_target():
    points = [
        {"accept": 0.9, "reject": 0.1, "escalation_fraction": 0.4, "person_presence_recall": 1.0,
         "person_presence_precision": 1.0},
        {"accept": 0.6, "reject": 0.2, "escalation_fraction": 0.1, "person_presence_recall": 0.98,
         "person_presence_precision": 0.9},
        {"accept": 0.5, "reject": 0.3, "escalation_fraction": 0.05, "person_presence_recall": 0.9,
         "person_presence_precision": 0.95},
    ]
    assert pick_operating_point(points, 0.97)["accept"] == 0.6
    assert pick_operating_point(points, 0.99)["accept"] == 0.9
    assert pick_operating_point(points, 1.01) is None


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24])[0] > 100


@pytest.mark.slow
def test_short_bench_run_writes_a_report_that_parses(tmp_path, teacher_manifest, vtest_path):
    from edge_agent.cli import main

    out = tmp_path / "bench"
    assert main(["bench", str(vtest_path), "--fps", "0.25", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "framesieve.bench/1"
    clip = summary["clips"]["vtest.avi"]
    assert clip["sampled_frames"] == 20
    for key in ("escalation_fraction", "edge_cpu_s_per_frame", "baseline_cpu_s_per_frame", "cpu_ratio",
                "bytes_per_camera_hour", "cameras_per_core", "labels", "held_back", "sweep"):
        assert key in clip
    assert len(clip["sweep"]) >= 10 and summary["total"]["sampled_frames"] == 20
    lines = [json.loads(x) for x in (out / "vtest.jsonl").read_text().splitlines()]
    assert len(lines) == 20 and {"camera", "frame_index", "pts_s", "decided_by", "escalated", "detections"} == set(
        lines[0])
    report = (out / "report.md").read_text()
    assert "| vtest.avi | 20 |" in report and "## Targets" in report
    for png in ("timeline.png", "tradeoff.png"):
        assert _is_png(out / png)


@pytest.mark.slow
def test_calibrate_writes_a_valid_config_with_the_chosen_thresholds(tmp_path, teacher_manifest, vtest_path):
    from pathlib import Path

    from edge_agent.bench.calibrate import calibrate
    from edge_agent.config import ConfigError, load_config

    example = Path(__file__).resolve().parents[3] / "config" / "agent.example.yaml"
    config = tmp_path / "agent.yaml"
    config.write_text(example.read_text())
    # vtest has a person in every frame: "always yes" would meet any recall target, so calibrate refuses
    with pytest.raises(ConfigError, match="person: 20 of 20 frames have it in the reference, 0 do not"):
        calibrate(vtest_path, config, 0.9, fps=0.25)
    assert config.read_text() == example.read_text()  # untouched
    # the write path, as a demonstration on a clip too one-sided to calibrate on (the evidence gate lowered)
    result = calibrate(vtest_path, config, 0.9, fps=0.25, min_evidence=(10, 0))
    written = load_config(config)  # validates
    band = written.cameras[0].cascade.labels["person"]
    assert (band.accept, band.reject) == (result["point"]["accept"], result["point"]["reject"])
    assert (tmp_path / "agent.yaml.bak").read_text() == example.read_text()
    with pytest.raises(ConfigError, match="no cascade thresholds reach"):
        calibrate(vtest_path, config, 1.5, fps=0.25, out_path=tmp_path / "never.yaml", min_evidence=(10, 0))
    assert not (tmp_path / "never.yaml").exists()


@pytest.mark.slow
def test_adapt_bench_trains_only_on_escalated_adaptation_frames(tmp_path, teacher_manifest, vtest_path):
    from contracts.training import TrainingRecord
    from edge_agent.cli import main

    out = tmp_path / "bench"
    assert main(["bench", str(vtest_path), "--fps", "0.5", "--adapt-fraction", "0.5", "--adapt-epochs", "2",
                 "--no-sweep", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    a = summary["clips"]["vtest.avi"]["adaptation"]
    cut = a["adapt_until_s"]
    assert a["adapt"]["frames"] == 20 and a["eval"]["generic"]["frames"] == a["eval"]["specialized"]["frames"] == 20
    assert a["adapt"]["records_kept"] == a["adapt"]["escalated"] > 0  # the teacher's answers to escalations only
    records = [TrainingRecord.from_bytes(p.read_bytes())
               for p in (out / "adapt" / "training-records" / "vtest").glob("*.json")]
    assert len(records) == a["adapt"]["records_kept"] and max(r.pts_s for r in records) < cut
    assert a["deployed"] == ("specialized" if a["decision"]["promote"] else "generic") and a["decision"]["why"]
    assert summary["warmup"]["steady_escalation_fraction"] == a["eval"][a["deployed"]]["escalation_fraction"]
    phases = [json.loads(x) for x in (out / "adapt" / "vtest.jsonl").read_text().splitlines()]
    assert [p["phase"] for p in phases] == ["adapt"] * 20 + ["eval"] * 20
    assert all((p["pts_s"] < cut) == (p["phase"] == "adapt") for p in phases)
    report = (out / "report.md").read_text()
    assert "## Per-camera specialization" in report and "(deployed)" in report
    assert _is_png(out / "specialization.png") and "specialization.png" in report
    marks = a["timeline"]
    assert len(marks) == 60 and {(m["phase"], m["student"]) for m in marks} == {
        ("adapt", "generic"), ("eval", "generic"), ("eval", "specialized")}


@pytest.mark.slow
def test_new_camera_bench_runs_the_production_path_from_a_cold_start(tmp_path, teacher_manifest, vtest_path):
    from edge_agent.cli import main

    out = tmp_path / "bench"
    # 20 frames cannot satisfy the default evidence gate: set for a demonstration so the loop runs (2 epochs)
    demo = tmp_path / "demo.yaml"
    demo.write_text("specialization: {retrain_after_records: 8, min_records: 8, epochs: 2, min_present: 1, "
                    "min_absent: 0, min_span_s: 0, confidence: 0.6, guard_detect_s: 36000, "
                    "guard_max_audit_fraction: 1.0}\n")
    for _ in range(2):  # a second run starts cold again: nothing carried over from the first
        assert main(["bench", str(vtest_path), "--fps", "0.25", "--no-sweep", "--new-camera", "--new-camera-config",
                     str(demo), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    nc = summary["clips"]["vtest.avi"]["new_camera"]
    lines = [json.loads(x) for x in (out / "new-camera" / "vtest" / "vtest.jsonl").read_text().splitlines()]
    assert len(lines) == nc["frames"] == 20 and {p["phase"] for p in lines} <= {"onboarding", "specialized"}
    assert all({"camera", "frame_index", "pts_s", "decided_by", "escalated", "detections"} <= set(p) for p in lines)
    assert lines[0]["phase"] == "onboarding" and all(p["escalated"] for p in lines if p["phase"] == "onboarding"
                                                      and p["decided_by"] != "carried")
    phases = nc["phases"]
    assert phases["onboarding"]["frames"] + phases["specialized"]["frames"] == nc["overall"]["frames"] == 20
    assert nc["runs"] and nc["runs"][0]["outcome"] in ("promoted", "kept") and nc["records"] >= 8
    assert (nc["promoted_at_s"] is not None) == (phases["specialized"]["frames"] > 0)
    person = nc["overall"]["labels"]["person"]
    assert person["frames_present"] == 20 and person["presence_recall"] is not None  # people in every vtest frame
    assert summary["warmup"]["escalation_fraction"] == phases["onboarding"]["escalation_fraction"]
    report = (out / "report.md").read_text()
    assert "## New camera" in report and "**whole run**" in report and "onboarding a new camera:" in report
    assert _is_png(out / "specialization.png")


def test_a_burst_of_load_on_one_frame_does_not_move_the_baseline(monkeypatch, vtest_path):
    """The teacher's CPU is counted at its median per frame: one frame made 20x slower (another process
    thrashing the cache, say) leaves the baseline, and so the cost priced from it, where it was."""
    import time as clock

    from contracts.detections import Detections
    from edge_agent.bench import runner

    class Teacher:
        def __init__(self, slow_call: int | None):
            self.calls, self.slow_call = 0, slow_call

        def detect(self, images):
            burn = 0.1 if self.calls == self.slow_call else 0.005
            self.calls += 1
            end = clock.thread_time() + burn
            while clock.thread_time() < end:
                pass
            return [Detections.empty() for _ in images]

    def baseline(slow_call):
        monkeypatch.setattr(runner, "load_detector", lambda *_a, **_k: Teacher(slow_call))
        return runner.run_baseline(vtest_path, fps=0.5, keep_frames=False)

    calm, burst = baseline(None), baseline(3)
    assert len(calm.detections) == len(burst.detections) == 40
    # 40 frames at 5 ms: 0.2 s; the slow frame burned 0.095 s more, which counted as it came would be 0.295 s
    assert abs(calm.teacher_cpu_s - 0.2) < 0.02 and abs(burst.teacher_cpu_s - 0.2) < 0.02, burst.teacher_cpu_s
    assert burst.cpu_s - burst.teacher_cpu_s > 0  # decoding is in cpu_s too, counted as it came
