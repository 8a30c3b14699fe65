"""Per-gateway batching for the mqtt and iot-core transports: the escalations of all the gateway's cameras
that arrive within `escalation.batch_window_ms` leave as one message (wire version 2, contracts/batch.py),
one send every window (several messages only when the window's escalations overflow one), so the cloud runs
one router invocation, one endpoint call and one verdict message for all of them. A window with a single
escalation sends it as a plain version-1 message.

A window whose escalations do not fit one message (the 128 KB IoT limit, or MAX_BATCH) sends them all at its
end, in as many full messages as they need: a busy gateway's escalations never wait more than one window.
(Holding the rest for the next window, as it once did, made the queue grow without bound once a gateway's
escalations per window outgrew one message: 179 cameras at 10% escalated and ~28 KB each is 4.5 per 250 ms
window for 4 that fit.) The cost model (costing/occupancy.py) prices exactly this.

Guarantees kept: a batch the broker does not acknowledge is spooled escalation by escalation (version 1,
each naming its batch id, replayed later, deduplicated in the cloud: the router claims once per batch and an
escalation re-sent alone takes its time from the same claim) and each waiting escalation is told at once, so
its frame is decided at the edge, as without batching."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from contracts.batch import ENVELOPE_BYTES, MAX_BATCH, EscalationBatch
from contracts.codec import MAX_MESSAGE_BYTES, WireError
from contracts.wire import EscalationRequest
from edge_agent.escalation.base import TransportError


def _naming(request: EscalationRequest, batch_id: str) -> EscalationRequest:
    """The escalation re-sent alone, naming the batch that carried it. Defensive: were the name to take it over the
    IoT limit (it cannot: an item of a batch of several left room for the others) it is re-sent as it was."""
    if not batch_id:
        return request
    named = replace(request, batch_id=batch_id)
    try:
        named.to_bytes()
    except WireError:
        return request
    return named


class Batcher:
    def __init__(self, window_s: float, publish: Callable[[bytes], None],
                 spool: Callable[[EscalationRequest], None]):
        self.window_s = window_s
        self._publish = publish
        self._spool = spool
        self._pending: list[tuple[EscalationRequest, Callable[[Exception | None], None]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._last = 0.0
        self.batches = 0  # messages sent carrying more than one escalation
        self.overflows = 0  # windows whose escalations needed more than one message
        self.messages = 0
        self.escalations = 0
        self._thread = threading.Thread(target=self._run, name="escalation-batcher", daemon=True)
        self._thread.start()

    def add(self, request: EscalationRequest, sent: Callable[[Exception | None], None]) -> None:
        """Queue one escalation; `sent(None)` once the broker acknowledged it, `sent(error)` if it was spooled."""
        with self._cond:
            if self._closed:
                raise TransportError("the escalation batcher is closed")
            self._pending.append((request, sent))
            self._cond.notify()

    def _take(self) -> list[tuple[EscalationRequest, Callable[[Exception | None], None]]]:
        """What fits one message: in arrival order, at most MAX_BATCH, within the IoT payload limit."""
        size, n = ENVELOPE_BYTES, 0
        for request, _ in self._pending[:MAX_BATCH]:
            if n and size + len(request.to_bytes()) + 1 > MAX_MESSAGE_BYTES:
                break
            size += len(request.to_bytes()) + 1
            n += 1
        taken, self._pending = self._pending[:n], self._pending[n:]
        return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
            wait = self._last + self.window_s - time.monotonic()
            if wait > 0 and not self._closed:  # one send per window: the rest of it gathers more
                time.sleep(wait)
            with self._cond:
                due = len(self._pending)  # this window's escalations: all leave now, in full messages
            self._last = time.monotonic()
            sent = 0
            while sent < due:
                with self._cond:
                    taken = self._take()
                if not taken:
                    break
                self._send(taken)
                sent += len(taken)
                self.overflows += sent < due and sent == len(taken)

    def _send(self, taken: list[tuple[EscalationRequest, Callable[[Exception | None], None]]]) -> None:
        requests = tuple(r for r, _ in taken)
        batch_id = str(uuid.uuid4()) if len(requests) > 1 else ""
        payload = EscalationBatch(batch_id, requests, resends_named=True).to_bytes() if batch_id \
            else requests[0].to_bytes()
        try:
            self._publish(payload)
        except TransportError as exc:
            for request, sent in taken:  # each names the batch: the cloud may have it (an unacknowledged publish)
                self._spool(_naming(request, batch_id))
                sent(exc)
            return
        self.messages += 1
        self.batches += len(requests) > 1
        self.escalations += len(requests)
        for _, sent in taken:
            sent(None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)
