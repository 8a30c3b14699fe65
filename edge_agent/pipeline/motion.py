"""The per-camera motion gate: the cheap test that decides whether the student runs on a sample at all.

Approach (after Frigate's improved motion detector): shrink the frame to a small grey image (which
makes everything after it cheap), blur lightly, compare with a
running-average background, threshold, dilate, and box the contours that are big enough. Masked
areas (timestamps, trees in the wind) are zeroed in the thresholded image, so they never trigger.

Two cases report motion over the whole frame, so the model looks once:
- the first frame (there is no background yet, and no previous decision to carry forward);
- a sudden change of most of the frame (lights switched, IR mode, camera bumped): the background is
  re-initialised from this frame (`recalibrated=True`), so the next frames compare against the new
  scene instead of reporting the whole frame as motion until the average catches up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

_BLUR_KSIZE = (3, 3)  # on the ~160x120 frame, i.e. ~15x15 source pixels


class MotionConfig(BaseModel):
    """Motion gate settings for one camera (defaults suit 1 fps sampling of a fixed camera)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_height: int = Field(120, ge=16, le=2160, description="height of the small grey frame, pixels")
    threshold: int = Field(25, ge=1, le=255, description="pixel difference (0-255) that counts as changed")
    contour_area: int = Field(20, ge=0, description="min area of a motion blob, in small-frame pixels")
    frame_alpha: float = Field(0.2, gt=0, le=1, description="running-average weight of the newest frame")
    lightning_threshold: float = Field(
        0.6, gt=0, le=1, description="changed fraction that means a whole-frame lighting change")
    mask: list[list[tuple[float, float]]] = Field(
        default_factory=list, description="polygons, each a list of [x, y] in source pixels; never trigger")
    dilate: int = Field(1, ge=0, le=10, description="dilation iterations that join nearby changed pixels")

    @field_validator("mask")
    @classmethod
    def _polygons_have_three_points(cls, polygons: list[list[tuple[float, float]]]) -> list:
        for i, polygon in enumerate(polygons):
            if len(polygon) < 3:
                raise ValueError(f"mask polygon {i} has {len(polygon)} points; a polygon needs at least 3")
        return polygons


@dataclass
class MotionResult:
    boxes: list[list[int]] = field(default_factory=list)  # [x1, y1, x2, y2] in source pixels
    changed_fraction: float = 0.0  # share of the unmasked small frame above threshold
    recalibrated: bool = False  # background (re)initialised from this frame; boxes = whole frame

    @property
    def has_motion(self) -> bool:
        return bool(self.boxes)


class MotionGate:
    """Motion for one camera's sampled frames. Not thread-safe: one gate per camera, one caller."""

    def __init__(self, config: MotionConfig, frame_wh: tuple[int, int]) -> None:
        width, height = int(frame_wh[0]), int(frame_wh[1])
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {frame_wh}")
        self.config = config
        self.frame_wh = (width, height)
        small_h = min(config.frame_height, height)
        small_w = max(1, round(width * small_h / height))
        self.small_wh = (small_w, small_h)
        self._scale = (width / small_w, height / small_h)
        self._kernel = np.ones((3, 3), np.uint8)
        self._keep = self._build_keep_mask(config.mask)  # precomputed once: 255 = watched, 0 = masked
        self._watched = int(cv2.countNonZero(self._keep)) if self._keep is not None else small_w * small_h
        self._background: np.ndarray | None = None

    def _build_keep_mask(self, polygons: list[list[tuple[float, float]]]) -> np.ndarray | None:
        if not polygons:
            return None
        small_w, small_h = self.small_wh
        keep = np.full((small_h, small_w), 255, np.uint8)
        sx, sy = self._scale
        for polygon in polygons:
            pts = np.array([[x / sx, y / sy] for x, y in polygon], np.float64)
            cv2.fillPoly(keep, [np.round(pts).astype(np.int32)], 0)
        return keep

    def reconfigured(self, config: MotionConfig) -> MotionGate:
        """A gate with new settings for the same camera; it keeps the learnt background when the small
        frame's size is unchanged, so a settings change causes no burst of false motion."""
        gate = MotionGate(config, self.frame_wh)
        if gate.small_wh == self.small_wh:
            gate._background = self._background
        return gate

    def reset(self) -> None:
        """Forget the background (e.g. after a stream reconnect): the next frame is a first frame."""
        self._background = None

    def _small_grey(self, image: np.ndarray) -> np.ndarray:
        if image.shape[1] != self.frame_wh[0] or image.shape[0] != self.frame_wh[1]:
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, but this motion gate was built "
                             f"for {self.frame_wh[0]}x{self.frame_wh[1]}; build a new gate for the new size")
        # Grey at full size, then a bilinear shrink, then a light blur: ~0.3 ms on 768x576. INTER_AREA
        # would filter better but costs ~3 ms at a non-integer factor (576 -> 120), 10x the rest of
        # the gate; the blur on the small frame does the denoising instead (as Frigate does).
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, self.small_wh, interpolation=cv2.INTER_LINEAR)
        return cv2.GaussianBlur(small, _BLUR_KSIZE, 0)

    def _whole_frame(self, small: np.ndarray, changed: float) -> MotionResult:
        self._background = small.astype(np.float32)
        width, height = self.frame_wh
        return MotionResult([[0, 0, width, height]], changed, recalibrated=True)

    def detect(self, image: np.ndarray) -> MotionResult:
        small = self._small_grey(image)
        if self._background is None:
            return self._whole_frame(small, 1.0)
        delta = cv2.absdiff(small, cv2.convertScaleAbs(self._background))
        _, changed_map = cv2.threshold(delta, self.config.threshold, 255, cv2.THRESH_BINARY)
        if self._keep is not None:
            changed_map = cv2.bitwise_and(changed_map, self._keep)
        changed = cv2.countNonZero(changed_map) / self._watched if self._watched else 0.0
        if changed > self.config.lightning_threshold:
            return self._whole_frame(small, changed)
        boxes: list[list[int]] = []
        if changed > 0:
            if self.config.dilate:
                changed_map = cv2.dilate(changed_map, self._kernel, iterations=self.config.dilate)
                if self._keep is not None:  # dilation must not grow blobs back into masked areas
                    changed_map = cv2.bitwise_and(changed_map, self._keep)
            contours, _ = cv2.findContours(changed_map, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            boxes = [self._to_source(cv2.boundingRect(c)) for c in contours
                     if cv2.contourArea(c) >= self.config.contour_area]
        cv2.accumulateWeighted(small, self._background, self.config.frame_alpha)
        return MotionResult(boxes, changed, recalibrated=False)

    def _to_source(self, rect: Sequence[int]) -> list[int]:
        x, y, w, h = rect
        sx, sy = self._scale
        width, height = self.frame_wh
        return [max(0, math.floor(x * sx)), max(0, math.floor(y * sy)),
                min(width, math.ceil((x + w) * sx)), min(height, math.ceil((y + h) * sy))]
