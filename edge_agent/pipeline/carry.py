"""Carrying detections where nothing moved, and placing detections relative to crops: a frame's final
answer is the new look inside the moving (or escalated) areas and the settled past everywhere else."""

from __future__ import annotations

import numpy as np

from contracts.detections import Detections, box_iou


def carry(now: Detections, sure: Detections, settled: Detections, moved,
          looked_everywhere: bool) -> tuple[Detections, Detections]:
    """A frame's final answer and its new settled part. Where nothing moved the settled past stands: a
    parked car stays reported although the student, busy with the people walking past, did not find it
    again in their crop. `sure` is the settled part of `now` (cloud answers, confident edge detections): only
    that is carried later, so an uncertain guess never outlives its evidence. After a look at the whole
    frame (by the student or the cloud) nothing is carried: it has seen everything."""
    static = Detections.empty() if looked_everywhere else with_static(Detections.empty(), settled, moved)
    return with_static(now, static, []), with_static(sure, static, [])


def with_static(current: Detections, previous: Detections, moved) -> Detections:
    """`current` plus the previous detections that no motion touched and no current one repeats."""
    still = previous[~touches(previous, moved)] if len(previous) else previous
    if len(still) and len(current):
        iou = box_iou(still.xyxy, current.xyxy)
        same = still.labels[:, None] == current.labels[None, :]
        still = still[~((iou >= 0.3) & same).any(axis=1)]
    return Detections.concat([current, still])


def confident(dets: Detections, bands) -> Detections:
    """The detections at or above their label's accept threshold."""
    if len(dets) == 0:
        return dets
    accept = np.array([bands[str(lbl)].accept if str(lbl) in bands else 2.0 for lbl in dets.labels], np.float32)
    return dets[dets.scores >= accept]


def touches(dets: Detections, boxes) -> np.ndarray:
    if not boxes:
        return np.zeros(len(dets), bool)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    d = dets.xyxy
    return ((np.minimum(d[:, None, 2], b[None, :, 2]) > np.maximum(d[:, None, 0], b[None, :, 0]))
            & (np.minimum(d[:, None, 3], b[None, :, 3]) > np.maximum(d[:, None, 1], b[None, :, 1]))).any(axis=1)


def centre_inside(dets: Detections, boxes) -> np.ndarray:
    """Which detections have their centre in one of the boxes."""
    if len(dets) == 0 or not boxes:
        return np.zeros(len(dets), bool)
    cx = (dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2
    cy = (dets.xyxy[:, 1] + dets.xyxy[:, 3]) / 2
    return sum(((cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)) for x1, y1, x2, y2 in boxes) > 0


def outside(dets: Detections, boxes) -> Detections:
    """The detections whose centre lies in none of the boxes."""
    return dets[~centre_inside(dets, boxes)] if len(dets) and boxes else dets
