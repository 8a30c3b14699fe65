"""A circuit breaker in front of the cloud: while it is failing, the edge decides at once instead of
waiting out a timeout for every frame, and one escalation now and then probes whether it is back.

- closed: every escalation is sent. It opens when, within `window_s`, at least `failures` escalations
  failed (timeout, transport error, error verdict) and they were at least `failure_ratio` of those finished.
- open: none is sent (the frame is decided at the edge, counted as cloud_open); after `probe_interval_s`
  the next escalation goes through as a probe (half-open).
- half-open: only the probe is in flight; its success closes the breaker, its failure opens it again for
  another `probe_interval_s`.

Thread-safe: `allow` runs on the agent's loop, `record` on the escalation workers. Each transition is one
structured log line (`breaker`, `state`, `why` fields) and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from edge_agent.config import BreakerSettings

log = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # the metric's value


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self.state = CLOSED
        self.opens = 0  # times it opened
        self.probes = 0  # escalations let through while open
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, failed) within the window
        self._opened_s = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May an escalation be sent now? While open, True once per probe interval (that one is the probe)."""
        if not self.settings.enabled:
            return True
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and self.clock() - self._opened_s >= self.settings.probe_interval_s:
                self._move(HALF_OPEN, f"{self.settings.probe_interval_s:g} s since it opened: one escalation "
                                      "probes the cloud")
            if self.state == HALF_OPEN and not self._probing:
                self._probing = True
                self.probes += 1
                return True
            return False

    def release(self) -> None:
        """The escalation `allow` let through was never sent: a probe slot it held is free again."""
        with self._lock:
            self._probing = False

    def record(self, ok: bool, why: str = "") -> None:
        """The outcome of an escalation that was sent."""
        if not self.settings.enabled:
            return
        now = self.clock()
        with self._lock:
            if self.state != CLOSED:
                if self._probing:  # answers from before it opened do not decide; the probe's does
                    self._probing = False
                    if ok:
                        self._outcomes.clear()
                        self._move(CLOSED, "the probe was answered")
                    else:
                        self._open(now, f"the probe failed: {why}")
                elif ok and self.state == OPEN:
                    self._outcomes.clear()
                    self._move(CLOSED, "a late answer arrived")
                return
            self._outcomes.append((now, not ok))
            while self._outcomes and self._outcomes[0][0] < now - self.settings.window_s:
                self._outcomes.popleft()
            failed = sum(f for _, f in self._outcomes)
            s = self.settings
            if not ok and failed >= s.failures and failed >= s.failure_ratio * len(self._outcomes):
                self._open(now, f"{failed} of the last {len(self._outcomes)} escalations within {s.window_s:g} s "
                                f"failed, the last: {why}")

    def _open(self, now: float, why: str) -> None:
        self._opened_s = now
        self.opens += 1
        self._move(OPEN, why)

    def _move(self, state: str, why: str) -> None:
        old, self.state = self.state, state
        level = logging.WARNING if state == OPEN else logging.INFO
        log.log(level, "cloud circuit breaker %s -> %s: %s", old, state, why,
                extra={"breaker": "cloud", "state": state, "previous": old, "why": why})

    def stats(self) -> dict[str, object]:
        return {"state": self.state, "opens": self.opens, "probes": self.probes}
