"""A camera with its own (specialized) student: batched apart, rolled back when it escalates too much,
installed only when promoted and intact."""

import json
import shutil

import pytest

from edge_agent.app import Agent
from edge_agent.config import AgentConfig, load_config
from models.exceptions import ChecksumMismatch, ModelError
from models.manifest import load_manifest
from models.paths import DEFAULT_STUDENT_MANIFEST
from models.student.specialize import install

UNSURE = {"labels": {"person": {"accept": 0.99, "reject": 0.01}, "vehicle": {"accept": 0.99, "reject": 0.01}},
          "audit_fraction": 0.0}


@pytest.fixture()
def own_student(tmp_path):
    folder = tmp_path / "student-plaza"
    shutil.copytree(DEFAULT_STUDENT_MANIFEST.parent, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["training"]["specialization"] = {"camera": "plaza"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


def _agent(vtest_path, tmp_path, teacher_server_url, **camera):
    config = AgentConfig.model_validate({
        "cameras": [{"id": "plaza", "source": str(vtest_path), "cascade": UNSURE, **camera},
                    {"id": "other", "source": str(vtest_path), "fps": 0.5}],
        "escalation": {"transport": "url", "url": teacher_server_url}})
    return Agent(config, events_db=tmp_path / "e.sqlite")


@pytest.mark.slow
def test_own_student_runs_for_its_camera_and_rolls_back_when_it_escalates_too_much(
        own_student, vtest_path, tmp_path, teacher_server_url):
    agent = _agent(vtest_path, tmp_path, teacher_server_url, student=str(own_student), student_max_escalation=0.3)
    assert agent.cameras["plaza"].own_student is not None and agent.cameras["other"].own_student is None
    summary = agent.run()
    # with a band this wide nearly every frame escalates: far above the 30% it was installed with
    assert summary["student_rollbacks"] == 1
    assert agent.cameras["plaza"].own_student is None
    assert summary["cameras"]["plaza"]["sampled"] == 80 and summary["cameras"]["other"]["sampled"] == 40


def test_a_tampered_camera_student_never_runs(own_student, vtest_path, tmp_path, teacher_server_url):
    model = load_manifest(own_student).model_path
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumMismatch):
        _agent(vtest_path, tmp_path, teacher_server_url, student=str(own_student))


def test_install_only_a_promoted_intact_challenger_for_its_camera(own_student, tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("cameras:\n  - {id: plaza, source: a.mp4}\n  - {id: door, source: b.mp4}\n")
    promoted = {"promote": True, "champion": {"at_bands": {"escalation_fraction": 0.12}}}
    with pytest.raises(ModelError, match="keep the champion"):
        install(config, "plaza", own_student, {**promoted, "promote": False})
    with pytest.raises(ModelError, match="not 'door'"):
        install(config, "door", own_student, promoted)
    assert install(config, "plaza", own_student, promoted) == pytest.approx(0.17)
    plaza = load_config(config).cameras[0]
    assert plaza.student == str(own_student.resolve()) and plaza.student_max_escalation == pytest.approx(0.17)
    model = load_manifest(own_student).model_path
    model.write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch):
        install(config, "plaza", own_student, promoted)
