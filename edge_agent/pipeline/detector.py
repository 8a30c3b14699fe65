"""The student stage: the regions of every camera's sampled frame, batched into one model call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contracts.detections import Detections
from models.runtime import Detector
from models.yolo import nms_per_class

Box = tuple[int, int, int, int]


class BatchedStudent:
    def __init__(self, detector: Detector, max_batch: int = 16):
        self.detector = detector
        self.max_batch = max_batch
        self.calls = 0
        self.crops = 0

    def detect(self, jobs: Sequence[tuple[np.ndarray, Sequence[Box]]]) -> list[Detections]:
        """jobs: (frame, region boxes in its pixels). Returns one Detections per frame, in source
        pixels, with duplicates from overlapping regions removed."""
        crops, owners, offsets = [], [], []
        for j, (frame, regions) in enumerate(jobs):
            for x1, y1, x2, y2 in regions:
                crops.append(frame[y1:y2, x1:x2])
                owners.append(j)
                offsets.append((x1, y1))
        found: list[list[Detections]] = [[] for _ in jobs]
        for start in range(0, len(crops), self.max_batch):
            batch = crops[start: start + self.max_batch]
            self.calls += 1
            self.crops += len(batch)
            for k, dets in enumerate(self.detector.detect(batch), start=start):
                dx, dy = offsets[k]
                found[owners[k]].append(dets.with_scale(1.0, 1.0, dx, dy))
        out = []
        for parts in found:
            merged = Detections.concat(parts)
            if len(parts) > 1 and len(merged):
                classes = np.unique(merged.labels, return_inverse=True)[1]
                merged = merged[nms_per_class(merged.xyxy, merged.scores, classes, 0.45)]
            out.append(merged)
        return out
