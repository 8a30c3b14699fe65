"""Model updates on the gateway: download a bundle, verify it, install it beside the others, check it on
live frames, and remember the active one across restarts.

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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.config import AgentConfig
from models.bundle import plain_name
from models.exceptions import ModelError
from models.paths import DEFAULT_STUDENT_MANIFEST
from models.runtime import Detector, load_detector

if TYPE_CHECKING:
    from edge_agent.pipeline.sources import SampledFrame

log = logging.getLogger(__name__)
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


class UpdateError(Exception):
    """A model update that must not go ahead; the message is the job's failure reason."""


def configured_manifest(config: AgentConfig) -> Path:
    return DEFAULT_STUDENT_MANIFEST if config.student == "default" else Path(config.student).expanduser()


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


def health_check(detector: Detector, frames: list[SampledFrame], max_latency_ms: float) -> str | None:
    """None if `detector` handles these live frames sanely, else why not: it must run, in time, and give
    finite boxes inside the frame with scores in [0, 1]."""
    if not frames:
        return "no live frame to check the model on"
    images = [f.image for f in frames[:4]]
    try:
        detector.detect(images[:1])  # warm-up: the first call allocates
        started = time.perf_counter()
        results = detector.detect(images)
        elapsed_ms = (time.perf_counter() - started) * 1000
    except Exception as exc:
        return f"the model failed on live frames: {exc}"
    if elapsed_ms > max_latency_ms:
        return (f"the model took {elapsed_ms:.0f} ms for {len(images)} live frame(s), over "
                f"fleet.health_max_latency_ms = {max_latency_ms:.0f}")
    for image, dets in zip(images, results, strict=True):
        h, w = image.shape[:2]
        if len(dets) and (not np.isfinite(dets.xyxy).all() or dets.xyxy.min() < -1
                          or (dets.xyxy[:, [0, 2]] > w + 1).any() or (dets.xyxy[:, [1, 3]] > h + 1).any()
                          or not ((dets.scores >= 0) & (dets.scores <= 1)).all()):
            return "the model gave boxes outside the frame or scores outside [0, 1] on live frames"
    return None


def _safe_name(version: str) -> str:
    name = "".join(ch if ch.isalnum() or ch in "._-+" else "_" for ch in version)
    if not name.strip("."):
        raise UpdateError(f"model version {version!r} cannot name a folder")
    return name


def _redact(url: str) -> str:
    """A presigned URL's query string is a credential: keep it out of logs and job reasons."""
    return url.split("?", 1)[0]
