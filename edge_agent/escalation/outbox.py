"""The spool's sender: a thread that publishes what the spool holds, oldest first, whenever the
connection is up, and deletes each message once the broker acknowledged it.

Bounded rate (a token bucket), so a gateway coming back from a long outage does not flood the broker
or trip IoT Core's per-connection limit (100 publishes/s); a window of messages is in flight at once,
so the rate is reached over a link with real round-trip time.
"""

from __future__ import annotations

import logging
import threading
import time

from edge_agent.escalation.base import TransportError
from edge_agent.escalation.connection import MqttConnection
from edge_agent.escalation.spool import Spool

log = logging.getLogger(__name__)


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float):
        self.rate, self.burst = rate_per_s, burst
        self.tokens, self.last = burst, time.monotonic()

    def take(self, stop: threading.Event) -> bool:
        """Wait for one token; False if `stop` was set meanwhile."""
        while not stop.is_set():
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            stop.wait((1 - self.tokens) / self.rate)
        return False


class SpoolSender:
    def __init__(self, spool: Spool, connection: MqttConnection, rate_per_s: float = 50.0, window: int = 16,
                 ack_timeout_s: float = 10.0):
        self.spool, self.connection = spool, connection
        self.bucket = TokenBucket(rate_per_s, burst=max(1.0, min(float(window), rate_per_s)))
        self.window, self.ack_timeout_s = window, ack_timeout_s
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-sender", daemon=True)

    def start(self) -> SpoolSender:
        self._thread.start()
        return self

    def notify(self) -> None:
        """Something was spooled: look now rather than at the next poll."""
        self._wake.set()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (True) or the time is up (False); for a clean shutdown."""
        deadline = time.monotonic() + timeout_s
        while self.spool.rows and time.monotonic() < deadline and self.connection.connected:
            self._wake.set()
            time.sleep(0.05)
        return not self.spool.rows

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:  # started
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.connection.wait_connected(0.5):
                continue
            items = self.spool.peek(self.window)
            if not items:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            in_flight = []
            for item in items:
                if not self.bucket.take(self._stop):
                    return
                try:
                    in_flight.append((item.id, self.connection.publish_start(item.topic, item.payload)))
                except TransportError as exc:
                    log.debug("spool send paused: %s", exc)
                    break
            deadline = time.monotonic() + self.ack_timeout_s
            acked = [i for i, pending in in_flight if pending.wait(max(0.0, deadline - time.monotonic()))]
            self.spool.ack(acked)
            self.sent += len(acked)
            missed = [i for i, _ in in_flight if i not in set(acked)]
            if missed or not in_flight:
                self.failed += len(missed)
                self.spool.attempted(missed)
                self._stop.wait(1.0)  # the link is in trouble: back off, then start again from the oldest
