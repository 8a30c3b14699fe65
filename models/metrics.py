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
    count_abs_error: int = 0  # sum over frames of |objects said - objects in the reference|

    def add(self, pred: Detections, ref: Detections, iou: float = 0.5) -> None:
        self.frames += 1
        p, r = len(pred) > 0, len(ref) > 0
        self.ref_present += r
        self.pred_present += p
        self.both_present += p and r
        self.box_tp += match_boxes(pred.xyxy, pred.scores, ref.xyxy, iou)
        self.box_pred += len(pred)
        self.box_ref += len(ref)
        self.count_abs_error += abs(len(pred) - len(ref))

    @property
    def recall(self) -> float | None:
        """None where the reference never has the label: nothing could be missed, so no figure."""
        return self.both_present / self.ref_present if self.ref_present else None

    @property
    def precision(self) -> float | None:
        return self.both_present / self.pred_present if self.pred_present else None

    @property
    def box_f1(self) -> float | None:
        denom = self.box_pred + self.box_ref
        return 2 * self.box_tp / denom if denom else None

    @property
    def note(self) -> str | None:
        """Why a presence figure says nothing: with no positives there is nothing to find; with no negatives
        a detector that always says yes scores 1.000 on both."""
        if self.ref_present == 0:
            return "no positives"
        if self.ref_present == self.frames:
            return "no negatives"
        return None

    def summary(self) -> dict:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            **asdict(self),
            "presence_recall": r(self.recall),
            "presence_recall_ci95": [round(v, 4) for v in wilson_interval(self.both_present, self.ref_present)]
            if self.ref_present else None,
            "presence_precision": r(self.precision),
            "presence_note": self.note,
            "box_f1_iou50": r(self.box_f1),
            "count_error_mean": round(self.count_abs_error / self.frames, 3) if self.frames else None,
        }


def presence_text(summary: dict, key: str = "presence_recall") -> str:
    """A presence figure as a report shows it: "0.981 (105/107, 95% CI 0.934-0.995)", or "n/a (why)" where the
    reference has no positives or no negatives (never a vacuous 1.000)."""
    note = summary.get("presence_note")
    value = summary.get(key)
    if note or value is None:
        return f"n/a ({note or 'never said present'})"
    if key == "presence_recall" and summary.get("presence_recall_ci95"):
        lo, hi = summary["presence_recall_ci95"]
        return f"{value:.3f} ({summary['both_present']}/{summary['ref_present']}, 95% CI {lo:.3f}-{hi:.3f})"
    if key == "presence_precision" and "pred_present" in summary:
        return f"{value:.3f} ({summary['both_present']}/{summary['pred_present']})"
    return f"{value:.3f}"


def agreement_line(label: str, summary: dict) -> str:
    """One label's agreement in one line: presence recall and precision, box F1, counting error."""
    f1, count = summary.get("box_f1_iou50"), summary.get("count_error_mean")
    return (f"{label:<8} presence recall {presence_text(summary)}  precision "
            f"{presence_text(summary, 'presence_precision')}  box F1@0.5 {'n/a' if f1 is None else f'{f1:.3f}'}"
            f"  count error {'n/a' if count is None else f'{count:.2f}'}/frame")


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


def paired_difference_lower(both: int, first_only: int, second_only: int, neither: int,
                            confidence: float = 0.95) -> float:
    """One-sided lower confidence bound of p1 - p2 for two yes/no judgements made on the same items (p1: the
    first says yes; p2: the second does), by Newcombe's hybrid score method (Stat. Med. 1998, method 10): the
    two Wilson intervals joined through the pairs' correlation. The pairing matters: two students that each
    flip a few near-threshold frames, in both directions, differ much less than their counts' difference
    taken as a proportion of every frame would say."""
    n = both + first_only + second_only + neither
    if n <= 0:
        raise ValueError("a paired difference needs at least one pair")
    two_sided = 2 * confidence - 1
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, _ = wilson_interval(both + first_only, n, two_sided)
    _, u2 = wilson_interval(both + second_only, n, two_sided)
    denom = math.sqrt((both + first_only) * (second_only + neither) * (both + second_only) * (first_only + neither))
    phi = (both * neither - first_only * second_only) / denom if denom else 0.0
    spread = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    return p1 - p2 - math.sqrt(max(0.0, spread))
