"""A model file that matches its manifest's sha256 but is not a working model: refused at start by a real
inference on a test frame (named error, exit 2); one that breaks at run time still gets every frame its
event row (decided at the edge, flagged student_failed), and the other cameras are not touched."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.students.guard import Limits
from models.exceptions import ModelError
from models.runtime import load_detector
from tests.edge_agent.aws_side import PacedSource


def _not_a_student(manifest: Path) -> Path:
    """Replace the student's ONNX with a graph that loads (same input) but is no detector, and give the
    manifest its sha256: what a wrong file shipped under a correct-looking manifest is."""
    meta = json.loads(manifest.read_text())
    graph = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["out"], to=TensorProto.FLOAT)], "not-a-student",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", 192, 320, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 192, 320, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx_path = manifest.parent / meta["file"]
    onnx_path.write_bytes(model.SerializeToString())
    meta["sha256"] = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(meta))
    return manifest


def _config(tmp_path, **extra) -> AgentConfig:
    return AgentConfig.model_validate({
        "cameras": [{"id": c, "source": "injected", "onboarding": {"enabled": False}} for c in ("a", "b")],
        "escalation": {"transport": "none"}, "output": {"events_db": str(tmp_path / "events.sqlite")},
        "fleet": {"models_dir": str(tmp_path / "models")}, **extra})


def test_a_student_that_matches_its_sha256_but_does_not_run_is_refused_at_start(student_copy, tmp_path):
    bad = _not_a_student(student_copy)
    with pytest.raises(ModelError) as info:
        Agent(_config(tmp_path, student=str(bad)), sources=[PacedSource(c, [], 0) for c in ("a", "b")])
    assert "failed its self-test" in str(info.value) and str(bad.parent) in str(info.value)


@pytest.mark.slow
def test_the_run_command_exits_2_naming_the_model(student_copy, tmp_path, vtest_path):
    bad = _not_a_student(student_copy)
    path = tmp_path / "agent.yaml"
    path.write_text(f"student: '{bad}'\ncameras:\n  - {{id: a, source: '{vtest_path}'}}\n"
                    f"escalation: {{transport: none}}\noutput: {{events_db: '{tmp_path / 'e.sqlite'}'}}\n")
    result = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "failed its self-test" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_a_student_that_breaks_at_run_time_still_writes_every_event(student_copy, vtest_frames, tmp_path):
    agent = Agent(_config(tmp_path), sources=[PacedSource(c, vtest_frames, 12) for c in ("a", "b")])
    # Camera b's own student breaks after the start (a file damaged on disk): no self-test stands in the way.
    agent.cameras["b"].use_student(load_detector(_not_a_student(student_copy)), Limits())
    summary = agent.run()
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        rows = db.execute("SELECT camera, frame_index, decided_by, fallback FROM events ORDER BY id").fetchall()
    a = [r for r in rows if r[0] == "a"]
    b = [r for r in rows if r[0] == "b"]
    assert [r[1] for r in a] == [r[1] for r in b] == list(range(12))  # every frame of both cameras
    assert all(r[3] is None for r in a)  # the agent's student ran for camera a as always
    looked = [r for r in b if r[2] != "carried"]
    assert looked and all((r[2], r[3]) == ("edge", "student_failed") for r in looked)
    assert summary["cameras"]["b"]["student_failed"] == len(looked) and summary["cameras"]["a"]["student_failed"] == 0
