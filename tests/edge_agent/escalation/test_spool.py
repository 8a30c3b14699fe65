"""The durable spool: order, one row per message id, bounds with counted evictions that survive a
restart, bounded size on disk, and a replay rate that stays under its bound."""

from __future__ import annotations

import time

import pytest

from contracts.wire import MAX_MESSAGE_BYTES
from edge_agent.escalation.outbox import SpoolSender
from edge_agent.escalation.paho_client import PahoConnection
from edge_agent.escalation.spool import Spool
from tests.edge_agent.aws_side import CloudResponder, wait_until


def test_order_dedup_ack_and_reopen(tmp_path):
    spool = Spool(tmp_path / "s.sqlite")
    for i in range(5):
        assert spool.put("event", f"m{i}", "t", b"x" * 10)
    assert not spool.put("event", "m2", "t", b"again")  # the same message id is kept once
    assert [i.message_id for i in spool.peek(10)] == ["m0", "m1", "m2", "m3", "m4"]
    spool.ack([i.id for i in spool.peek(2)])
    spool.close()
    again = Spool(tmp_path / "s.sqlite")
    assert (again.rows, again.bytes) == (3, 30)
    assert [i.message_id for i in again.peek(10)] == ["m2", "m3", "m4"]
    again.close()


def test_full_spool_evicts_the_oldest_and_counts_them_across_restarts(tmp_path, caplog):
    spool = Spool(tmp_path / "s.sqlite", max_rows=3)
    for i in range(5):
        spool.put("escalation" if i % 2 else "event", f"m{i}", "t", b"x")
    assert [i.message_id for i in spool.peek(10)] == ["m2", "m3", "m4"]
    assert (spool.evicted(), spool.evicted("event"), spool.evicted("escalation")) == (2, 1, 1)
    warnings = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
    assert len(warnings) == 1 and "evicted the 1 oldest" in warnings[0]  # then one a minute, with the count
    spool.close()
    assert Spool(tmp_path / "s.sqlite").evicted() == 2


def test_byte_bound_keeps_the_file_small(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", max_bytes=1024 * 1024)
    payload = bytes(range(256)) * 80  # 20 KB, like a small escalation
    for i in range(400):  # 8 MB offered
        spool.put("escalation", f"m{i}", "t", payload)
    assert spool.bytes <= 1024 * 1024 and spool.rows == 1024 * 1024 // len(payload)
    spool.close()
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert on_disk < 6 * 1024 * 1024, f"spool files take {on_disk} bytes for a 1 MB bound"


def test_an_oversized_message_is_refused_not_stored(tmp_path):
    spool = Spool(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="over the 131072-byte"):
        spool.put("escalation", "big", "t", b"x" * (MAX_MESSAGE_BYTES + 1))
    assert spool.rows == 0


@pytest.mark.slow
def test_replay_is_in_order_and_rate_bounded(broker, tmp_path):
    spool = Spool(tmp_path / "s.sqlite")
    for i in range(60):
        spool.put("event", f"m{i:03d}", "framesieve/gw-rate/events", b"{}")
    cloud = CloudResponder(broker.port, client_id="rate-reader")
    received: list[float] = []
    cloud.handle = lambda topic, payload: received.append(time.monotonic())
    conn = PahoConnection("127.0.0.1", broker.port, "gw-rate").start()
    sender = SpoolSender(spool, conn, rate_per_s=40.0, window=8)
    try:
        assert conn.wait_connected(10)
        started = time.monotonic()
        sender.start()
        wait_until(lambda: spool.rows == 0 and len(received) == 60, 10, "the replay")
        elapsed = time.monotonic() - started
        # 60 messages at 40/s with a burst of 8: at least (60 - 8) / 40 = 1.3 s.
        assert elapsed >= 1.25, f"replayed 60 messages in {elapsed:.2f} s, faster than 40/s"
        print(f"replay: 60 messages in {elapsed:.2f} s = {60 / elapsed:.1f}/s (bound 40/s)")
    finally:
        sender.close()
        conn.close()
        cloud.close()
