"""Frames of live cameras whose final answer is not in yet, in frame order per camera.

A camera's frames are finished in the order they were sampled: a frame waiting for the cloud holds the
camera's later frames (each already decided by the cascade, or carried) until its answer, an error
verdict or its timeout arrives; then they are finished one after the other, so the event log and the
carried decisions read in frame order. Other cameras never wait for it.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import deque

from edge_agent.app.camera import Step
from edge_agent.events import FrameEvent

Slot = Step | FrameEvent  # a decided frame, or one carried (or decided without the student) from the past


def camera_of(slot: Slot) -> str:
    return slot.camera if isinstance(slot, FrameEvent) else slot.event.camera


def ready(slot: Slot) -> bool:
    return isinstance(slot, FrameEvent) or slot.ready()


class InFlight:
    def __init__(self) -> None:
        self._queues: dict[str, deque[Slot]] = {}
        self.held_max = 0  # the most frames one camera had waiting at once (for the bench and tests)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def busy(self, camera: str) -> bool:
        return bool(self._queues.get(camera))

    def add(self, slot: Slot) -> None:
        queue = self._queues.setdefault(camera_of(slot), deque())
        queue.append(slot)
        self.held_max = max(self.held_max, len(queue))

    def take_ready(self) -> list[Slot]:
        """Every camera's frames that can be finished now, in frame order."""
        out: list[Slot] = []
        for queue in self._queues.values():
            while queue and ready(queue[0]):
                out.append(queue.popleft())
        return out

    def take_all(self, timeout_s: float) -> list[Slot]:
        """Everything, after waiting up to `timeout_s` for the answers still on their way (at shutdown)."""
        futures = [s.ticket.future for q in self._queues.values() for s in q
                   if isinstance(s, Step) and s.ticket is not None and s.ticket.future is not None]
        deadline = time.monotonic() + timeout_s
        concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        out = [s for q in self._queues.values() for s in q]
        self._queues.clear()
        return out
