"""How many escalations one gateway message carries, derived from the fleet instead of measured at a few
cameras: the occupancy of the gateway batcher (edge_agent/escalation/batcher.py) under Poisson arrivals.

A gateway's escalations arrive at  r = cameras_per_gateway x fps x escalation_fraction  per second, so a
window of W seconds gathers  lambda = r x W  on average (Poisson: many cameras, each escalating a small share
of its frames independently). The batcher, exactly:
- an idle gateway's first escalation leaves at once, alone, and starts a window;
- at a window's end everything that arrived in it leaves, in as many messages as it needs, each holding at
  most `cap` escalations (the 128 KB IoT limit at the escalation's bytes, MAX_BATCH items);
- a window in which nothing arrived ends the cycle: the next escalation is again an idle one.
So each cycle after a send carries A ~ Poisson(lambda) escalations in ceil(A / cap) messages, or, when A = 0
(probability e^-lambda), one lone escalation in one message:

    escalations per message = (lambda + e^-lambda) / (sum_k P(A = k) ceil(k / cap) + e^-lambda)

Without a cap this is lambda + e^-lambda (the batcher's idle sends make it smaller than lambda/(1-e^-lambda),
the mean of a non-empty fixed window, by up to ~0.4 at lambda ~ 1). The same figure is the images per router
invocation, per endpoint call, per verdict message and per training object: one of each per message.
Pure Python: the cloud's planner uses it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from contracts.batch import ENVELOPE_BYTES, MAX_BATCH
from contracts.codec import MAX_MESSAGE_BYTES


def message_cap(bytes_per_escalation: float, max_items: int = MAX_BATCH,
                limit_bytes: int = MAX_MESSAGE_BYTES) -> tuple[int, str]:
    """Escalations one message may hold, and what binds it ("bytes" or "items"): the batcher counts each
    escalation's bytes plus a separator after the batch's envelope; a message always holds at least one."""
    by_bytes = max(1, math.floor((limit_bytes - ENVELOPE_BYTES) / (bytes_per_escalation + 1)))
    return (by_bytes, "bytes") if by_bytes < max_items else (max_items, "items")


def _poisson_pmf(lam: float) -> list[float]:
    """P(A = k) for k = 0.. until the tail is negligible (iteratively, so a large lambda does not overflow)."""
    kmax = int(lam + 12 * math.sqrt(lam) + 30)
    log_p0 = -lam
    pmf, log_p = [], log_p0
    for k in range(kmax + 1):
        if k:
            log_p += math.log(lam) - math.log(k)
        pmf.append(math.exp(log_p))
    return pmf


def per_message(lam: float, cap: int) -> tuple[float, float]:
    """(escalations per message, share of windows whose escalations need more than one message)."""
    if lam <= 0:
        return 1.0, 0.0
    pmf = _poisson_pmf(lam)
    idle = pmf[0]
    messages = idle + sum(p * math.ceil(k / cap) for k, p in enumerate(pmf) if k)
    overflow = sum(p for k, p in enumerate(pmf) if k > cap)
    return (lam + idle) / messages, overflow


@dataclass(frozen=True)
class Occupancy:
    """The derivation, printed with the cost table and in `--json`."""

    window_ms: float  # the agent's escalation.batch_window_ms (0: batching off)
    window_source: str
    cameras_per_gateway: float  # a fleet's cameras spread evenly over its gateways
    fps: float
    escalation_fraction: float
    bytes_per_escalation: float
    arrivals_per_s: float  # one gateway's escalations per second
    arrivals_per_window: float  # lambda
    cap: int
    cap_by: str  # "bytes" | "items"
    per_message: float
    overflow_share: float
    items_source: str = "MAX_BATCH"  # what sets the item cap

    def to_dict(self) -> dict[str, Any]:
        return {"batch_window_ms": self.window_ms, "window_source": self.window_source,
                "cameras_per_gateway": self.cameras_per_gateway, "fps": self.fps,
                "escalation_fraction": self.escalation_fraction, "bytes_per_escalation": self.bytes_per_escalation,
                "escalations_per_s_per_gateway": self.arrivals_per_s,
                "arrivals_per_window": self.arrivals_per_window, "cap_per_message": self.cap, "cap_by": self.cap_by,
                "escalations_per_message": self.per_message, "overflow_share": self.overflow_share,
                "model": "poisson arrivals; idle send alone; a window's escalations in ceil(A/cap) messages"}

    def text(self) -> str:
        if self.window_ms <= 0:
            return f"batch_window_ms 0 ({self.window_source}): one message per escalation"
        cap = (f"{self.cap} fit one message ({MAX_MESSAGE_BYTES // 1024} KB at {self.bytes_per_escalation:,.0f} B "
               "each)" if self.cap_by == "bytes" else f"at most {self.cap} per message ({self.items_source})")
        return (f"{self.cameras_per_gateway:.4g} cameras/gateway x {self.fps:g} fps x {self.escalation_fraction:.2%} "
                f"escalated = {self.arrivals_per_s:.3g} escalations/s per gateway; x {self.window_ms:g} ms window "
                f"({self.window_source}) = {self.arrivals_per_window:.3g} per window (Poisson); {cap}; "
                f"{self.overflow_share:.0%} of windows need more than one message -> "
                f"{self.per_message:.3f} escalations per message (one router invocation, endpoint call and verdict "
                "message each)")


def occupancy(cameras_per_gateway: float, fps: float, escalation_fraction: float, bytes_per_escalation: float,
              window_ms: float, window_source: str = "given", max_items: int = MAX_BATCH,
              items_source: str = "MAX_BATCH") -> Occupancy:
    """The batcher's mean escalations per message for one gateway of the fleet."""
    for name, value in (("cameras per gateway", cameras_per_gateway), ("fps", fps),
                        ("bytes per escalation", bytes_per_escalation)):
        if not value > 0:
            raise ValueError(f"{name} must be positive to derive batch occupancy; got {value}")
    if not 0 <= escalation_fraction <= 1:
        raise ValueError(f"the escalation fraction must be in [0, 1]; got {escalation_fraction}")
    if not 0 <= window_ms <= 60_000:
        raise ValueError(f"batch_window_ms must be in [0, 60000]; got {window_ms}")
    rate = cameras_per_gateway * fps * escalation_fraction
    lam = rate * window_ms / 1000
    cap, cap_by = message_cap(bytes_per_escalation, max_items)
    per, overflow = per_message(lam, cap) if window_ms > 0 else (1.0, 0.0)
    return Occupancy(window_ms, window_source, cameras_per_gateway, fps, escalation_fraction, bytes_per_escalation,
                     rate, lam, cap, cap_by, per, overflow, items_source)
