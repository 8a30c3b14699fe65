"""The decode mode leaves accuracy as it was, and gateway-capacity measures real streams end to end (ffmpeg
encodes them from vtest, PyAV decodes them, the agent's pipeline and the teacher run on what was decoded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contracts.wire import EscalationRequest, Verdict
from edge_agent.bench.metrics import clip_summary
from edge_agent.bench.runner import Baseline, OracleTransport, ReplaySource, agent_config, run_hybrid
from edge_agent.escalation.base import Transport
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig
from models.student.data import resolve_clip

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
    reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")]


@pytest.fixture(scope="module")
def teacher():
    from models.runtime import load_detector
    from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

    return load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)


def _presence(kind: str, mode: str, teacher, tmp_path: Path) -> tuple[dict, float]:
    """The pipeline's presence figures against the teacher (run on the frames of decoding everything), for
    the frames this decode mode gives; and the mode's largest sampling timestamp difference."""
    from edge_agent.bench.streams import make_stream
    from models.student.derived import ensure_derived_student

    path = make_stream(kind, seconds=8)
    ref = list(AVFileSource("ref", path, 1.0, DecodeConfig(mode="all")))
    source = AVFileSource("cam", path, 1.0, DecodeConfig(mode=mode))  # type: ignore[arg-type]
    frames = list(source)
    assert len(frames) == len(ref) == 8
    # The teacher's answer for a slot is that slot's frame of decoding everything; a mode's frame is
    # judged against it, so a later frame shows as a difference.
    by_slot = {f.frame_index: teacher.detect([r.image])[0] for f, r in zip(frames, ref, strict=True)}
    baseline = Baseline({f.frame_index: f for f in frames}, by_slot, 1.0, 1.0)
    config = agent_config("cam", path, 1.0, "http://127.0.0.1:9/unused").model_copy(
        update={"student": str(ensure_derived_student())})
    hybrid = run_hybrid(config, tmp_path, f"{kind}-{mode}", transport=OracleTransport(baseline),
                        sources=[ReplaySource("cam", frames, 1.0)])
    labels = clip_summary(hybrid, baseline, None)["labels"]
    figures = {lbl: (v["presence_recall"], v["presence_precision"]) for lbl, v in labels.items()}
    return figures, source.stats()["timestamp_error_max_s"]  # type: ignore[return-value]


def test_decode_mode_leaves_the_presence_figures_unchanged(teacher, tmp_path):
    every, _ = _presence("720p15-gop1", "all", teacher, tmp_path)
    keyframes, error = _presence("720p15-gop1", "auto", teacher, tmp_path)
    assert error == 0.0 and keyframes == every  # keyframes on the sampling grid: the very same figures
    every4, _ = _presence("720p15-gop4", "all", teacher, tmp_path)
    reference, error4 = _presence("720p15-gop4", "auto", teacher, tmp_path)
    assert 0 < error4 <= 2 / 15 + 1e-6  # a skipped B-frame's slot takes the next decoded frame
    for label, (recall, precision) in every4.items():  # within that timestamp difference: one frame of 8
        r2, p2 = reference[label]
        assert recall is None or r2 is None or abs(recall - r2) <= 1 / 8 + 1e-9, (label, every4, reference)
        assert precision is None or p2 is None or abs(precision - p2) <= 1 / 8 + 1e-9, (label, every4, reference)


def test_gateway_capacity_measures_both_sides_and_feeds_the_cost_model(tmp_path, capsys):
    from edge_agent.bench.capacity import cameras_per_core, format_table, run_capacity
    from edge_agent.cli import main

    summary = run_capacity(["sub-360p15-gop1"], seconds=6, modes=("all", "auto"), live_s=3, out=tmp_path, cameras=2,
                           repeats=1, paced_s=0)
    row = summary["kinds"]["sub-360p15-gop1"]
    every, auto = row["modes"]
    assert auto["decoded_as"] == "keyframes" and every["decoded_as"] == "all"
    assert auto["decode_ms_per_sample"] < every["decode_ms_per_sample"]  # 1 frame of 15 decoded, not 15
    assert auto["teacher_presence_agreement"] == 1.0
    assert 0 < auto["edge_baseline_cpu"] < 1 and row["memory_mb_per_camera"] > 0
    assert row["live"]["samples"] >= 2 and row["live"]["mode"] == "keyframes"
    assert "sub-360p15-gop1 | auto (keyframes)" in format_table(summary)
    # The student measured is named, and the hybrid is judged against the teacher: vtest's people are found.
    # By default, what the agent ships: its student after its own INT8 calibration on this stream's frames
    # (the agent's quantiser and gate), with the calibration's one-off CPU.
    calibration = row["student_calibration"]
    assert summary["student"]["asked"] == "default" and calibration["calibration_cpu_s"] > 0
    assert calibration["check"]["calibration_frames"] == 6 and calibration["check"]["frames"] == 2
    precision = json.loads(Path(row["student"]).read_text())["precision"]
    assert precision == calibration["precision"] and (precision == "int8") == (calibration["state"] == "swapping")
    assert row["presence"]["person"]["recall"] == 1.0 and row["student_crops_per_sample"] >= 1
    with pytest.raises(ValueError, match="--student int4: no such manifest"):
        run_capacity(["sub-360p15-gop1"], seconds=6, modes=("auto",), live_s=0, out=tmp_path, student="int4")
    streams = tmp_path / "streams.json"
    assert json.loads(streams.read_text())["kinds"]["sub-360p15-gop1"]["best"] == row["best"]
    assert cameras_per_core(streams, "sub-360p15-gop1") == row["gateway"]["many"]["cameras_per_core"]
    with pytest.raises(ValueError, match="no stream kind '1080p25-gop4'.*gateway-capacity --kinds"):
        cameras_per_core(streams, "1080p25-gop4")
    assert main(["cost", "--bench", str(tmp_path / "absent.json"), "--stream-kind", "nope",
                 "--gateway-streams", str(streams)]) == 2
    assert "no stream kind 'nope'" in capsys.readouterr().err


class _Nothing(Transport):
    """The cloud sees nothing in any crop."""

    name = "nothing"

    def escalate(self, request: EscalationRequest) -> Verdict:
        return Verdict(request.message_id, request.camera, request.frame_index, "nothing", ())


def test_the_agent_reports_how_each_camera_is_decoded(tmp_path):
    from edge_agent.app import Agent
    from edge_agent.bench.streams import make_stream
    from edge_agent.config import AgentConfig
    from models.student.derived import ensure_derived_student

    path = make_stream("720p15-gop4", seconds=8)
    config = AgentConfig.model_validate({
        "site": "t", "student": str(ensure_derived_student()),
        "cameras": [{"id": "door", "source": str(path), "decode": {"mode": "keyframes"},
                     "onboarding": {"enabled": False}}],
        "escalation": {"transport": "url", "url": "http://127.0.0.1:9/unused"}})
    summary = Agent(config, transport=_Nothing(), jsonl=tmp_path / "d.jsonl", events_db=tmp_path / "d.sqlite").run()
    door = summary["decode"]["door"]
    assert door["decode_mode"] == "reference" and "refused" in door["decode_reason"]  # GOP 4 s > 1 s interval
    assert door["gop_s"] == pytest.approx(4.0, abs=0.01) and door["hwaccel"] in ("none", "vaapi", "qsv")
    assert summary["total"]["sampled"] == 8
