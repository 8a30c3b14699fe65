"""Scenes for calibration and leave-one-scene-out evaluation: frames sampled from a clip at a rate,
with the teacher's detections of each (cached by clip, rate and teacher sha256).

Unlike `data.py` (every frame, stored for training), this keeps only the sampled frames at their own
size: what the edge sees at 1 fps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from contracts.detections import Detections
from models.exceptions import ModelError
from models.paths import cache_dir
from models.runtime import Detector

log = logging.getLogger(__name__)


@dataclass
class Scene:
    name: str
    fps: float  # the sampling rate
    frames: list[np.ndarray]  # BGR, source size
    refs: list[Detections]  # the teacher's detections of each frame, source pixels

    def __len__(self) -> int:
        return len(self.frames)


def sample_frames(path: Path, fps: float) -> list[np.ndarray]:
    """Frames at `fps` by media time; a frame that fails to decode is skipped, a clip that opens
    with no readable frame is an error."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ModelError(f"cannot open clip {path}: not a video OpenCV/FFmpeg can read")
    native = cap.get(cv2.CAP_PROP_FPS) or 0.0
    native = native if 0 < native < 240 else 10.0
    step = max(1, int(round(native / fps)))
    frames, index = [], 0
    try:
        while cap.grab():
            if index % step == 0:
                ok, frame = cap.retrieve()
                if ok and frame is not None and frame.ndim == 3:
                    frames.append(frame)
            index += 1
    finally:
        cap.release()
    if not frames:
        raise ModelError(f"clip {path} has no readable frames")
    return frames


def load_scene(path: Path, fps: float, teacher: Detector, batch: int = 8) -> Scene:
    frames = sample_frames(path, fps)
    key = f"{path.stem}-{fps:g}fps-{teacher.manifest.sha256[:12]}-{len(frames)}"
    cached = cache_dir() / "scenes" / f"{key}.npz"
    if cached.is_file():
        z = np.load(cached)
        refs = [Detections(z["xyxy"][z["frame"] == i], z["scores"][z["frame"] == i],
                           z["labels"][z["frame"] == i]) for i in range(len(frames))]
        return Scene(path.name, fps, frames, refs)
    refs: list[Detections] = []
    for start in tqdm(range(0, len(frames), batch), desc=f"teacher on {path.name}", unit="batch", leave=False):
        refs += teacher.detect(frames[start:start + batch])
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(cached.name + ".part.npz")
    np.savez(tmp, frame=np.concatenate([np.full(len(r), i) for i, r in enumerate(refs)] or [np.zeros(0)]),
             xyxy=np.concatenate([r.xyxy for r in refs]).reshape(-1, 4),
             scores=np.concatenate([r.scores for r in refs]),
             labels=np.concatenate([r.labels.astype(str) for r in refs]))
    tmp.replace(cached)
    return Scene(path.name, fps, frames, refs)
