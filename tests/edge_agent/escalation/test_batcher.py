"""The gateway's batcher: one send per window (an overflowing window all at once, in full messages), a window's
escalations together (a lone one as a plain version-1 message), never over the IoT limit, and a batch the
broker refuses spooled item by item."""

from __future__ import annotations

import json
import threading
import time

from contracts.codec import MAX_MESSAGE_BYTES
from contracts.wire import Crop, EscalationRequest
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.batcher import Batcher

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def request(mid: str, size: int = 20) -> EscalationRequest:
    return EscalationRequest(mid, "cam", 1, 0.1, "uncertain",
                             (Crop(0, (0.0, 0.0, 8.0, 8.0), JPEG + b"\x00" * size, (8, 8)),))


def test_a_window_gathers_escalations_and_a_lone_one_goes_as_version_1():
    sent: list[tuple[float, dict]] = []
    done = threading.Semaphore(0)
    batcher = Batcher(0.3, lambda p: sent.append((time.monotonic(), json.loads(p))), lambda r: None)
    try:
        batcher.add(request("m0"), lambda exc: done.release())
        assert done.acquire(timeout=5)  # an idle gateway's escalation leaves at once
        for k in range(1, 4):
            batcher.add(request(f"m{k}"), lambda exc: done.release())
        for _ in range(3):
            assert done.acquire(timeout=5)
    finally:
        batcher.close()
    kinds = [m.get("type") for _, m in sent]
    assert kinds == ["escalation", "escalation_batch"]  # the first at once, the rest after the window
    assert [e["message_id"] for e in sent[1][1]["escalations"]] == ["m1", "m2", "m3"]
    assert sent[1][0] - sent[0][0] >= 0.29  # at most one message per window
    assert (batcher.messages, batcher.escalations, batcher.batches) == (2, 4, 1)


def test_a_batch_never_exceeds_the_iot_limit():
    sizes: list[int] = []
    done = threading.Semaphore(0)
    batcher = Batcher(0.2, lambda p: sizes.append(len(p)), lambda r: None)
    try:
        for k in range(6):  # ~53 KB each once base64-encoded: three do not fit one message
            batcher.add(request(f"m{k}", 40_000), lambda exc: done.release())
        for _ in range(6):
            assert done.acquire(timeout=5)
    finally:
        batcher.close()
    assert all(s <= MAX_MESSAGE_BYTES for s in sizes) and len(sizes) >= 3


def test_a_refused_batch_is_spooled_escalation_by_escalation_and_each_waiter_told():
    spooled: list[str] = []
    told: list[Exception | None] = []
    done = threading.Semaphore(0)

    def refuse(payload: bytes) -> None:
        raise TransportError("not connected to the broker")

    names: list[str] = []
    batcher = Batcher(0.2, refuse, lambda r: (spooled.append(r.message_id), names.append(r.batch_id)))
    try:
        for k in range(3):
            batcher.add(request(f"m{k}"), lambda exc: (told.append(exc), done.release()))
        for _ in range(3):
            assert done.acquire(timeout=5)
    finally:
        batcher.close()
    assert sorted(spooled) == ["m0", "m1", "m2"]  # nothing lost: each replayed later as version 1
    # each names the batch it left in (the cloud claims a batch's time once; a re-send finds it), a lone one none
    batched = [n for n in names if n]
    assert len(batched) >= 2 and len(set(batched)) == 1 and "" not in names[1:]
    assert len(told) == 3 and all(isinstance(e, TransportError) for e in told)
    assert batcher.messages == 0


def test_a_window_that_overflows_one_message_sends_all_of_it_at_once():
    """Six ~53 KB escalations in one window need three messages: all three leave at the window's end, none is
    held for a later window (a held remainder made a busy gateway's queue grow without bound)."""
    sent: list[float] = []
    done = threading.Semaphore(0)
    batcher = Batcher(0.4, lambda p: sent.append(time.monotonic()), lambda r: None)
    try:
        batcher.add(request("m0"), lambda exc: done.release())
        assert done.acquire(timeout=5)  # the idle gateway's first escalation leaves at once; the window starts
        for k in range(1, 7):
            batcher.add(request(f"m{k}", 40_000), lambda exc: done.release())
        for _ in range(6):
            assert done.acquire(timeout=5)
    finally:
        batcher.close()
    assert len(sent) == 4 and batcher.escalations == 7
    assert sent[1] - sent[0] >= 0.39  # the window was kept
    assert sent[3] - sent[1] < 0.2  # the overflow did not wait for further windows
    assert batcher.overflows == 1
