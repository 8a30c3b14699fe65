"""Model updates on the gateway: download a bundle, verify it, install it beside the others, and remember
the active one across restarts; the agent's student lives in `<fleet.models_dir>`, each camera's own in
`<fleet.models_dir>/cameras/<camera>/`.

A bundle is a tar.gz holding a student's manifest.json and the ONNX file it names (`edge-agent models
pack` makes one and prints its sha256 for the job document). Two checks stand between a download and
the cameras: the bundle's sha256 against the job document (what the operator signed off), then, at
load, the model's sha256 against its manifest. A mismatch at either is a failed job: the bytes are
deleted and never loaded. Installs go to a temporary folder renamed into place (atomic), and
`active.json` is replaced atomically only after the new model passed its probation on live frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from contracts.jobs import Bands
from edge_agent.config import AgentConfig
from edge_agent.students.guard import Limits
from models.bundle import plain_name
from models.exceptions import ModelError
from models.runtime import Detector, load_detector
from models.student.derived import ensure_derived_student

log = logging.getLogger(__name__)
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


class UpdateError(Exception):
    """A model update that must not go ahead; the message is the job's failure reason."""


def configured_manifest(config: AgentConfig) -> Path:
    if config.student == "default":
        return ensure_derived_student()  # built from the committed recipe on first use (seconds, no training)
    return Path(config.student).expanduser()


def load_student(config: AgentConfig) -> Detector:
    """The installed model update if there is one and it is intact, else the configured student."""
    if config.escalation.transport in ("mqtt", "iot-core") and config.fleet.jobs:
        active = ModelStore(config.fleet.models_dir).active_manifest()
        if active is not None:
            try:
                return load_detector(active, threads=config.student_threads)
            except ModelError as exc:  # tampered or damaged on disk: it never runs
                log.error("installed model %s refused (%s); using the configured student", active, exc)
    return load_detector(configured_manifest(config), threads=config.student_threads)


class ModelStore:
    """`models_dir/versions/<version>/` per installed model; `models_dir/active.json` names the one in use."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser()
        self.versions = self.root / "versions"

    def active_manifest(self) -> Path | None:
        try:
            active = json.loads((self.root / "active.json").read_text())
            return self.root / active["manifest"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def installed(self) -> list[str]:
        return sorted(p.name for p in self.versions.glob("*") if (p / "manifest.json").is_file())

    def manifest_of(self, version: str) -> Path | None:
        path = self.versions / _safe_name(version) / "manifest.json"
        return path if path.is_file() else None

    def activate(self, manifest: Path, **extra) -> None:
        """Make `manifest` the model a restart loads (atomic replace of active.json); `extra` is kept beside."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".active-{uuid.uuid4().hex}.json"
        tmp.write_text(json.dumps({**extra, "manifest": str(manifest.relative_to(self.root)), "t_s": time.time()}))
        os.replace(tmp, self.root / "active.json")

    def active_extra(self) -> dict:
        """What `activate` kept beside the active model ({} if none)."""
        try:
            active = json.loads((self.root / "active.json").read_text())
            return active if isinstance(active, dict) else {}
        except (OSError, ValueError):
            return {}

    def deactivate(self) -> None:
        """No active model: a restart loads the configured one."""
        (self.root / "active.json").unlink(missing_ok=True)

    def download(self, url: str, sha256: str, timeout_s: float = 60.0) -> Path:
        """Fetch the bundle into the store's scratch folder, hashing as it streams; verify or delete."""
        scratch = self.root / "downloads"
        scratch.mkdir(parents=True, exist_ok=True)
        dest = scratch / f"{uuid.uuid4().hex}.tar.gz"
        digest, size = hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as reply, open(dest, "wb") as out:
                while block := reply.read(1 << 16):
                    size += len(block)
                    if size > MAX_BUNDLE_BYTES:
                        raise UpdateError(f"the bundle at {_redact(url)} is over {MAX_BUNDLE_BYTES} bytes")
                    digest.update(block)
                    out.write(block)
        except UpdateError:
            dest.unlink(missing_ok=True)
            raise
        except (OSError, ValueError) as exc:
            dest.unlink(missing_ok=True)
            raise UpdateError(f"download of {_redact(url)} failed: {exc}") from exc
        if digest.hexdigest() != sha256:
            dest.unlink(missing_ok=True)
            raise UpdateError(f"the bundle's sha256 is {digest.hexdigest()}, the job says {sha256}: tampered or "
                              "damaged in transit; it was deleted and never loaded")
        return dest

    def install(self, bundle: Path, version: str) -> Path:
        """Unpack into versions/<version> atomically; returns the manifest path."""
        final = self.versions / _safe_name(version)
        tmp = self.versions / f".{_safe_name(version)}.{uuid.uuid4().hex}.partial"
        tmp.mkdir(parents=True)
        try:
            with tarfile.open(bundle, "r:gz") as tar:
                members = tar.getmembers()
                bad = [m.name for m in members if not m.isfile() or not plain_name(m.name)]
                if bad or not members:
                    raise UpdateError(f"the bundle must hold plain files only (manifest.json and its model); "
                                      f"refused entries: {bad[:5]}")
                tar.extractall(tmp, filter="data")
            if not (tmp / "manifest.json").is_file():
                raise UpdateError("the bundle has no manifest.json; make bundles with `edge-agent models pack`")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except (tarfile.TarError, OSError) as exc:
            raise UpdateError(f"the bundle cannot be unpacked: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            bundle.unlink(missing_ok=True)
        return final / "manifest.json"


def _safe_name(version: str) -> str:
    name = "".join(ch if ch.isalnum() or ch in "._-+" else "_" for ch in version)
    if not name.strip("."):
        raise UpdateError(f"model version {version!r} cannot name a folder")
    return name


def _redact(url: str) -> str:
    """A presigned URL's query string is a credential: keep it out of logs and job reasons."""
    return url.split("?", 1)[0]


# -- a camera's own student -------------------------------------------------------------------------------
def camera_store(models_dir: str | Path, camera: str) -> ModelStore:
    return ModelStore(Path(models_dir).expanduser() / "cameras" / camera)


@dataclass(frozen=True)
class CameraStudent:
    """A camera's own student as rolled out: the model, the limits its guard rolls it back above, and its
    cascade bands (None: the camera's configured bands)."""

    detector: Detector
    limits: Limits
    bands: Bands | None = None


def installed_student(models_dir: str | Path, camera: str, threads: int) -> CameraStudent | None:
    """The camera's rolled-out student from before a restart, if any and intact."""
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
    bands = extra.get("bands")
    return CameraStudent(detector, Limits(**extra.get("limits", {})), Bands.model_validate(bands) if bands else None)


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
