"""Batch occupancy for a priced fleet: its gateways (cameras per gateway from the bench's cameras per core), the
agent's own batch window and in-flight limit (edge_agent/config, not second constants), into costing.occupancy."""

from __future__ import annotations

import math

from costing.lineitem import ceil
from costing.occupancy import Occupancy, occupancy
from costing.pricing import Pricing
from costing.summary import BenchSummary
from edge_agent.config.escalation import MAX_IN_FLIGHT, EscalationSettings, auto_in_flight


def messages_per_escalation(summary: BenchSummary) -> float:
    t = summary.total
    return t.messages / t.escalated if t.escalated else 1.0


def cameras_per_gateway(summary: BenchSummary, pricing: Pricing) -> int:
    g = pricing.gateway
    fit = max(1, math.floor(summary.total.cameras_per_core * g.cores * g.target_utilisation + 1e-9))
    return min(fit, g.max_cameras) if g.max_cameras else fit


def agent_window_ms() -> int:
    """The agent's own default `escalation.batch_window_ms` (edge_agent/config), not a second constant."""
    return int(EscalationSettings.model_fields["batch_window_ms"].default)


def agent_max_in_flight(occ: Occupancy, explicit: int | None = None) -> tuple[int, str]:
    """(the agent's `escalation.max_in_flight` on such a gateway, what set it): `explicit` where given, else the
    agent's default, which is auto: sized from the gateway's cameras x fps and the batch window, as the agent
    sizes itself at load (edge_agent/config/escalation.py auto_in_flight, not a second formula)."""
    default = EscalationSettings.model_fields["max_in_flight"].default
    if explicit is not None or default != "auto":
        return int(explicit if explicit is not None else default), "set"
    limit, _ = auto_in_flight([occ.cameras_per_gateway * occ.fps], occ.window_ms)
    return limit, "auto, capped" if limit == MAX_IN_FLIGHT else "auto"


def fleet_occupancy(summary: BenchSummary, pricing: Pricing, cameras: int, fraction: float,
                    bytes_per_escalation: float | None = None, window_ms: float | None = None) -> Occupancy:
    """Escalations per gateway message for this fleet (costing.occupancy): the fleet's cameras spread over its
    gateways, the bench's fps, the escalation fraction priced, the bytes per escalation message and the
    agent's batch window (--batch-window-ms, else the agent's default)."""
    per_gw = cameras_per_gateway(summary, pricing)
    on_one = cameras / ceil(cameras / per_gw)  # the fleet's cameras spread evenly over its gateways
    mpe = messages_per_escalation(summary)
    nbytes = bytes_per_escalation / mpe if bytes_per_escalation else summary.total.message_bytes_mean
    window, source = ((window_ms, "--batch-window-ms") if window_ms is not None
                      else (agent_window_ms(), "the agent's default escalation.batch_window_ms"))
    return occupancy(on_one, summary.fps, min(1.0, fraction * mpe), max(1.0, nbytes), window, source)


def in_flight(occ: Occupancy, p95_s: float, explicit: int | None = None) -> tuple[float, int]:
    """(escalations one gateway awaits at once, by Little's law: its rate x (half a window in the batcher + the
    escalation path's p95, an upper figure), and the agent's escalation.max_in_flight on that gateway: auto's
    figure, or `explicit`): beyond that limit the agent decides frames at the edge instead of escalating them
    (`cloud_busy`), which no price here counts."""
    return occ.arrivals_per_s * (occ.window_ms / 2000 + p95_s), agent_max_in_flight(occ, explicit)[0]
