"""Distillation data: real footage pseudo-labelled by the teacher, cached, split in time.

Boxes are stored normalised to [0, 1] so one cache serves any training resolution. Frames are kept
at twice the student's input size, enough for zoomed-crop augmentation without upsampling blur.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from contracts.labels import PRODUCT_LABELS
from models.exceptions import ModelError
from models.paths import cache_dir, footage_dir, shared_footage_dir
from models.runtime import Detector

log = logging.getLogger(__name__)
LABEL_INDEX = {label: i for i, label in enumerate(PRODUCT_LABELS)}


def resolve_clip(name: str) -> Path | None:
    """A clip name -> its file: an existing path, the fetch cache, or the shared footage folder."""
    for candidate in (Path(name), footage_dir() / name, shared_footage_dir() / name):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class ClipData:
    name: str
    fps: float
    source_wh: tuple[int, int]
    frames: np.ndarray  # (N, H, W, 3) uint8 BGR, stored size
    det_frame: np.ndarray  # (K,) frame index of each teacher detection
    det_boxes: np.ndarray  # (K, 4) normalised xyxy
    det_scores: np.ndarray  # (K,)
    det_labels: np.ndarray  # (K,) index into PRODUCT_LABELS

    def __len__(self) -> int:
        return len(self.frames)

    def targets(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sel = self.det_frame == index
        return self.det_boxes[sel], self.det_scores[sel], self.det_labels[sel]


def iter_video(path: Path):
    """Yield BGR frames of a clip; a frame that fails to decode ends the clip with a warning."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ModelError(f"cannot open clip {path}: not a video OpenCV/FFmpeg can read")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame
    finally:
        cap.release()


def clip_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    cap.release()
    return fps if 0 < fps < 240 else 10.0


def pseudo_label_clip(path: Path, teacher: Detector, store_wh: tuple[int, int], min_score: float,
                      batch: int = 8) -> ClipData:
    """Run the teacher over every frame of a clip; cached by clip, teacher sha256 and size."""
    key = f"{path.stem}-{teacher.manifest.sha256[:12]}-{store_wh[0]}x{store_wh[1]}-{min_score:g}"
    cached = cache_dir() / "pseudo" / f"{key}.npz"
    if cached.is_file():
        z = np.load(cached)
        return ClipData(path.name, float(z["fps"]), tuple(z["source_wh"]), z["frames"], z["det_frame"],
                        z["det_boxes"], z["det_scores"], z["det_labels"])
    frames, det_frame, det_boxes, det_scores, det_labels = [], [], [], [], []
    source_wh = (0, 0)
    pending: list[np.ndarray] = []
    total = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def flush() -> None:
        for frame, dets in zip(pending, teacher.detect(pending), strict=True):
            h, w = frame.shape[:2]
            index = len(frames)
            frames.append(cv2.resize(frame, store_wh, interpolation=cv2.INTER_AREA))
            dets = dets.with_min_score(min_score)
            for box, score, label in zip(dets.xyxy, dets.scores, dets.labels, strict=True):
                det_frame.append(index)
                det_boxes.append(box / np.array([w, h, w, h], np.float32))
                det_scores.append(score)
                det_labels.append(LABEL_INDEX[label])
        pending.clear()

    for frame in tqdm(iter_video(path), total=total, desc=f"teacher labels {path.name}", unit="frame"):
        source_wh = (frame.shape[1], frame.shape[0])
        pending.append(frame)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    if not frames:
        raise ModelError(f"clip {path} has no readable frames")
    data = ClipData(path.name, clip_fps(path), source_wh, np.stack(frames),
                    np.array(det_frame, np.int64), np.array(det_boxes, np.float32).reshape(-1, 4),
                    np.array(det_scores, np.float32), np.array(det_labels, np.int64))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".part.npz")
    np.savez(tmp, fps=data.fps, source_wh=np.array(source_wh), frames=data.frames, det_frame=data.det_frame,
             det_boxes=data.det_boxes, det_scores=data.det_scores, det_labels=data.det_labels)
    tmp.replace(cached)
    return data


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    calib: np.ndarray
    held: np.ndarray


def temporal_split(n: int, fps: float, train_fraction: float, calib_fraction: float, gap_seconds: float,
                   held_out: bool = False) -> Split:
    """First frames train, the next calibrate, the last are held back; `gap` frames dropped between."""
    if held_out:
        return Split(np.arange(0), np.arange(0), np.arange(n))
    gap = int(round(gap_seconds * fps))
    t_end = int(n * train_fraction)
    c_end = int(n * (train_fraction + calib_fraction))
    return Split(np.arange(0, t_end), np.arange(min(t_end + gap, c_end), c_end), np.arange(min(c_end + gap, n), n))
