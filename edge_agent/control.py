"""The agent as fleet management and per-camera specialization see it: a status snapshot and a few typed
commands. `fleet/` and `specialization/` import this module, never the agent itself, so the agent's
insides (its cameras, loop and students) can change without rippling into either.

Commands run on the agent's loop thread between two batches, with the frames of the batch about to be
processed: a new student is health-checked on live frames of the camera it is for. `submit` answers
with a `concurrent.futures.Future`: its result is the command's outcome, or it raises

- `CommandFailed`: refused (the message says why; the agent kept what it ran),
- `AgentStopped`: the agent stopped before the outcome was known.

A caller that stops waiting cancels the command (`outcome` does), so a slow command never takes effect
later behind its back, and a timeout reads differently from a shutdown.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

from contracts.jobs import Bands
from edge_agent.config import AgentConfig, CameraConfig, CameraSettings
from edge_agent.students.guard import Limits
from models.runtime import Detector

T = TypeVar("T")


class CommandFailed(Exception):
    """The agent refused or undid the command; the message is the reason."""


class CommandTimedOut(CommandFailed):
    """No outcome within the caller's time; the command was cancelled and changed nothing."""


class AgentStopped(Exception):
    """The agent stopped before the command's outcome was known."""


# -- what the agent runs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    manifest: Path | None

    @classmethod
    def of(cls, detector: Detector) -> ModelInfo:
        m = detector.manifest
        return cls(m.name, m.version, m.sha256, m.path)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class CameraStatus:
    settings: CameraConfig  # what the camera runs with now, live changes included
    counters: dict[str, int]  # since the start: sampled, escalated, ... (app/camera.py Counters)
    own_student: ModelInfo | None  # a specialized student of its own, else the agent's
    limits: Limits  # what its guard rolls the own student back above
    uncertain_fraction: float | None  # the live share of frames escalated for uncertainty (None: too few yet)
    warming_up: bool  # auditing more while the camera's first training records are collected
    # the decoded frame against the student's input (pipeline/detect_size.py): size, downscale, tiles,
    # oversized, suggested; None until its first frame
    detect_stream: dict[str, object] | None = None


@dataclass(frozen=True)
class AgentStatus:
    student: ModelInfo  # the agent's student: every camera without its own runs it
    cameras: dict[str, CameraStatus]
    errors: int  # batches that failed
    started_s: float


# -- commands --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstallStudent:
    """A new agent student: health check on live frames, swap, `fleet.probation_batches` of probation (the
    previous one comes back if it fails), then made the one a restart loads. Result: None."""

    detector: Detector
    manifest: Path  # installed under fleet.models_dir already


@dataclass(frozen=True)
class InstallCameraStudent:
    """A student for one camera alone: health check on that camera's live frames, swap, watched by the
    camera's guard, made the one a restart loads. Result: the Limits it is watched against."""

    camera: str
    detector: Detector
    manifest: Path  # installed in the camera's store already
    limits: Limits | None = None  # None: the champion's live escalation fraction plus 5 points
    bands: Bands | None = None  # its own cascade bands for every label; None: the camera's stay
    note: str = ""  # why, kept beside the active model


@dataclass(frozen=True)
class ApplySettings:
    """New settings for some cameras (validated: the shadow does it); tracks, budgets and motion
    backgrounds carry over. Result: None."""

    settings: dict[str, CameraSettings]


@dataclass(frozen=True)
class EndWarmup:
    """The camera has enough training records: stop auditing extra. Result: None."""

    camera: str


Command = InstallStudent | InstallCameraStudent | ApplySettings | EndWarmup


class AgentPort(Protocol):
    @property
    def config(self) -> AgentConfig:
        """The configuration the agent started from (site, fleet, student threads, cameras as configured)."""
        ...

    def status(self) -> AgentStatus:
        """A snapshot, taken without stopping the cameras."""
        ...

    def stopped(self) -> bool: ...

    @overload
    def submit(self, command: InstallCameraStudent) -> concurrent.futures.Future[Limits]: ...

    @overload
    def submit(self, command: InstallStudent | ApplySettings | EndWarmup) -> concurrent.futures.Future[None]: ...

    def submit(self, command: Command) -> concurrent.futures.Future[Any]:
        """Queue a command for the loop's thread; thread-safe."""
        ...


def outcome(future: concurrent.futures.Future[T], timeout_s: float, what: str) -> T:
    """Wait for a command's result; if it has not started within `timeout_s`, cancel it (it then never
    takes effect) and raise CommandTimedOut. A command already under way (a student on probation) is
    waited for: its outcome comes within a few batches, or as AgentStopped."""
    try:
        return future.result(timeout_s)
    except concurrent.futures.TimeoutError:
        if future.cancel():
            raise CommandTimedOut(f"{what}: no live frame to do it on within {timeout_s:.0f} s; cancelled, "
                                  "nothing changed") from None
    return future.result()
