"""gateway-capacity with many cameras: each camera its own decoder on a real stream made from vtest, all in one
agent whose loop batches their regions into one student call (real onnxruntime), the teacher answering."""

from __future__ import annotations

import json
import shutil

import pytest

from models.student.data import resolve_clip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
                                reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")


def test_n_cameras_give_n_times_the_events_in_batches_and_feed_the_cost_model(tmp_path, capsys):
    from edge_agent.bench.capacity import cameras_per_core, format_table, run_capacity
    from edge_agent.cli import main

    summary = run_capacity(["sub-360p15-gop1"], seconds=6, modes=("auto",), live_s=0, out=tmp_path,
                           student="fp32", cameras=4, repeats=1, paced_s=2.5)
    g = summary["kinds"]["sub-360p15-gop1"]["gateway"]
    one, many = g["one"], g["many"]
    assert one["events"] == 6 and many["events"] == 4 * 6  # every camera's every sample has its event
    assert [r["cameras"] for r in g["runs"]] == [1, 4]  # alternated
    assert all(set(r["samples_per_camera"].values()) == {6} for r in g["runs"])
    assert many["decoded_as"] == ["keyframes"]
    # One camera: each sample alone (its regions only); four file cameras: their regions share student calls.
    assert one["mean_student_batch"] < 2 < many["mean_student_batch"]
    assert [r["max_batch"] for r in g["runs"]] == [1, 8]
    assert many["memory_mb_per_camera"] > 0 and many["edge_ms_per_camera_sample"] > 0
    paced = g["paced"]
    assert paced["paced"] and paced["events"] >= 4 and paced["mean_student_batch"] >= 1
    table = format_table(summary)
    assert "| sub-360p15-gop1 | 4 | keyframes | 24 |" in table and "live-paced cameras at random phases" in table
    streams = tmp_path / "streams.json"
    assert cameras_per_core(streams, "sub-360p15-gop1") == many["cameras_per_core"]  # the N-camera figure
    assert main(["cost", "--bench", str(tmp_path / "absent.json"), "--stream-kind", "sub-360p15-gop1",
                 "--gateway-streams", str(streams)]) == 2  # no bench summary: but the figure was read and named
    assert "measured with 4 camera(s) in one agent" in capsys.readouterr().err
    assert json.loads(streams.read_text())["cameras"] == 4
    with pytest.raises(ValueError, match="--cameras 0"):
        run_capacity(["sub-360p15-gop1"], seconds=6, out=tmp_path, cameras=0)
    with pytest.raises(ValueError, match="--paced-cameras -1"):
        run_capacity(["sub-360p15-gop1"], seconds=6, out=tmp_path, paced_cameras=-1)


def test_main_stream_crops_are_cut_and_answered_in_its_pixels_with_the_same_decisions(tmp_path):
    """A 320x180 detect stream whose cameras cut escalation crops from the 1080p main stream: the crops come from
    the main stream, and with the teacher's answers in its pixels the decisions are those of detect-frame crops
    (the escalator maps the cloud's boxes back to the detect stream)."""
    from edge_agent.bench.capacity import _decode
    from edge_agent.bench.gateway import NearestAnswers, run_cameras, scaled_oracle
    from edge_agent.bench.runner import Baseline
    from edge_agent.bench.streams import KINDS, make_stream
    from models.runtime import load_detector
    from models.student.derived import ensure_derived_student
    from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

    sub, main = make_stream("sub-180p15-gop1", 6), make_stream("1080p25-gop1", 6)
    frames, _, _ = _decode(sub, "all", 1.0)
    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    oracle = Baseline({f.frame_index: f for f in frames},
                      NearestAnswers({f.frame_index: teacher.detect([f.image])[0] for f in frames}), 0.0, 1.0)
    student = ensure_derived_student()
    runs = {}
    in_main_pixels = scaled_oracle(oracle, 1920 / 320, 1080 / 180)
    for side, path, answers in (("detect", None, oracle), ("main", main, in_main_pixels)):
        row = run_cameras(sub, 2, 1.0, "auto", student, answers, tmp_path, f"crops-{side}", main=path)
        lines = [json.loads(x) for x in (tmp_path / f"crops-{side}.jsonl").read_text().splitlines()]
        runs[side] = (row, {(ln["camera"], ln["frame_index"]): (ln["escalated"], sorted({d["label"] for d in
                                                                                          ln["detections"]}))
                            for ln in lines})
    assert KINDS["sub-180p15-gop1"].main == "1080p25-gop1"
    detect, full = runs["detect"], runs["main"]
    assert detect[0]["crops_from"] == "detect" and full[0]["crops_from"] == "main"
    escalated = sum(e for e, _ in full[1].values())
    assert escalated > 0 and full[0]["main_stream_crops"] == escalated and full[0]["main_stream_missed"] == 0
    assert full[1] == detect[1]  # same escalations, same labels decided, frame by frame
