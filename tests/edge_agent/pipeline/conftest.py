"""Footage for the pipeline tests: real clips only, found locally (tests never download anything)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.paths import footage_dir, shared_footage_dir
from models.student.data import resolve_clip


@pytest.fixture(scope="session")
def vtest() -> Path:
    path = resolve_clip("vtest.avi")
    if path is None:
        pytest.skip(f"vtest.avi is in neither {footage_dir()} nor the shared footage folder "
                    f"{shared_footage_dir()}; run `edge-agent models fetch`")
    return path


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    path = shared_footage_dir()
    if not path.is_dir():
        pytest.skip(f"shared footage folder {path} is absent (set FRAMESIEVE_SHARED_FOOTAGE)")
    return path


@pytest.fixture(scope="session")
def vtest_first_frames(vtest) -> list[np.ndarray]:
    """The first 20 consecutive frames of vtest.avi (2 s at 10 fps)."""
    cap = cv2.VideoCapture(str(vtest))
    frames = []
    for _ in range(20):
        ok, frame = cap.read()
        assert ok, f"cannot decode {vtest}"
        frames.append(frame)
    cap.release()
    return frames
