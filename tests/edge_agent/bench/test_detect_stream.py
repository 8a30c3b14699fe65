"""`edge-agent detect-streams` judges each sub-stream's decisions against the teacher on the main stream: real
streams made by ffmpeg from vtest, the whole agent on each, escalations answered by the real teacher from the
JPEG crops it sends."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from contracts.detections import Detections
from edge_agent.bench.detect_stream import Judged, format_detect_streams, paired_differences, summarize
from models.student.data import resolve_clip


def _dets(labels: list[str]) -> Detections:
    n = len(labels)
    return Detections(np.tile(np.array([[10, 10, 50, 90]], np.float32), (n, 1)), np.full(n, 0.9, np.float32),
                      np.array(labels, dtype=object))


def _judged(clip: str, kind: str, said: list[bool], truth: list[bool]) -> Judged:
    j = Judged(clip, kind, "detect")
    for i, (s, t) in enumerate(zip(said, truth, strict=True)):
        j.slots.append(i)
        j.preds.append(_dets(["person"] if s else []))
        j.refs.append(_dets(["person"] if t else []))
        j.escalated += i % 2
    return j


def test_paired_differences_count_each_side_and_which_was_right():
    truth = [True, True, False, False, True]
    a = _judged("s", "a", [True, False, False, True, True], truth)
    b = _judged("s", "b", [True, True, False, False, False], truth)
    d = paired_differences(a, b)["person"]
    assert d == {"frames": 5, "only_first": 2, "only_second": 1, "first_right": 3, "second_right": 4}
    assert paired_differences(a, b)["vehicle"]["only_first"] == 0


def test_summary_pools_scenes_names_the_worst_and_keeps_pairs_within_a_scene():
    truth = [True] * 4 + [False] * 2
    judged = [_judged("one", "big", [True] * 4 + [False] * 2, truth),
              _judged("two", "big", [True, True, False, False, False, False], truth),
              _judged("one", "small", [True] * 4 + [False] * 2, truth),
              # scene two's slots are numbered as scene one's: pairing across scenes would match them wrongly
              _judged("two", "small", [True, True, True, False, False, False], truth)]
    out = summarize(judged, ("big", "small"), ("detect",), 5.0, 60.0, [])
    big = out["groups"]["big/detect"]
    assert big["pooled"]["frames"] == 12
    person = big["pooled"]["labels"]["person"]
    assert person["both_present"] == 6 and person["ref_present"] == 8
    assert big["worst"]["person"]["clip"] == "two" and big["worst"]["person"]["presence_recall"] == 0.5
    pair = out["paired"]["small/detect"]["labels"]["person"]
    assert pair["frames"] == 12 and pair["only_second"] == 1 and pair["only_first"] == 0
    assert pair["second_right"] == pair["first_right"] + 1
    assert big["scenes"][0]["labels"]["vehicle"]["presence_note"] == "no positives"
    text = format_detect_streams(out)
    assert "n/a (no positives)" in text and "two " in text.split("worst scene by recall:")[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
                    reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")
def test_sub_streams_are_judged_against_the_teacher_on_the_main_stream(tmp_path):
    from edge_agent.bench.detect_stream import measure_detect_streams
    from models.runtime import load_detector
    from models.student.derived import ensure_derived_student
    from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    out = measure_detect_streams(["vtest.avi"], ("sub-360p15-gop1", "sub-180p15-gop1"), 4.0, 2.0, teacher,
                                 ensure_derived_student(), tmp_path, ("detect", "main"))
    for key in ("sub-360p15-gop1/detect", "sub-180p15-gop1/detect", "sub-360p15-gop1/main"):
        row = out["groups"][key]["pooled"]
        person = row["labels"]["person"]
        assert row["frames"] == 8  # 4 s at 2 fps, every slot judged
        assert person["ref_present"] == 8  # vtest's plaza has people in every frame the teacher sees
        assert person["presence_recall"] >= 0.75
        # the detect stream's boxes are mapped to the main stream's pixels: they match the teacher's there
        assert person["box_f1_iou50"] > 0.3
        assert row["agent_cpu_ms_per_sample"] > 0
    pair = out["paired"]["sub-180p15-gop1/detect"]["labels"]["person"]
    assert pair["frames"] == 8
    assert (tmp_path / "vtest-sub-180p15-gop1-main.jsonl").is_file()
