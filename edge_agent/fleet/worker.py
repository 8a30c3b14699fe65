"""A thread with a queue of tasks: MQTT handlers run on the client's network thread and must neither
block nor publish-and-wait, so they hand their work to one of these."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
_STOP = object()


class Worker:
    def __init__(self, name: str, depth: int = 100):
        self.name = name
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = 0

    def start(self) -> Worker:
        self._thread.start()
        return self

    def submit(self, task: Callable[[], object]) -> bool:
        """Queue a task; False (and counted) when the queue is full, e.g. a flood of bad messages."""
        try:
            self._queue.put_nowait(task)
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("%s: queue full, a task was dropped", self.name)
            return False

    def _run(self) -> None:
        while (task := self._queue.get()) is not _STOP:
            try:
                task()
            except Exception:
                log.exception("%s: task failed", self.name)

    def close(self, timeout_s: float = 5.0) -> None:
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)
