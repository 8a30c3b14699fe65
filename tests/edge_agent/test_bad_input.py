"""Bad input to per-camera specialization: a full disk while collecting, corrupt and partial record files,
a trainer killed mid-run. Clear messages, the camera stays onboarding, nothing already collected is lost.
(Records of one label only: tests/models/test_evidence.py.)"""

from __future__ import annotations

import errno
import json
import logging
import sys
from pathlib import Path

import pytest

from contracts.training import TrainingRecord
from contracts.wire import Crop, CropVerdict, DetectionRecord, EscalationRequest, Verdict
from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.escalation.base import Transport
from edge_agent.escalation.collect import CollectingTransport
from edge_agent.specialization.loop import SpecializationLoop
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.student.records import load_records
from tests.edge_agent.aws_side import PacedSource


class Teacher(Transport):
    def escalate(self, request: EscalationRequest) -> Verdict:
        return Verdict(request.message_id, request.camera, request.frame_index, "teacher@1",
                       (CropVerdict(0, (DetectionRecord("person", 0.9, (1.0, 1.0, 9.0, 9.0)),)),))


def _request(k: int) -> EscalationRequest:
    crop = Crop(0, (0.0, 0.0, 16.0, 16.0), b"\xff\xd8jpeg", (16, 16))
    return EscalationRequest(f"m{k}", "door", k, float(k), "onboarding", (crop,), created_s=1000.0 + k)


def test_a_full_disk_while_collecting_keeps_deciding_and_loses_nothing_kept(tmp_path, monkeypatch, caplog):
    collector = CollectingTransport(Teacher(), tmp_path)
    for k in range(3):
        collector.escalate(_request(k))
    real = Path.write_bytes

    def full(self, data):
        if self.suffix == ".part":
            real(self, data[: len(data) // 2])  # half written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with caplog.at_level(logging.WARNING):
        verdict = collector.escalate(_request(3))
    assert verdict.crops and verdict.crops[0].detections  # the decision is the teacher's all the same
    assert "the disk is full: the records kept so far stay" in caplog.text
    assert (collector.written, collector.failed) == (3, 1)
    assert sorted(p.name for p in (tmp_path / "door").iterdir()) == ["m0.json", "m1.json", "m2.json"]  # no .part
    assert [r.message_id for r in load_records(tmp_path, "door")] == ["m0", "m1", "m2"]


def test_corrupt_and_partial_record_files_are_skipped_and_named(tmp_path):
    collector = CollectingTransport(Teacher(), tmp_path)
    for k in range(2):
        collector.escalate(_request(k))
    folder = tmp_path / "door"
    good = (folder / "m0.json").read_bytes()
    (folder / "cut.json").write_bytes(good[: len(good) // 2])  # a partial copy (a sync cut short)
    (folder / "m9.part").write_bytes(good[:10])  # a write the agent never finished: not a record at all
    (folder / "other.json").write_text(json.dumps({"v": 1, "kind": "something else"}))
    skipped: list[str] = []
    records = load_records(tmp_path, "door", skipped)
    assert [r.message_id for r in records] == ["m0", "m1"]
    assert sorted(s.split(":")[0] for s in skipped) == ["cut.json", "other.json"]
    assert TrainingRecord.from_bytes(good).message_id == "m0"  # the good ones are untouched


def test_a_trainer_killed_mid_run_is_recorded_and_the_camera_keeps_onboarding(tmp_path):
    config = AgentConfig.model_validate({
        "student": str(CENTERNET_STUDENT_MANIFEST), "cameras": [{"id": "door", "source": "injected"}],
        "escalation": {"transport": "none"}, "output": {"events_db": str(tmp_path / "e.sqlite")},
        "fleet": {"models_dir": str(tmp_path / "models")},
        "specialization": {"enabled": True, "records_dir": str(tmp_path / "records"), "min_records": 8}})
    agent = Agent(config, sources=[PacedSource("door", [], 0)])
    try:
        killed = SpecializationLoop(agent, config.specialization, command=[
            sys.executable, "-c", "import os, signal; print('epoch 3/60'); os.kill(os.getpid(), signal.SIGKILL)"])
        outcome = killed.run_once("door")
        assert outcome["outcome"] == "failed" and "exited with -9" in outcome["why"] and "epoch 3/60" in outcome["why"]
        assert agent.cameras["door"].onboarding and agent.cameras["door"].own_student is None
        history = json.loads((tmp_path / "models" / "cameras" / "state.json").read_text())["door"]["history"]
        assert history[-1]["outcome"] == "failed"
    finally:
        agent.close()


@pytest.mark.slow
def test_too_little_evidence_keeps_collecting_and_says_so_in_models_status(tmp_path):
    """The real `models specialize` child on 12 records: nothing trained, "collecting" in the loop's history,
    and `edge-agent models status` says what is missing."""
    from edge_agent.specialization.status import camera_status, format_status

    collector = CollectingTransport(Teacher(), tmp_path / "records")
    for k in range(12):
        collector.escalate(_request(k))
    config = AgentConfig.model_validate({
        "student": str(CENTERNET_STUDENT_MANIFEST), "cameras": [{"id": "door", "source": "injected"}],
        "escalation": {"transport": "none"}, "output": {"events_db": str(tmp_path / "e.sqlite")},
        "fleet": {"models_dir": str(tmp_path / "models")},
        "specialization": {"enabled": True, "records_dir": str(tmp_path / "records"), "min_records": 8,
                           "keep_records": 100}})
    agent = Agent(config, sources=[PacedSource("door", [], 0)])
    try:
        outcome = agent.specialization.run_once("door")
    finally:
        agent.close()
    assert outcome["outcome"] == "collecting" and "too little evidence, keep collecting" in outcome["why"]
    status = camera_status(config)["door"]
    assert status["onboarding"] and status["evidence"]["verdict"] == "collect"
    text = format_status(camera_status(config))
    assert "camera door: onboarding" in text and "too little evidence: keep collecting" in text
    assert "person absent in 0 held-back frames, at least 30 needed" in text
    assert len(list((tmp_path / "records" / "door").glob("*.json"))) == 12  # nothing collected is lost
