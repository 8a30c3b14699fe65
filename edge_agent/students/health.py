"""The health check a new student passes on live frames before it is swapped in."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from edge_agent.pipeline.sources import SampledFrame
from models.runtime import Detector


def health_check(detector: Detector, frames: Sequence[SampledFrame], max_latency_ms: float) -> str | None:
    """None if `detector` handles these live frames sanely, else why not: it must run, in time, and give
    finite boxes inside the frame with scores in [0, 1]."""
    if not frames:
        return "no live frame to check the model on"
    images = [f.image for f in frames[:4]]
    try:
        detector.detect(images[:1])  # warm-up: the first call allocates
        started = time.perf_counter()
        results = detector.detect(images)
        elapsed_ms = (time.perf_counter() - started) * 1000
    except Exception as exc:
        return f"the model failed on live frames: {exc}"
    if elapsed_ms > max_latency_ms:
        return (f"the model took {elapsed_ms:.0f} ms for {len(images)} live frame(s), over "
                f"fleet.health_max_latency_ms = {max_latency_ms:.0f}")
    for image, dets in zip(images, results, strict=True):
        h, w = image.shape[:2]
        if len(dets) and (not np.isfinite(dets.xyxy).all() or dets.xyxy.min() < -1
                          or (dets.xyxy[:, [0, 2]] > w + 1).any() or (dets.xyxy[:, [1, 3]] > h + 1).any()
                          or not ((dets.scores >= 0) & (dets.scores <= 1)).all()):
            return "the model gave boxes outside the frame or scores outside [0, 1] on live frames"
    return None
