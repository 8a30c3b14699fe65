"""The agent's port: commands run between batches on live frames, answered by futures; a command its
caller gave up on is cancelled and never takes effect; a stop answers what is left; a failed start closes
what it had opened. The shipped student on synthetic frames, no cloud."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest

from contracts.jobs import Bands
from edge_agent.app import Agent
from edge_agent.config import AgentConfig, CameraSettings
from edge_agent.control import (
    AgentStopped,
    ApplySettings,
    CommandFailed,
    CommandTimedOut,
    InstallCameraStudent,
    InstallStudent,
    outcome,
)
from edge_agent.pipeline.sources import SourceError
from edge_agent.students.guard import Limits
from edge_agent.students.store import camera_store, load_camera_student
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.runtime import load_detector
from tests.edge_agent.aws_side import PacedSource

FRAMES = [np.full((240, 320, 3), v, np.uint8) for v in (40, 200)]  # alternating: motion on every frame


def _config(tmp_path, cameras=("a", "b")) -> AgentConfig:
    return AgentConfig.model_validate({
        "cameras": [{"id": c, "source": "injected"} for c in cameras], "escalation": {"transport": "none"},
        "output": {"events_db": str(tmp_path / "events.sqlite")}, "fleet": {"models_dir": str(tmp_path / "models")}})


def _camera_student(models_dir, camera: str):
    """The shipped student, marked as made for `camera`, placed in that camera's store."""
    folder = camera_store(models_dir, camera).versions / "1.0.0-cam"
    shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["training"]["specialization"] = {"camera": camera}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return load_camera_student(folder / "manifest.json", camera, 1), folder / "manifest.json"


def test_a_camera_student_is_checked_on_its_own_frames_swapped_in_and_kept_for_a_restart(tmp_path):
    config = _config(tmp_path)
    agent = Agent(config, sources=[PacedSource("a", FRAMES, 4), PacedSource("b", FRAMES, 4)])
    detector, manifest = _camera_student(config.fleet.models_dir, "b")
    future = agent.submit(InstallCameraStudent("b", detector, manifest, None, Bands(accept=0.7, reject=0.1), "test"))
    agent.run()
    assert future.result(0) == Limits()  # no live escalation fraction yet: no limit from it
    status = agent.status().cameras
    assert status["b"].own_student.version == "1.0.0" and status["a"].own_student is None
    assert agent.cameras["b"].cascade.bands["person"] == Bands(accept=0.7, reject=0.1)
    restarted = Agent(config, sources=[])
    try:
        assert restarted.cameras["b"].own_student is not None  # made the active one: it survives a restart
        assert restarted.cameras["b"].cascade.bands["person"] == Bands(accept=0.7, reject=0.1)
    finally:
        restarted.close()


def test_a_command_given_up_on_is_cancelled_and_never_takes_effect_later(tmp_path):
    config = _config(tmp_path)
    agent = Agent(config, sources=[PacedSource("b", FRAMES, 3)])
    detector, manifest = _camera_student(config.fleet.models_dir, "b")
    future = agent.submit(InstallCameraStudent("b", detector, manifest))
    with pytest.raises(CommandTimedOut, match="cancelled, nothing changed"):
        outcome(future, 0.05, "camera b's student")  # no batch yet: nothing ran it
    assert future.cancelled()
    agent.run()  # frames of camera b arrive now: the cancelled swap must not happen behind the caller's back
    assert agent.cameras["b"].own_student is None
    assert camera_store(config.fleet.models_dir, "b").active_manifest() is None


def test_a_stop_answers_every_pending_command_with_agent_stopped(tmp_path):
    agent = Agent(_config(tmp_path), sources=[])
    detector = load_detector(CENTERNET_STUDENT_MANIFEST)
    pending = agent.submit(InstallStudent(detector, CENTERNET_STUDENT_MANIFEST))
    agent.close()
    with pytest.raises(AgentStopped):
        pending.result(0)
    with pytest.raises(AgentStopped):
        agent.submit(ApplySettings({"a": CameraSettings()})).result(0)  # after the stop: refused at once


def test_commands_for_unknown_cameras_fail_at_once(tmp_path):
    agent = Agent(_config(tmp_path), sources=[])
    try:
        with pytest.raises(CommandFailed, match="unknown camera ids \\['zz'\\]"):
            agent.submit(ApplySettings({"zz": CameraSettings()})).result(0)
    finally:
        agent.close()


def test_settings_are_applied_between_batches_and_resolve_their_future(tmp_path):
    agent = Agent(_config(tmp_path, cameras=("a",)), sources=[PacedSource("a", FRAMES, 3)])
    boxes = CameraSettings.model_validate({"fps": 2.0, "cascade": {"level": "boxes"}})
    future = agent.submit(ApplySettings({"a": boxes}))
    agent.run()
    assert future.result(0) is None
    assert agent.status().cameras["a"].settings.cascade.level == "boxes"


def test_a_failed_start_closes_what_it_opened(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: the MQTT client keeps trying in its thread
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    config = AgentConfig.model_validate({
        "cameras": [{"id": "a", "source": str(tmp_path / "no-such-clip.mp4")}],
        "escalation": {"transport": "mqtt", "mqtt": {"port": dead},
                       "spool": {"path": str(tmp_path / "spool.sqlite")}},
        "output": {"events_db": str(tmp_path / "events.sqlite")}, "fleet": {"models_dir": str(tmp_path / "m")}})
    before = set(threading.enumerate())
    with pytest.raises(SourceError):
        Agent(config)
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - before, "threads left behind by the failed start"
    # SQLite removes a WAL file when its last connection closes: the event log was closed too
    assert (tmp_path / "events.sqlite").exists() and not (tmp_path / "events.sqlite-wal").exists()
