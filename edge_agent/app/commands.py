"""Commands from other threads (fleet, specialization), run by the agent's loop between batches.

Each command comes with its Future. A handler returns False to be offered the next batch again (it needs
a live frame of a camera this batch does not hold); it starts the work with
`future.set_running_or_notify_cancel()`, so a command its caller cancelled never runs. At close, every
command not finished gets AgentStopped.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from edge_agent.control import AgentStopped, Command
from edge_agent.pipeline.sources import SampledFrame

log = logging.getLogger(__name__)
Handler = Callable[[Command, concurrent.futures.Future, list[SampledFrame]], bool]


class CommandQueue:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Command, concurrent.futures.Future]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._open: set[concurrent.futures.Future] = set()  # every future not resolved yet

    def put(self, command: Command) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                future.set_exception(AgentStopped(f"the agent has stopped; {type(command).__name__} not run"))
                return future
            self._open.add(future)
        future.add_done_callback(self._forget)
        self._queue.put((command, future))
        return future

    def _forget(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._open.discard(future)

    def run(self, frames: list[SampledFrame], handle: Handler) -> None:
        """Offer every command queued now to `handle`, with this batch's frames."""
        for _ in range(self._queue.qsize()):
            try:
                command, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if future.cancelled():
                continue
            try:
                if not handle(command, future, frames):
                    self._queue.put((command, future))
            except Exception as exc:  # a bad command must not stop the cameras
                log.exception("%s failed; the agent keeps its previous state", type(command).__name__)
                _resolve(future, exc)

    def close(self) -> None:
        """No more commands; whatever has no outcome yet gets AgentStopped."""
        with self._lock:
            self._closed = True
            pending = list(self._open)
        for future in pending:
            _resolve(future, AgentStopped("the agent stopped before the command's outcome was known"))


def _resolve(future: concurrent.futures.Future, exc: BaseException) -> None:
    """Fail a command's future whether it is queued or under way; one cancelled or resolved stays so."""
    try:
        if future.running() or future.set_running_or_notify_cancel():
            future.set_exception(exc)
    except (concurrent.futures.InvalidStateError, RuntimeError):
        pass  # resolved meanwhile
