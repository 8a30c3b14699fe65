"""A wide camera made of real footage: a clip tiled into a `cols` x `rows` video wall, each cell the
same clip started a few seconds later. Every object keeps its real size in pixels, so a 320x240 highway
clip becomes a 1280x720 camera whose vehicles are 15-40 px tall: what a small-object lever (tiles, crops)
must be measured on when no such camera is at hand.

    python -m edge_agent.bench.wall ../shared/data/footage/highway-cctv.avi out/highway-wall.avi
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from models.student.scenes import sample_frames


def make_wall(src: Path, out: Path, cols: int = 4, rows: int = 3, stagger_s: float = 2.0) -> Path:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    cap.release()
    fps = fps if 0 < fps < 240 else 10.0
    frames = sample_frames(src, fps)  # every frame
    h, w = frames[0].shape[:2]
    shift = int(round(stagger_s * fps))
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), fps, (cols * w, rows * h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {out}: OpenCV has no MJPG writer here")
    try:
        for t in range(len(frames)):
            cells = [frames[(t + k * shift) % len(frames)] for k in range(cols * rows)]
            wall = np.vstack([np.hstack(cells[r * cols:(r + 1) * cols]) for r in range(rows)])
            writer.write(wall)
    finally:
        writer.release()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a clip (its frames become the wall's cells)")
    p.add_argument("out", help="the wall clip to write (.avi, MJPG)")
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--rows", type=int, default=3)
    args = p.parse_args(argv)
    print(make_wall(Path(args.src), Path(args.out), args.cols, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
