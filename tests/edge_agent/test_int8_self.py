"""`student.precision: auto`: the agent quantises its student on its own camera's frames (real vtest.avi frames, the
real derived student, real onnxruntime quantisation in a child process), checks INT8 against fp32 and swaps only
on a pass; the kept INT8 file is reused, judged again at each start, and refused when tampered."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge_agent.app import Agent
from edge_agent.bench.runner import ReplaySource
from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.metrics import render
from edge_agent.pipeline.opener import open_source
from models.manifest import load_manifest
from models.student.derived import ensure_derived_student

FRAMES = 12  # kept for calibration (every 4th of them held out to check INT8 on)


@pytest.fixture(scope="module")
def vtest_samples(vtest_path):
    """vtest.avi at 1 fps: 80 real frames."""
    source = open_source("plaza", str(vtest_path), 1.0)
    frames = []
    while (frame := source.read_sampled()) is not None:
        frames.append(frame)
    source.close()
    return frames


def config(tmp: Path, cache: Path, precision: str = "auto", gate: dict | None = None) -> AgentConfig:
    return AgentConfig.model_validate({
        "site": "t", "student": {"manifest": str(ensure_derived_student()), "precision": precision,
                                 "calibration": {"frames": FRAMES, "every_s": 2.0, "cache_dir": str(cache)},
                                 "gate": gate or {}},
        "cameras": [{"id": "plaza", "source": "injected", "onboarding": {"enabled": False},
                     "cascade": {"audit_fraction": 0.0}}],
        "escalation": {"transport": "none"}, "output": {"events_db": str(tmp / "events.sqlite"), "log_frames": False},
        "fleet": {"models_dir": str(tmp / "models"), "probation_batches": 2}})


def drive(agent: Agent, frames, until=None, wait_s: float = 120.0) -> list:
    """Frames through the agent one batch each; at `until`'s first frame index, wait for the quantiser to finish."""
    events = []
    for frame in frames:
        events += agent.process([frame])
        q = agent.quantizer
        if until is not None and frame.frame_index >= until and q.state in ("collecting", "quantising"):
            deadline = time.monotonic() + wait_s
            while q.state == "quantising" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert q.state != "quantising", f"quantising took over {wait_s} s"
    return events


def presence(event) -> set[str]:
    return set(event.detections.labels.tolist())


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, vtest_samples):
    """An agent run that self-calibrated and swapped; its events, summary and cache folder."""
    tmp = tmp_path_factory.mktemp("int8")
    cache = tmp / "cache"
    agent = Agent(config(tmp, cache), sources=[ReplaySource("plaza", vtest_samples, 1.0)])
    try:
        assert agent.student.detector.manifest.precision == "fp32"  # it starts on fp32
        events = drive(agent, vtest_samples, until=vtest_samples[2 * FRAMES].frame_index)
        summary = agent.summary()
        detector = agent.student.detector
    finally:
        agent.close()
    return events, summary, detector, cache


def test_self_calibrates_swaps_and_agrees_with_fp32(calibrated, tmp_path, vtest_samples):
    events, summary, detector, cache = calibrated
    state = summary["student_precision"]
    assert state["state"] == "int8" and state["running"] == "int8", state
    assert detector.manifest.precision == "int8" and detector.manifest.version.endswith("+int8")
    assert detector.manifest.training["quantized_from"]["sha256"] == load_manifest(ensure_derived_student()).sha256
    assert state["check"]["calibration_frames"] == FRAMES - FRAMES // 4 and state["check"]["frames"] == FRAMES // 4
    assert state["cpu_s"] > 0  # the child's CPU, counted
    assert "framesieve_student_int8 1" in render(summary)
    # the swap: every frame after the calibration and probation decided by INT8; against an fp32 agent on the
    # same frames, the presence it reports agrees within the gate
    fp32 = Agent(config(tmp_path, tmp_path / "unused", "fp32"), sources=[ReplaySource("plaza", vtest_samples, 1.0)])
    try:
        assert fp32.quantizer is None
        reference = drive(fp32, vtest_samples)
    finally:
        fp32.close()
    swapped_by = vtest_samples[2 * FRAMES + 4].frame_index  # calibrated, quantised, probation passed
    later = [(a, b) for a, b in zip(events, reference, strict=True) if a.frame_index > swapped_by]
    assert len(later) >= 40
    agree = sum(presence(a) == presence(b) for a, b in later) / len(later)
    assert agree >= 0.95, f"INT8 agreed with fp32 on {agree:.0%} of {len(later)} frames"


def test_restart_reuses_the_kept_int8(calibrated, tmp_path, vtest_samples):
    _, _, swapped, cache = calibrated
    agent = Agent(config(tmp_path, cache), sources=[ReplaySource("plaza", vtest_samples, 1.0)])
    try:
        assert agent.student.detector.manifest.precision == "int8"  # at once, no calibration
        assert agent.student.detector.manifest.sha256 == swapped.manifest.sha256
        assert agent.summary()["student_precision"]["cached"] is True
    finally:
        agent.close()


def test_gate_failure_keeps_fp32_and_says_why(calibrated, tmp_path, vtest_samples, caplog):
    *_, cache = calibrated
    strict = {"min_agreement": 1.0, "max_score_diff_mean": 0.0}  # INT8's scores always move a little
    agent = Agent(config(tmp_path, cache, gate=strict), sources=[ReplaySource("plaza", vtest_samples, 1.0)])
    try:
        drive(agent, vtest_samples[:5])
        summary = agent.summary()
        assert agent.student.detector.manifest.precision == "fp32"
    finally:
        agent.close()
    state = summary["student_precision"]
    assert state["state"] == state["running"] == "fp32"
    assert "failed the gate" in state["reason"] and "scores differ" in state["reason"]
    assert "stays fp32" in caplog.text
    assert 'framesieve_student_int8_state{state="fp32"} 1' in render(summary)


def test_precision_int8_swaps_even_when_the_gate_fails(calibrated, tmp_path, vtest_samples):
    *_, cache = calibrated
    agent = Agent(config(tmp_path, cache, "int8", gate={"max_score_diff_mean": 0.0}),
                  sources=[ReplaySource("plaza", vtest_samples, 1.0)])
    try:
        assert agent.student.detector.manifest.precision == "int8"
        assert "swapped anyway" in agent.summary()["student_precision"]["reason"]
    finally:
        agent.close()


def test_tampered_int8_is_refused_and_rebuilt(calibrated, tmp_path, vtest_samples, caplog):
    *_, cache = calibrated
    (kept,) = list(cache.glob("*/student-int8.onnx"))
    own = tmp_path / "cache"
    (own / kept.parent.name).mkdir(parents=True)
    for f in kept.parent.iterdir():
        (own / kept.parent.name / f.name).write_bytes(f.read_bytes())
    target = own / kept.parent.name / "student-int8.onnx"
    target.write_bytes(target.read_bytes()[:-64] + bytes(64))  # damaged on disk
    agent = Agent(config(tmp_path, own), sources=[ReplaySource("plaza", vtest_samples, 1.0)])
    try:
        assert agent.student.detector.manifest.precision == "fp32"  # the damaged file never runs
        assert "is refused" in caplog.text and "sha256" in caplog.text
        drive(agent, vtest_samples[:2 * FRAMES + 4], until=vtest_samples[2 * FRAMES].frame_index)
        assert agent.student.detector.manifest.precision == "int8"  # made again from new frames, and swapped
    finally:
        agent.close()
    assert load_manifest(own / kept.parent.name / "manifest.json").precision == "int8"  # rebuilt, verifies


@pytest.mark.parametrize("value", ["int4", "FP32", "", 8])
def test_bad_precision_is_a_clear_config_error(value):
    text = f"student:\n  precision: {value!r}\ncameras: [{{id: a, source: x.avi}}]\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "agent.yaml")
    message = str(err.value)
    assert "student.precision (line 2)" in message and "'auto', 'fp32' or 'int8'" in message


def test_a_camera_with_its_own_student_neither_offers_frames_nor_changes_student(tmp_path, vtest_samples):
    from dataclasses import replace

    from models.paths import CENTERNET_STUDENT_MANIFEST

    raw = config(tmp_path, tmp_path / "fresh").model_dump()
    raw["cameras"].append({**raw["cameras"][0], "id": "door", "student": str(CENTERNET_STUDENT_MANIFEST)})
    cfg = AgentConfig.model_validate(raw)
    door = [replace(f, camera="door") for f in vtest_samples]
    agent = Agent(cfg, sources=[ReplaySource("plaza", vtest_samples, 1.0), ReplaySource("door", door, 1.0)])
    try:
        for plaza, other in zip(vtest_samples[:6], door[:6], strict=True):
            agent.process([plaza, other])
        assert agent.quantizer.summary()["frames_kept"] == 3  # plaza's at 0, 2 and 4 s; none of door's
        own = agent.cameras["door"].own_student
        assert own is not None and own.detector.manifest.sha256 == load_manifest(CENTERNET_STUDENT_MANIFEST).sha256
    finally:
        agent.close()
