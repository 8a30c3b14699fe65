"""YOLO (v3-style heads) decoding and per-class NMS in numpy.

The teacher's ONNX graph stops at the raw head convolutions so that decoding is one shared, testable
piece of code; it reproduces Darknet's / OpenCV's region layer so that FrameSieve's detections match
OpenCV's on the same weights (see tests/models/test_teacher_parity.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.exceptions import ModelInputError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflowing to inf for very negative x still gives 0
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def decode_yolo(
    outputs: Sequence[np.ndarray],
    heads: Sequence[dict[str, Any]],
    input_wh: tuple[int, int],
    conf_threshold: float,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: (boxes (K,4) float32 xyxy in model-input pixels, scores (K,) float32, class_ids (K,) int64).

    `outputs[i]` is head i's raw [N, A*(5+C), h, w] tensor and `heads[i]` its spec (anchors in input
    pixels). Decoding follows Darknet: centre = (sigmoid(t) + cell) / grid * input size, size =
    exp(t) * anchor, score = sigmoid(objectness) * sigmoid(best class logit). Candidates keep the order
    OpenCV's region layer emits (per head: row, column, anchor) so ties resolve the same way downstream.
    Only cells whose objectness reaches the threshold (an upper bound on their score) get their class
    scores computed, which keeps this cheap when most of the grid is empty.
    """
    if len(outputs) != len(heads):
        raise ModelInputError(f"got {len(outputs)} head outputs for {len(heads)} head specs")
    in_w, in_h = input_wh
    batch = {int(np.shape(o)[0]) for o in outputs}
    if len(batch) != 1:
        raise ModelInputError(f"head outputs disagree on the batch size: {sorted(batch)}")
    n = batch.pop()
    per_head: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (image, box, score, cls)
    for out, head in zip(outputs, heads, strict=True):
        out = np.asarray(out, dtype=np.float32)
        anchors = np.asarray(head["anchors"], dtype=np.float32).reshape(-1, 2)
        a = len(anchors)
        if out.ndim != 4 or out.shape[1] % a or out.shape[1] // a < 6:
            raise ModelInputError(f"{head.get('name', 'head')}: output shape {out.shape} is not "
                                  f"[N, {a}*(5+C), h, w]")
        _, ch, gh, gw = out.shape
        # [N, A, 5+C, h, w] -> [N, h, w, A, 5+C] -> [N, h*w*A, 5+C]: OpenCV's row order.
        rows = out.reshape(n, a, ch // a, gh, gw).transpose(0, 3, 4, 1, 2).reshape(n, gh * gw * a, ch // a)
        objectness = _sigmoid(rows[..., 4])
        img, idx = np.nonzero(objectness >= conf_threshold)
        cand = rows[img, idx]
        # Score every class like OpenCV (objectness * sigmoid(logit), float32) and take the first best,
        # rather than argmax over logits: sigmoid can round two large logits to the same float.
        class_scores = objectness[img, idx, None] * _sigmoid(cand[:, 5:])
        cls = np.argmax(class_scores, axis=1)
        score = class_scores[np.arange(len(cls)), cls]
        keep = score >= conf_threshold
        img, idx, cand, cls, score = img[keep], idx[keep], cand[keep], cls[keep], score[keep]
        cell = idx // a
        col, row, anchor = cell % gw, cell // gw, idx % a
        cx = (_sigmoid(cand[:, 0]) + col) / gw * in_w
        cy = (_sigmoid(cand[:, 1]) + row) / gh * in_h
        with np.errstate(over="ignore"):
            bw = np.exp(cand[:, 2]) * anchors[anchor, 0]
            bh = np.exp(cand[:, 3]) * anchors[anchor, 1]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
        per_head.append((img, boxes, score.astype(np.float32), cls.astype(np.int64)))

    results: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i in range(n):
        picked = [(b[im == i], s[im == i], c[im == i]) for im, b, s, c in per_head]
        results.append((
            np.concatenate([p[0] for p in picked]).reshape(-1, 4),
            np.concatenate([p[1] for p in picked]),
            np.concatenate([p[2] for p in picked]),
        ))
    return results


def nms_per_class(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, by descending score; boxes of different classes never
    suppress each other.

    Same semantics as cv2.dnn.NMSBoxesBatched (stable descending sort, IoU without Darknet's +1, a box
    is dropped when its IoU with a kept box of its class exceeds the threshold) but in numpy, so the
    decode path needs no OpenCV. Classes are kept apart by comparing only boxes of the same class rather
    than with OpenCV's coordinate-offset trick: the two agree except that OpenCV's offset (class *
    (max coordinate + 1)) can let boxes with negative coordinates overlap the next class's range.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores)
    class_ids = np.asarray(class_ids)
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[order, k] for k in range(4))
    cls = class_ids[order]
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), dtype=bool)
    kept: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(i)
        rest = np.arange(i + 1, len(order))
        rest = rest[~suppressed[rest] & (cls[rest] == cls[i])]
        if not len(rest):
            continue
        iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        union = area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            # OpenCV treats two empty boxes as identical (overlap 1).
            iou = np.where(area[i] + area[rest] <= np.finfo(np.float64).eps, 1.0, inter / union)
        suppressed[rest[iou.astype(np.float32) > np.float32(iou_threshold)]] = True
    return order[np.asarray(kept, dtype=np.int64)].astype(np.int64)
