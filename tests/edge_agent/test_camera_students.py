"""A camera with its own (specialized) student: batched apart, rolled back when it escalates too much,
installed only when promoted and intact."""

import json
import shutil

import pytest

from contracts.jobs import Bands
from edge_agent.app import Agent
from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.specialization.install import install_in_config
from models.exceptions import ChecksumMismatch, ModelError
from models.manifest import load_manifest
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.student.decision import GuardPlan
from tests.decisions import decision

UNSURE = {"labels": {"person": {"accept": 0.99, "reject": 0.01}, "vehicle": {"accept": 0.99, "reject": 0.01}},
          "audit_fraction": 0.0}
CASCADE_ONLY = {"onboarding": {"enabled": False}}  # these tests are about the student's cascade


@pytest.fixture()
def own_student(tmp_path):
    folder = tmp_path / "student-plaza"
    shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["training"]["specialization"] = {"camera": "plaza"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


def _agent(vtest_path, tmp_path, teacher_server_url, **camera):
    config = AgentConfig.model_validate({
        "cameras": [{"id": "plaza", "source": str(vtest_path), "cascade": UNSURE, **CASCADE_ONLY, **camera},
                    {"id": "other", "source": str(vtest_path), "fps": 0.5, **CASCADE_ONLY}],
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
    # the step the dashboard's Camera page shows (sent on the events topic where there is an MQTT link)
    [step] = agent.steps.recent
    assert (step.camera, step.kind, step.outcome) == ("plaza", "rollback", "rolled-back")
    assert step.reason.startswith("it escalated") and "limit 30%" in step.reason
    assert summary["cameras"]["plaza"]["sampled"] == 80 and summary["cameras"]["other"]["sampled"] == 40


def test_a_tampered_camera_student_never_runs(own_student, vtest_path, tmp_path, teacher_server_url):
    model = load_manifest(own_student).model_path
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumMismatch):
        _agent(vtest_path, tmp_path, teacher_server_url, student=str(own_student))


def test_install_only_a_promoted_intact_challenger_for_its_camera(own_student, tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("cameras:\n  - {id: plaza, source: a.mp4}\n  - {id: door, source: b.mp4}\n")
    promoted = decision("promote", champion_escalation=0.12)
    with pytest.raises(ModelError, match="was 'keep'"):
        install_in_config(config, "plaza", own_student, decision("keep"))
    with pytest.raises(ModelError, match="not 'door'"):
        install_in_config(config, "door", own_student, promoted)
    assert install_in_config(config, "plaza", own_student, promoted)["max_escalation"] == pytest.approx(0.17)
    plaza = load_config(config).cameras[0]
    assert plaza.student == str(own_student.resolve()) and plaza.student_max_escalation == pytest.approx(0.17)
    model = load_manifest(own_student).model_path
    model.write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch):
        install_in_config(config, "plaza", own_student, promoted)


def test_install_keeps_the_decisions_bands_and_never_writes_an_invalid_config(own_student, tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("cameras:\n  - {id: plaza, source: a.mp4}\n")
    guard = GuardPlan(positive_share=0.6, audit_fraction=0.377, threshold=65, weight=12, labels=["person"])
    promoted = decision("promote", champion_escalation=0.12, own_escalation=0.05, bands={"accept": 0.7, "reject": 0.3},
                        guard=guard)
    install_in_config(config, "plaza", own_student, promoted)
    # the same operating point and recall test the loop and a camera job give a promoted student
    plaza = load_config(config).cameras[0]
    assert plaza.student_bands == Bands(accept=0.7, reject=0.3)
    assert (plaza.student_guard.audit_fraction, plaza.student_guard.recall_threshold) == (0.377, 65)
    before = config.read_text()
    broken = guard.model_copy(update={"audit_fraction": 1.5})  # an audit share above 1: refused, file untouched
    with pytest.raises(ConfigError, match="left as it was"):
        install_in_config(config, "plaza", own_student, promoted.model_copy(update={"guard": broken}))
    assert config.read_text() == before and load_config(config).cameras[0].student_bands.accept == 0.7


def test_a_configured_camera_student_runs_at_its_own_bands(own_student, tmp_path):
    config = AgentConfig.model_validate({
        "cameras": [{"id": "plaza", "source": "injected", "student": str(own_student),
                     "student_bands": {"accept": 0.8, "reject": 0.1}}],
        "escalation": {"transport": "none"}, "output": {"events_db": str(tmp_path / "e.sqlite")}})
    agent = Agent(config, sources=[])
    try:
        assert agent.cameras["plaza"].cascade.bands["person"] == Bands(accept=0.8, reject=0.1)
    finally:
        agent.close()
