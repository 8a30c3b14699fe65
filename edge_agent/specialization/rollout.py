"""Rolling a student out to one camera: installed under `<fleet.models_dir>/cameras/<camera>/` (a
ModelStore, so installs are atomic and the active one survives restarts), verified against its sha256
at load, checked on that camera's live frames, swapped in for that camera alone and watched by its
guard. The specialization loop (a local swap) and a model-update job naming a camera (IoT jobs) both
come through here.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.fleet.models import ModelStore, UpdateError, health_check
from edge_agent.specialization.guard import Limits
from models.exceptions import ModelError
from models.runtime import Detector, load_detector

if TYPE_CHECKING:
    from edge_agent.app import Agent
    from edge_agent.pipeline.sources import SampledFrame

log = logging.getLogger(__name__)


class SwapAborted(Exception):
    """The agent stopped before the new student could be checked on a live frame."""


def camera_store(models_dir: str | Path, camera: str) -> ModelStore:
    return ModelStore(Path(models_dir).expanduser() / "cameras" / camera)


def installed_student(models_dir: str | Path, camera: str,
                      threads: int) -> tuple[Detector, Limits, dict | None] | None:
    """The camera's rolled-out student from before a restart, if any and intact, with its rollback limits
    and its bands."""
    store = camera_store(models_dir, camera)
    manifest = store.active_manifest()
    if manifest is None:
        return None
    try:
        detector = load_detector(manifest, threads=threads)
    except ModelError as exc:  # tampered or damaged on disk: it never runs
        log.error("camera %s: installed student %s refused (%s); using the configured one", camera, manifest, exc)
        return None
    extra = store.active_extra()
    return detector, Limits(**extra.get("limits", {})), extra.get("bands")


def load_camera_student(manifest: Path, camera: str, threads: int) -> Detector:
    """Load (sha256-verified) a student made for `camera`; UpdateError says why not."""
    try:
        detector = load_detector(manifest, threads=threads)
    except ModelError as exc:
        raise UpdateError(f"the student was refused: {exc}") from exc
    if detector.manifest.specialized_for != camera:
        raise UpdateError(f"the student was specialized for camera {detector.manifest.specialized_for!r}, "
                          f"not {camera!r}")
    return detector


def swap_camera_student(agent: Agent, camera: str, manifest: Path, limits: Limits | None = None,
                        note: str = "", wait_s: float = 600.0, bands: dict | None = None) -> str | None:
    """Install the student at `manifest` (already in the camera's store) for `camera` once it passes a
    health check on that camera's live frames. None on success, else why not (the camera keeps its
    current student). `limits=None`: the champion's live escalation fraction plus 5 points. `bands`
    ({accept, reject}): the student's own cascade bands for every label, else the camera's stay."""
    if camera not in agent.cameras:
        return f"camera {camera!r} is not on this gateway (it runs {sorted(agent.cameras)})"
    try:
        detector = load_camera_student(manifest, camera, agent.config.student_threads)
    except UpdateError as exc:
        return str(exc)
    store = camera_store(agent.config.fleet.models_dir, camera)
    done, cancelled = threading.Event(), threading.Event()
    result: list[str | None] = []

    def swap(frames: list[SampledFrame]) -> None:
        if cancelled.is_set():  # given up on: it must not swap in later behind the caller's back
            return
        live = [f for f in frames if f.camera == camera]
        if not live:  # check it on this camera's own frames: wait for a batch that has one
            if not agent.stop_event.is_set():
                agent.submit(swap)
            return
        reason = health_check(detector, live, agent.config.fleet.health_max_latency_ms)
        if reason:
            result.append(f"health check on live frames failed: {reason}")
        else:
            watch = limits
            if watch is None:
                live_fraction = agent.cameras[camera].guard.escalation_fraction()
                watch = Limits(round(min(1.0, live_fraction + 0.05), 4) if live_fraction is not None else None)
            agent.use_camera_student(camera, detector, watch, bands)
            store.activate(manifest, limits={k: v for k, v in vars(watch).items() if v is not None}, note=note,
                           bands=bands)
            log.info("camera %s: now runs %s %s; rolled back if %s", camera, detector.manifest.name,
                     detector.manifest.version, watch)
            result.append(None)
        done.set()

    agent.submit(swap)
    waited = 0.0
    while not done.wait(0.5):
        waited += 0.5
        if agent.stop_event.is_set():
            cancelled.set()
            raise SwapAborted(f"the agent stopped before a frame of camera {camera} could check the student")
        if waited >= wait_s:
            cancelled.set()
            return f"no frame of camera {camera} arrived within {wait_s:.0f} s to check the student on"
    return result[0]
