"""Run a detector over split frames and compare it with the teacher's labels of the same frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from models.metrics import agreement, match_boxes
from models.runtime import Detector


def reference(clip, index: int) -> Detections:
    """The teacher's detections of one stored frame, in stored-frame pixels."""
    boxes, scores, labels = clip.targets(index)
    h, w = clip.frames.shape[1:3]
    return Detections(boxes * np.array([w, h, w, h], np.float32), scores,
                      np.array([PRODUCT_LABELS[k] for k in labels], str))


def run_on(detector: Detector, data, items: Sequence[tuple[int, int]], batch: int = 16):
    """Predictions and references for (clip, frame) items."""
    preds, refs = [], []
    for start in range(0, len(items), batch):
        chunk = items[start: start + batch]
        preds += detector.detect([data.clips[c].frames[i] for c, i in chunk])
        refs += [reference(data.clips[c], i) for c, i in chunk]
    return preds, refs


def fit_platt(raw: np.ndarray, positive: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Logistic regression of `positive` on logit(raw) by Newton's method (a tiny, exact problem)."""
    if positive.sum() < 5 or (~positive).sum() < 5:
        return 1.0, 0.0
    z = np.log(np.clip(raw, 1e-6, 1 - 1e-6) / np.clip(1 - raw, 1e-6, 1))
    X = np.stack([z, np.ones_like(z)], axis=1).astype(np.float64)
    y = positive.astype(np.float64)
    w = np.array([1.0, 0.0])
    for _ in range(iters):
        p = 0.5 * (1 + np.tanh(0.5 * (X @ w)))  # the logistic function, without overflow on separable data
        grad = X.T @ (p - y)
        hess = X.T @ (X * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def calibration_pairs(preds, refs, label: str, ref_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Each predicted box's raw score, and whether it matches a reference box (IoU >= 0.5)."""
    raws, hits = [], []
    for pred, ref in zip(preds, refs, strict=True):
        p = pred.with_label(label)
        r = ref.with_label(label).with_min_score(ref_threshold)
        order = np.argsort(-p.scores)
        for k in order:
            raws.append(p.scores[k])
            hits.append(match_boxes(p.xyxy[k: k + 1], p.scores[k: k + 1], r.xyxy) > 0)
    return np.array(raws, np.float64), np.array(hits, bool)


def best_threshold(preds, refs, label: str, ref_threshold: float) -> float:
    """The score threshold with the best box F1 (IoU 0.5) against the reference on these frames.

    Box F1 rather than presence F1: in a busy scene the label is present in every frame, so presence
    alone would favour any low threshold.
    """
    pairs = [(p.with_label(label), r.with_label(label).with_min_score(ref_threshold))
             for p, r in zip(preds, refs, strict=True)]
    if not any(len(r) for _, r in pairs):
        return 0.5
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    f1s = []
    for t in grid:
        tp = n_pred = n_ref = 0
        for p, r in pairs:
            kept = p.with_min_score(t)
            tp += match_boxes(kept.xyxy, kept.scores, r.xyxy)
            n_pred += len(kept)
            n_ref += len(r)
        f1s.append(2 * tp / max(1, n_pred + n_ref))
    # Calibrated scores often sit near 0 or 1, leaving a plateau of equally good thresholds: take its
    # middle rather than an edge, so the choice does not hang on one frame.
    best = np.flatnonzero(np.array(f1s) >= max(f1s) - 1e-9)
    return float(grid[best[len(best) // 2]])


def held_back_metrics(detector: Detector, data, thresholds: dict[str, float], ref_threshold: float) -> dict:
    """Agreement on held-back frames: of clips the student trained on, and of clips it never saw."""
    out = {}
    groups = {
        "trained_scenes_held_back": [(c, i) for c, i in data.frames("held") if not data.held_out[c]],
        "unseen_clips": [(c, i) for c, i in data.frames("held") if data.held_out[c]],
    }
    for group, items in groups.items():
        if not items:
            continue
        preds, refs = run_on(detector, data, items)
        out[group] = {"frames": len(items),
                      "labels": agreement(preds, refs, PRODUCT_LABELS, thresholds, ref_threshold)}
    per_clip = {}
    for c, clip in enumerate(data.clips):
        items = [(c, int(i)) for i in data.splits[c].held]
        if items:
            preds, refs = run_on(detector, data, items)
            per_clip[clip.name] = agreement(preds, refs, PRODUCT_LABELS, thresholds, ref_threshold)
    out["per_clip"] = per_clip
    return out
