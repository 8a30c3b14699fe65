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
