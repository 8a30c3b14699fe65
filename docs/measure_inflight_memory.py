"""What an awaited escalation holds in memory (README, `escalation.max_in_flight`): N real frames built into
escalation requests as the agent builds them (the whole frame, downscaled to `max_px`, JPEG quality `q`) and held
with their encoded messages, as a pooled worker holds them while it waits; the resident memory they add.

    python docs/measure_inflight_memory.py ~/.cache/framesieve/footage/vtest.avi 256 416 70
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from contracts.detections import Detections
from edge_agent.escalation.crops import build_lean_request
from edge_agent.fleet.telemetry import memory_mb


def main(path: str, n: int, px: int, q: int) -> None:
    cap = cv2.VideoCapture(path)
    frames = []
    while len(frames) < 50:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        raise SystemExit(f"{path}: no frames could be read")
    h, w = frames[0].shape[:2]
    held = []
    base = memory_mb()
    for i in range(n):
        request = build_lean_request("c", i, float(i), frames[i % len(frames)], [(0, 0, w, h)], "uncertain",
                                     Detections.empty(), "s", q, max_px=px)
        held.append((request, request.to_bytes()))
    grown = memory_mb() - base
    sizes = [len(b) for _, b in held]
    print(f"{n} held, {px} px q{q}: message mean {np.mean(sizes) / 1024:.1f} KB, max {max(sizes) / 1024:.1f} KB; "
          f"resident +{grown:.1f} MB = {grown * 1024 / n:.0f} KB each")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
