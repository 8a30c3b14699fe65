"""Regions ("crop and zoom"): where in a frame the student should look, given the motion boxes.

Why: the student sees its input at e.g. 320x192. A person 40 px tall in a 768x576 frame shrinks to
~13 px when the whole frame is squeezed into the model, and detection suffers; a crop around the
motion, at the model's aspect ratio, shows the same person at up to 2x. But each region is one model
run, so crops are only worth it while motion is small and in a few places: many or large areas of
motion -> one region, the whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_MAX_ZOOM = 2.0  # a crop is at least model_wh / 2: the student never sees a region blown up >2x
TILE_OVERLAP = 0.1  # neighbouring tiles share this share of a tile, so an object on a seam is whole in one


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in source pixels (x2, y2 exclusive)
    whole_frame: bool = False

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> int:
        return self.width * self.height

    def crop(self, image: np.ndarray) -> np.ndarray:
        """A view into `image` (no copy)."""
        x1, y1, x2, y2 = self.box
        return image[y1:y2, x1:x2]

    def to_source(self, xyxy: np.ndarray | Sequence[float]) -> np.ndarray:
        """Boxes (..., 4) in this crop's pixels -> the same boxes in source pixels (a new array)."""
        arr = np.asarray(xyxy)
        if arr.shape[-1:] != (4,):
            raise ValueError(f"expected boxes of shape (..., 4), got {arr.shape}")
        out = arr.astype(np.result_type(arr.dtype, np.float32), copy=True)
        out[..., 0::2] += self.box[0]
        out[..., 1::2] += self.box[1]
        return out


def whole_frame_regions(frame_wh: tuple[int, int], model_wh: tuple[int, int],
                        max_downscale: float = 3.0) -> list[Region]:
    """A look at the whole frame: one region, or a grid of overlapping tiles when the frame is more than
    `max_downscale` times the model's input on either axis. Why: a 20 px vehicle on a 1280x720 camera is
    5 px at 320x192, below what any detector finds; in 2x2 tiles it is 10 px. Each tile is one more
    student run (batched), paid only on whole-frame looks of large frames. Every tile is marked
    `whole_frame`: together they are the whole frame."""
    width, height = int(frame_wh[0]), int(frame_wh[1])
    cols = max(1, math.ceil(width / (model_wh[0] * max_downscale)))
    rows = max(1, math.ceil(height / (model_wh[1] * max_downscale)))
    if cols == rows == 1:
        return [Region((0, 0, width, height), whole_frame=True)]
    tw, th = width / cols, height / rows
    pad_x, pad_y = tw * TILE_OVERLAP / 2, th * TILE_OVERLAP / 2
    tiles = []
    for r in range(rows):
        for c in range(cols):
            tiles.append(Region((max(0, math.floor(c * tw - pad_x)), max(0, math.floor(r * th - pad_y)),
                                 min(width, math.ceil((c + 1) * tw + pad_x)),
                                 min(height, math.ceil((r + 1) * th + pad_y))), whole_frame=True))
    return tiles


def _clip_boxes(boxes: Sequence[Sequence[float]], width: int, height: int) -> list[tuple[float, ...]]:
    clipped: list[tuple[float, ...]] = []
    for box in boxes:
        x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
        x2, y2 = min(float(width), float(box[2])), min(float(height), float(box[3]))
        if x2 > x1 and y2 > y1:
            clipped.append((x1, y1, x2, y2))
    return clipped


def _union_fraction(boxes: list[tuple[float, ...]], width: int, height: int) -> float:
    """Share of the frame covered by the union of the boxes (rasterised on a coarse grid)."""
    step = max(1, max(width, height) // 64)  # ~64 cells across: plenty for a share compared with 0.5
    covered = np.zeros((math.ceil(height / step), math.ceil(width / step)), bool)
    for x1, y1, x2, y2 in boxes:
        covered[int(y1 // step):math.ceil(y2 / step), int(x1 // step):math.ceil(x2 / step)] = True
    return float(covered.mean())


def _fit(box: tuple[float, ...], frame_wh: tuple[int, int], model_wh: tuple[int, int],
         margin: float) -> tuple[int, int, int, int]:
    """The crop for one motion box: box + margin, at least model/2, grown to the model's aspect ratio,
    never larger than the frame, centred on the box and shifted inside the frame."""
    width, height = frame_wh
    x1, y1, x2, y2 = box
    w = (x2 - x1) * (1 + 2 * margin)
    h = (y2 - y1) * (1 + 2 * margin)
    w = max(w, model_wh[0] / _MAX_ZOOM)
    h = max(h, model_wh[1] / _MAX_ZOOM)
    aspect = model_wh[0] / model_wh[1]
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    w, h = min(w, width), min(h, height)  # a frame narrower than the aspect: the model stretches it to its input
    left = min(max((x1 + x2) / 2 - w / 2, 0.0), width - w)
    top = min(max((y1 + y2) / 2 - h / 2, 0.0), height - h)
    return (max(0, math.floor(left)), max(0, math.floor(top)),
            min(width, math.ceil(left + w)), min(height, math.ceil(top + h)))


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def plan_regions(motion_boxes: Sequence[Sequence[float]], frame_wh: tuple[int, int],
                 model_wh: tuple[int, int], whole_frame_fraction: float = 0.5, margin: float = 0.15,
                 max_regions: int = 3, max_downscale: float = 3.0) -> list[Region]:
    """Crops for the student around the motion boxes (source pixels), or [whole frame], or [] (no motion).

    Whole frame when the motion covers more than `whole_frame_fraction` of the frame, when more than
    `max_regions` crops remain after merging, or when the crops together are no smaller than the
    frame (one run of the whole frame is then cheaper and loses nothing). A whole-frame look at a frame
    far larger than the model is tiled (`whole_frame_regions`).
    """
    width, height = int(frame_wh[0]), int(frame_wh[1])
    if width <= 0 or height <= 0 or model_wh[0] <= 0 or model_wh[1] <= 0:
        raise ValueError(f"frame_wh {frame_wh} and model_wh {model_wh} must be positive")
    whole = whole_frame_regions((width, height), model_wh, max_downscale)
    boxes = _clip_boxes(motion_boxes, width, height)
    if not boxes:
        return []
    if _union_fraction(boxes, width, height) > whole_frame_fraction:
        return whole

    # Each group of motion boxes gets one crop; groups whose crops overlap are merged and re-fitted
    # around their union, until no two crops overlap.
    groups = [[b] for b in boxes]
    crops = [_fit(b, (width, height), model_wh, margin) for b in boxes]
    merged = True
    while merged and len(crops) > 1:
        merged = False
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                if _overlap(crops[i], crops[j]):
                    groups[i] += groups.pop(j)
                    crops.pop(j)
                    g = groups[i]
                    union = (min(b[0] for b in g), min(b[1] for b in g),
                             max(b[2] for b in g), max(b[3] for b in g))
                    crops[i] = _fit(union, (width, height), model_wh, margin)
                    merged = True
                    break
            if merged:
                break

    if len(crops) > max_regions:
        return whole
    if sum((c[2] - c[0]) * (c[3] - c[1]) for c in crops) >= width * height:
        return whole
    return [Region(c) for c in sorted(crops, key=lambda c: (c[1], c[0]))]
