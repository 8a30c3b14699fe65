"""Agreement with a reference detector: frame-presence recall/precision and box F1 at an IoU.

Used for the student against the teacher here, and by the bench for the hybrid against the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from contracts.detections import Detections, box_iou


def match_boxes(pred: np.ndarray, pred_scores: np.ndarray, ref: np.ndarray, iou: float = 0.5) -> int:
    """Greedy one-to-one matching in descending score order; returns the number of true positives."""
    if len(pred) == 0 or len(ref) == 0:
        return 0
    ious = box_iou(pred[np.argsort(-pred_scores)], ref)
    taken = np.zeros(len(ref), bool)
    tp = 0
    for row in ious:
        row = np.where(taken, -1.0, row)
        j = int(row.argmax())
        if row[j] >= iou:
            taken[j] = True
            tp += 1
    return tp


@dataclass
class LabelAgreement:
    frames: int = 0
    ref_present: int = 0
    pred_present: int = 0
    both_present: int = 0
    box_tp: int = 0
    box_pred: int = 0
    box_ref: int = 0

    def add(self, pred: Detections, ref: Detections, iou: float = 0.5) -> None:
        self.frames += 1
        p, r = len(pred) > 0, len(ref) > 0
        self.ref_present += r
        self.pred_present += p
        self.both_present += p and r
        self.box_tp += match_boxes(pred.xyxy, pred.scores, ref.xyxy, iou)
        self.box_pred += len(pred)
        self.box_ref += len(ref)

    @property
    def recall(self) -> float:
        return self.both_present / self.ref_present if self.ref_present else 1.0

    @property
    def precision(self) -> float:
        return self.both_present / self.pred_present if self.pred_present else 1.0

    @property
    def box_f1(self) -> float:
        denom = self.box_pred + self.box_ref
        return 2 * self.box_tp / denom if denom else 1.0

    def summary(self) -> dict:
        return {
            **asdict(self),
            "presence_recall": round(self.recall, 4),
            "presence_precision": round(self.precision, 4),
            "box_f1_iou50": round(self.box_f1, 4),
        }


def agreement(preds: Sequence[Detections], refs: Sequence[Detections], labels: Sequence[str],
              pred_thresholds: dict[str, float], ref_threshold: float, iou: float = 0.5) -> dict[str, dict]:
    """Per label, compare thresholded predictions with the thresholded reference, frame by frame."""
    out = {}
    for label in labels:
        acc = LabelAgreement()
        for pred, ref in zip(preds, refs, strict=True):
            acc.add(pred.with_label(label).with_min_score(pred_thresholds.get(label, 0.5)),
                    ref.with_label(label).with_min_score(ref_threshold), iou)
        out[label] = acc.summary()
    return out


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval of a proportion k/n (95% by default): unlike k/n +- a normal margin
    it stays inside [0, 1] and is honest for a handful of frames or a rate near 0 or 1. Its lower end at
    confidence 2c - 1 is the one-sided lower bound at c."""
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
