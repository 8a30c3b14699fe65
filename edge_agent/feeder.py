"""One reader thread per camera source, feeding sampled frames into one bounded queue.

Threads keep a slow or reconnecting camera from stalling the others, and let decoding overlap with
the model. The queue is bounded so a fast file source cannot run ahead and fill memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from edge_agent.pipeline.sources import FrameSource, SampledFrame

log = logging.getLogger(__name__)
_END = object()


class FrameFeeder:
    def __init__(self, sources: Sequence[FrameSource], stop: threading.Event, depth_per_source: int = 2):
        self.sources = list(sources)
        self.stop = stop
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, depth_per_source * len(self.sources)))
        self._live = len(self.sources)
        self._threads = [threading.Thread(target=self._read, args=(s,), name=f"source-{s.camera}", daemon=True)
                         for s in self.sources]

    def start(self) -> FrameFeeder:
        for t in self._threads:
            t.start()
        return self

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, source: FrameSource) -> None:
        try:
            while not self.stop.is_set():
                frame = source.read_sampled()
                if frame is None or not self._put(frame):
                    break
        except Exception:  # a broken source must not take the agent down with it
            log.exception("camera %s: source failed", source.camera)
        finally:
            self._put(_END)

    def batch(self, max_frames: int, wait_s: float = 0.05, idle_s: float | None = None) -> list[SampledFrame] | None:
        """Up to `max_frames` frames (waiting for the first; with `idle_s`, an empty list after that long
        without one, so the caller can finish what the cloud answered meanwhile); None once every source
        has ended."""
        frames: list[SampledFrame] = []
        idle_until = None if idle_s is None else time.monotonic() + idle_s
        while self._live > 0 and not self.stop.is_set():
            try:
                item = self.queue.get(timeout=wait_s if frames else 0.5 if idle_s is None else idle_s)
            except queue.Empty:
                if frames or (idle_until is not None and time.monotonic() >= idle_until):
                    break
                continue
            if item is _END:
                self._live -= 1
                continue
            frames.append(item)
            if len(frames) >= max_frames:
                break
        if not frames and (self._live == 0 or self.stop.is_set()):
            return None
        return frames

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)
