"""Training targets and augmentation for the student (numpy; runs in the data loop, not at the edge)."""

from __future__ import annotations

import cv2
import numpy as np

from models.student.net import NUM_CLASSES, STRIDE


def build_targets(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, in_wh: tuple[int, int]):
    """Soft CenterNet targets from teacher boxes (normalised xyxy) and scores.

    heat: (C, h, w), an elliptical Gaussian per box whose peak is the teacher's score (distillation of
    its confidence, not a hard 1). box_t: (4, h, w) log distances / STRIDE. box_w: (h, w) weight of
    the box loss at each cell (the Gaussian of the box that owns the cell, times its score).
    """
    w_in, h_in = in_wh
    gw, gh = w_in // STRIDE, h_in // STRIDE
    heat = np.zeros((NUM_CLASSES, gh, gw), np.float32)
    box_t = np.zeros((4, gh, gw), np.float32)
    box_w = np.zeros((gh, gw), np.float32)
    if len(boxes) == 0:
        return heat, box_t, box_w
    xs = (np.arange(gw, dtype=np.float32) + 0.5) * STRIDE
    ys = (np.arange(gh, dtype=np.float32) + 0.5) * STRIDE
    px = boxes[:, [0, 2]] * w_in
    py = boxes[:, [1, 3]] * h_in
    for (x1, x2), (y1, y2), score, label in zip(px, py, scores, labels, strict=True):
        bw, bh = x2 - x1, y2 - y1
        if bw < 2 or bh < 2:
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        sx = max(bw / 6, STRIDE * 0.5)
        sy = max(bh / 6, STRIDE * 0.5)
        g = np.exp(-((xs[None, :] - cx) ** 2) / (2 * sx**2) - ((ys[:, None] - cy) ** 2) / (2 * sy**2))
        # The cell holding the centre is always a full peak, even when the centre falls between cells.
        ci, cj = min(int(cy // STRIDE), gh - 1), min(int(cx // STRIDE), gw - 1)
        g[ci, cj] = 1.0
        heat[label] = np.maximum(heat[label], score * g)
        inside = (xs[None, :] > x1) & (xs[None, :] < x2) & (ys[:, None] > y1) & (ys[:, None] < y2)
        own = inside & (g >= 0.3) & (score * g > box_w)
        if not own.any():
            continue
        yy, xx = np.nonzero(own)
        d = np.stack([xs[xx] - x1, ys[yy] - y1, x2 - xs[xx], y2 - ys[yy]])
        box_t[:, yy, xx] = np.log(np.maximum(d, 1.0) / STRIDE)
        box_w[yy, xx] = score * g[yy, xx]
    return heat, box_t, box_w


def augment(frame: np.ndarray, boxes: np.ndarray, in_wh: tuple[int, int], rng: np.random.Generator,
            zoom_probability: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random zoomed crop, horizontal flip and photometric jitter; returns the image at `in_wh` and
    the moved boxes (normalised to the new image) with a mask of those at least 40% visible."""
    x0, y0, x1, y1 = 0.0, 0.0, 1.0, 1.0
    if rng.random() < zoom_probability:
        zoom = rng.uniform(1.0, 2.5)
        cw, ch = 1 / zoom, 1 / zoom
        x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        x1, y1 = x0 + cw, y0 + ch
    h, w = frame.shape[:2]
    crop = frame[int(y0 * h): int(np.ceil(y1 * h)), int(x0 * w): int(np.ceil(x1 * w))]
    image = cv2.resize(crop, in_wh, interpolation=cv2.INTER_AREA)
    if len(boxes):
        scale = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], np.float32)
        moved = (boxes - np.array([x0, y0, x0, y0], np.float32)) / scale
        clipped = moved.clip(0, 1)
        area = lambda b: (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)  # noqa: E731
        visible = area(clipped) / np.maximum(area(moved), 1e-9)
        keep = visible >= 0.4
        boxes = clipped
    else:
        keep = np.zeros(0, bool)
    if rng.random() < 0.5:
        image = image[:, ::-1]
        if len(boxes):
            boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    if rng.random() < 0.8:
        alpha, beta = rng.uniform(0.7, 1.3), rng.uniform(-25, 25)
        image = cv2.convertScaleAbs(image, alpha=alpha, beta=beta)
    return np.ascontiguousarray(image), boxes, keep
