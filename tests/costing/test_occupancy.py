"""Batch occupancy derived from the fleet (costing/occupancy.py): the formula against a simulation of the
batcher's own rules, the per-message cap against what the real Batcher puts in one message, and the cost
model pricing the derived figure at each fleet size (the flags still override)."""

from __future__ import annotations

import json
import math
import random
import threading

import pytest

from contracts.batch import MAX_BATCH
from contracts.wire import Crop, EscalationRequest
from costing.occupancy import message_cap, occupancy, per_message
from costing.pricing import load_pricing
from costing.summary import parse_summary
from edge_agent.bench.cost import break_even_escalation_fraction, build_report
from edge_agent.bench.cost_model import Inputs, agent_window_ms, baseline_cost, hybrid_cost
from edge_agent.config.escalation import EscalationSettings
from edge_agent.escalation.batcher import Batcher


def _simulate(lam: float, cap: int, cycles: int, rng: random.Random) -> float:
    """The batcher's rules in event time (window 1): an idle escalation leaves alone and opens a window; at the
    window's end everything that came leaves in ceil(n / cap) messages; an empty window makes the next one idle."""
    escalations = messages = 0
    for _ in range(cycles):
        n, t = 0, rng.expovariate(lam)
        while t <= 1.0:
            n, t = n + 1, t + rng.expovariate(lam)
        if n == 0:  # the next escalation finds the gateway idle: sent at once, alone
            escalations, messages = escalations + 1, messages + 1
        else:
            escalations, messages = escalations + n, messages + math.ceil(n / cap)
    return escalations / messages


@pytest.mark.parametrize("lam, cap", [(0.25, 4), (1.0, 64), (2.0, 4), (4.17, 4), (12.0, 5)])
def test_the_formula_matches_a_simulation_of_the_batchers_rules(lam, cap):
    mean, _ = per_message(lam, cap)
    assert _simulate(lam, cap, 40_000, random.Random(7)) == pytest.approx(mean, rel=0.02)


def test_without_a_cap_it_is_lambda_plus_the_idle_share_not_the_fixed_window_mean():
    mean, overflow = per_message(2.0, 10_000)
    assert mean == pytest.approx(2.0 + math.exp(-2.0))
    assert mean < 2.0 / (1 - math.exp(-2.0))  # the idle sends make messages smaller than a fixed window's
    assert overflow == 0.0
    assert per_message(0.0, 4) == (1.0, 0.0)


def _request(mid: str, jpeg_bytes: int) -> EscalationRequest:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(jpeg_bytes)
    return EscalationRequest(mid, "cam", 1, 0.1, "uncertain", (Crop(0, (0.0, 0.0, 8.0, 8.0), jpeg, (8, 8)),))


@pytest.mark.parametrize("jpeg_bytes", [20_000, 7_000, 300])
def test_the_cap_is_what_the_real_batcher_puts_in_one_message(jpeg_bytes):
    """Every escalation queued in one window: the batcher's first batch holds exactly message_cap of them."""
    size = len(_request("m00", jpeg_bytes).to_bytes())
    cap, by = message_cap(size)
    sent: list[dict] = []
    entered, gate, done = threading.Event(), threading.Event(), threading.Semaphore(0)

    def publish(payload: bytes) -> None:
        entered.set()
        gate.wait(5)
        sent.append(json.loads(payload))

    batcher = Batcher(0.3, publish, lambda r: None)
    try:
        batcher.add(_request("m00", jpeg_bytes), lambda exc: done.release())  # the idle send, held at the broker
        assert entered.wait(5)
        n = min(cap + 3, MAX_BATCH + 3)
        for k in range(1, n + 1):  # all of them in the next window
            batcher.add(_request(f"m{k:02d}", jpeg_bytes), lambda exc: done.release())
        gate.set()
        for _ in range(n + 1):
            assert done.acquire(timeout=10)
    finally:
        batcher.close()
    assert len(sent[0].get("escalations", [None])) == 1
    first = sent[1]
    assert len(first["escalations"]) == cap
    assert by == ("items" if cap == MAX_BATCH else "bytes")


def _summary(**total) -> dict:
    base = {"sampled_frames": 800, "escalation_fraction": 0.1, "escalated": 80, "messages": 80,
            "message_bytes_mean": 28_713.0, "edge_cpu_s_per_frame": 0.0156, "baseline_cpu_s_per_frame": 0.031,
            "cameras_per_core": 64.0}
    return {"schema": "framesieve.bench/1", "fps": 1.0, "total": base | total}


def test_the_window_is_the_agents_own_default():
    assert agent_window_ms() == EscalationSettings().batch_window_ms


def test_the_cost_model_prices_the_derived_occupancy_at_each_fleet_size():
    s, p = parse_summary(_summary()), load_pricing()
    h = hybrid_cost(s, p, 1000)
    o = h.occupancy
    # 1,000 cameras over ceil(1000 / 179) = 6 gateways at 1 fps x 10% x 0.25 s; 4 messages of 28.7 KB fit 128 KB
    assert o.cameras_per_gateway == pytest.approx(1000 / 6)
    assert o.arrivals_per_window == pytest.approx(1000 / 6 * 0.1 * 0.25)
    assert (o.cap, o.cap_by) == (4, "bytes")
    assert h.plan.workload.images_per_invocation == pytest.approx(o.per_message) and 2.5 < o.per_message < 4
    verdicts = next(i for i in h.cloud_items if i.name.startswith("IoT verdict messages"))
    unbatched = hybrid_cost(s, p, 1000, inputs=Inputs(batch_window_ms=0))
    assert unbatched.occupancy.per_message == 1.0
    one_each = next(i for i in unbatched.cloud_items if i.name.startswith("IoT verdict messages"))
    assert verdicts.usd_per_month == pytest.approx(one_each.usd_per_month / o.per_message)
    flagged = hybrid_cost(s, p, 1000, inputs=Inputs(images_per_endpoint_call=1.921, images_per_router_invocation=1.921,
                                                    images_per_verdict_message=1.921))
    assert flagged.plan.workload.images_per_invocation == 1.921  # the flags still override
    rows = build_report(s, p, 1000).scale
    per = [r.images_per_invocation for r in rows]
    assert per == sorted(per) and per[0] < 1.1 and per[-1] > 2.9  # 10 cameras on one gateway barely batch


def test_break_even_follows_the_occupancy_at_each_fraction():
    s, p = parse_summary(_summary()), load_pricing()
    base = baseline_cost(s, p, 1000).usd_per_camera_month
    backend = hybrid_cost(s, p, 1000).backend.name
    f = break_even_escalation_fraction(s, p, 1000, base, Inputs(), backend)
    assert 0 < f < 1
    on = Inputs(backend=backend)
    assert hybrid_cost(s, p, 1000, f, on).cloud_usd_per_camera_month == pytest.approx(base, rel=1e-6)
    assert hybrid_cost(s, p, 1000, f * 1.01, on).cloud_usd_per_camera_month > base
    assert hybrid_cost(s, p, 1000, f * 1.01, on).occupancy.per_message > hybrid_cost(s, p, 1000, f * 0.5, on) \
        .occupancy.per_message


@pytest.mark.parametrize("kwargs, match", [
    ({"cameras_per_gateway": 0}, "cameras per gateway must be positive"),
    ({"escalation_fraction": 1.5}, r"escalation fraction must be in \[0, 1\]"),
    ({"bytes_per_escalation": 0}, "bytes per escalation must be positive"),
])
def test_bad_inputs_are_named(kwargs, match):
    args = {"cameras_per_gateway": 10, "fps": 1.0, "escalation_fraction": 0.1, "bytes_per_escalation": 1000.0,
            "window_ms": 250} | kwargs
    with pytest.raises(ValueError, match=match):
        occupancy(**args)
    with pytest.raises(ValueError, match="batch_window_ms must be in"):
        Inputs(batch_window_ms=5000)
