"""One Detections type for every stage: parallel numpy arrays, validated on construction.

Built by `from_*` constructors and transformed by `with_*` methods that return new objects, so a
stage never mutates what another stage holds (the shape of roboflow/supervision's Detections).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.wire import DetectionRecord


@dataclass(frozen=True)
class Detections:
    xyxy: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in source pixels
    scores: np.ndarray  # (N,) float32 in [0, 1]
    labels: np.ndarray  # (N,) str, product labels ("person", "vehicle", ...)
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) or empty

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(self.labels, dtype=str).reshape(-1)
        track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        n = len(xyxy)
        if len(scores) != n or len(labels) != n or len(track_ids) not in (0, n):
            raise ValueError(
                f"Detections arrays disagree in length: xyxy {n}, scores {len(scores)}, "
                f"labels {len(labels)}, track_ids {len(track_ids)}"
            )
        if n and not np.isfinite(xyxy).all():
            raise ValueError("Detections boxes contain NaN or infinity")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "track_ids", track_ids)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, str))

    @classmethod
    def from_records(cls, records: Iterable[dict]) -> Detections:
        """From wire/JSONL records: {"label", "score", "box": [x1, y1, x2, y2]}."""
        records = list(records)
        if not records:
            return cls.empty()
        return cls(
            np.array([r["box"] for r in records], np.float32),
            np.array([r["score"] for r in records], np.float32),
            np.array([r["label"] for r in records], str),
        )

    @classmethod
    def from_wire(cls, records: Iterable[DetectionRecord]) -> Detections:
        """From the wire format's records (a verdict's, an event's)."""
        records = list(records)
        if not records:
            return cls.empty()
        return cls(np.array([r.box for r in records], np.float32), np.array([r.score for r in records], np.float32),
                   np.array([r.label for r in records], str))

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        with_ids = all(len(p.track_ids) for p in parts)
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.track_ids for p in parts]) if with_ids else np.zeros(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.labels[index],
            self.track_ids[index] if len(self.track_ids) else self.track_ids,
        )

    def with_min_score(self, threshold: float) -> Detections:
        return self[self.scores >= threshold]

    def with_label(self, label: str) -> Detections:
        return self[self.labels == label]

    def with_scale(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Detections:
        """Boxes mapped by x' = x * sx + dx, y' = y * sy + dy (model input -> source pixels)."""
        xyxy = self.xyxy * np.array([sx, sy, sx, sy], np.float32) + np.array([dx, dy, dx, dy], np.float32)
        return Detections(xyxy, self.scores, self.labels, self.track_ids)

    def with_clip(self, width: int, height: int) -> Detections:
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        return Detections(xyxy, self.scores, self.labels, self.track_ids)

    def max_score(self, label: str) -> float:
        """Presence score of a label: the best score among its boxes, 0.0 when there are none."""
        mask = self.labels == label
        return float(self.scores[mask].max()) if mask.any() else 0.0

    def to_wire(self) -> tuple[DetectionRecord, ...]:
        """As the wire format's records (what an escalation, a verdict or an event carries)."""
        return tuple(DetectionRecord(str(label), float(score), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
                     for b, score, label in zip(self.xyxy, self.scores, self.labels, strict=True))

    def to_records(self, decimals: int = 1) -> list[dict]:
        return [
            {
                "label": str(label),
                "score": round(float(score), 4),
                "box": [round(float(v), decimals) for v in box],
            }
            for box, score, label in zip(self.xyxy, self.scores, self.labels, strict=True)
        ]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((br - tl).clip(min=0), axis=2)
    area_a = np.prod((a[:, 2:] - a[:, :2]).clip(min=0), axis=1)
    area_b = np.prod((b[:, 2:] - b[:, :2]).clip(min=0), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
