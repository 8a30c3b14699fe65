"""Onboarding on a running agent, on real footage against the real teacher server: a new camera sends every
frame with motion to the cloud (not budgeted), still scenes at its check interval, keeps the answers as
training records; a camera that opts out runs the student's cascade; a rollback sends a camera back."""

from __future__ import annotations

import json

from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.escalation.collect import CollectingTransport
from edge_agent.escalation.http import UrlTransport
from edge_agent.students.guard import Limits
from tests.edge_agent.aws_side import PacedSource


def _agent(tmp_path, url, frames, **camera):
    config = AgentConfig.model_validate({
        "cameras": [{"id": "plaza", "source": "injected", "cascade": {"budget_per_hour": 1, "audit_fraction": 0.0},
                     **camera}],
        "escalation": {"transport": "url", "url": url}, "fleet": {"models_dir": str(tmp_path / "models")}})
    transport = CollectingTransport(UrlTransport(url), tmp_path / "records")
    return Agent(config, transport=transport, jsonl=tmp_path / "out.jsonl", events_db=tmp_path / "e.sqlite",
                 sources=[PacedSource("plaza", frames, len(frames))]), transport


def test_a_new_camera_sends_every_motion_frame_and_keeps_the_answers(tmp_path, vtest_every_2s, teacher_server_url):
    agent, transport = _agent(tmp_path, teacher_server_url, vtest_every_2s[:12])
    assert agent.cameras["plaza"].onboarding
    summary = agent.run()
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    moved = [ln for ln in lines if ln["decided_by"] != "carried"]
    assert moved and all(ln["escalated"] and ln["decided_by"] == "cloud" for ln in moved)
    # a budget of 1 an hour would have refused all but one: onboarding is not budgeted
    assert summary["total"]["budget_refused"] == 0 and summary["total"]["escalated"] == len(moved)
    assert transport.written == len(moved) == len(list((tmp_path / "records" / "plaza").glob("*.json")))


def test_a_still_scene_is_checked_at_its_interval(tmp_path, vtest_every_2s, teacher_server_url):
    still = [vtest_every_2s[0].copy() for _ in range(38)]  # the same picture, one a second: no motion after the first
    agent, _ = _agent(tmp_path, teacher_server_url, still, onboarding={"still_check_s": 10})
    agent.run()
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    sent = [ln["pts_s"] for ln in lines if ln["escalated"]]
    assert sent == [0.0, 10.0, 20.0, 30.0]  # the first frame, then every 10 s of a still scene
    assert sum(ln["decided_by"] == "carried" for ln in lines) == 34


def test_opting_out_runs_the_students_cascade_and_a_rollback_goes_back_to_onboarding(tmp_path, vtest_every_2s,
                                                                                     teacher_server_url):
    agent, _ = _agent(tmp_path, teacher_server_url, vtest_every_2s[:4], onboarding={"enabled": False})
    assert not agent.cameras["plaza"].onboarding
    agent.close()
    agent, _ = _agent(tmp_path, teacher_server_url, vtest_every_2s[:4])
    camera = agent.cameras["plaza"]
    camera.use_student(agent.student.detector, Limits(audit_fraction=0.4, recall_threshold=65, recall_weight=12))
    assert not camera.onboarding and camera.cascade.audit_fraction == 0.4  # the share its recall test needs
    camera.drop_student(agent.student.detector.manifest.thresholds)  # what the guard's rollback does
    assert camera.onboarding and camera.cascade.audit_fraction == 0.0
    agent.close()
