"""$ per camera-day and per month from the live counters and the price file (config/pricing.yaml), for the
dashboard's Cost page. The cost model proper (`edge-agent cost`, edge_agent/bench/) plans a fleet from a
bench run and the cloud cannot import it; this is its live counterpart on the same prices and line names:

- hybrid: the escalations a camera made today, each paying the per-use teacher (the price file's
  `lambda-teacher` option: it scales with the live count, so small fleets pay no idle endpoint), the IoT
  rule, verdict messages, the result row, the training capture and alerts; plus its share of its gateway
  (hardware amortised, power, IoT connection);
- baseline: today's system, the teacher on every sampled frame on autoscaled EC2 (`baseline:`), at the same
  measured teacher seconds per image;
- break-even: the escalation share at which the hybrid camera costs what the baseline one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costing.backends import LambdaOption
from costing.lineitem import ceil
from costing.pricing import Pricing, load_pricing

DAYS_PER_MONTH_HOURS = 24.0


@dataclass(frozen=True)
class CameraDay:
    camera: str
    sampled: float  # frames sampled over the day (scaled up from the part of the day seen)
    escalated: float
    alerts: float
    cameras_on_gateway: int


def _teacher(pricing: Pricing) -> LambdaOption:
    for option in pricing.backends.options.values():
        if isinstance(option, LambdaOption):
            return option
    raise ValueError("the price file has no backend of kind 'lambda' (the per-use teacher the live cost uses); "
                     "add one under backends.options")


def per_escalation(pricing: Pricing) -> list[tuple[str, float]]:
    """$ of one escalation, by line item."""
    p, pe, t = pricing, pricing.per_escalation, _teacher(pricing)
    gb_s = t.memory_mb / 1024 * (t.s_per_image + t.router_s)
    up = 0.0 if p.iot_core.basic_ingest else p.iot_core.messaging.usd / 1e6
    return [
        (f"Teacher ({t.label})", gb_s * p.lambda_.compute.usd + p.lambda_.requests.usd / 1e6),
        ("IoT escalation messages" + (" (Basic Ingest: no messaging charge)" if not up else ""), up),
        ("IoT verdict messages", pe.verdict_messages * p.iot_core.messaging.usd / 1e6),
        ("IoT rules triggered and actions", (pe.rules_triggered * p.iot_core.rules_triggered.usd
                                             + pe.rule_actions * p.iot_core.rule_actions.usd) / 1e6),
        ("DynamoDB writes (row, message claim)", (pe.dynamodb_writes * ceil(p.dynamodb.item_bytes / 1024)
                                                  + pe.dynamodb_claims) * p.dynamodb.writes.usd / 1e6),
        (f"S3 PUTs (training samples, {pe.training_sample_rate:.0%})",
         pe.training_sample_rate * pe.s3_puts_per_sample * p.s3.puts.usd / 1e3),
    ]


def gateway_month(pricing: Pricing) -> list[tuple[str, float]]:
    """$ per gateway-month, by line item."""
    g = pricing.gateway
    minutes = pricing.hours_per_month * 60
    return [(f"Gateway hardware (/{g.amortisation_months:g} months)", g.hardware.usd / g.amortisation_months),
            ("Gateway power", g.power.usd), ("IoT connectivity", minutes * pricing.iot_core.connectivity.usd / 1e6)]


def baseline_per_frame(pricing: Pricing) -> float:
    """$ of the teacher on one sampled frame on the baseline's EC2 instances (fractional instances)."""
    b = pricing.baseline
    cpu_s = _teacher(pricing).s_per_image
    return cpu_s / (b.instance.vcpus * b.target_utilisation) * b.headroom * b.instance.usd / 3600


def camera_cost(day: CameraDay, pricing: Pricing) -> dict[str, Any]:
    days = pricing.hours_per_month / DAYS_PER_MONTH_HOURS
    per_esc = sum(v for _, v in per_escalation(pricing))
    fixed = sum(v for _, v in gateway_month(pricing)) / max(1, day.cameras_on_gateway) / days
    hybrid = fixed + day.escalated * per_esc + day.alerts * pricing.sns.publishes.usd / 1e6
    baseline = day.sampled * baseline_per_frame(pricing)
    variable = day.sampled * per_esc
    break_even = (baseline - fixed) / variable if variable > 0 else None
    return {"camera": day.camera, "sampled_per_day": round(day.sampled), "escalated_per_day": round(day.escalated),
            "escalation_share": round(day.escalated / day.sampled, 4) if day.sampled else None,
            "hybrid_usd_per_day": hybrid, "baseline_usd_per_day": baseline,
            "hybrid_usd_per_month": hybrid * days, "baseline_usd_per_month": baseline * days,
            # below this share of escalated frames the hybrid costs less; None: nothing sampled yet; < 0: the
            # gateway alone costs more than the baseline at this camera's frame rate
            "break_even_share": None if break_even is None else round(break_even, 4),
            "fixed_usd_per_day": fixed, "usd_per_escalation": per_esc}


def fleet_cost(days: list[CameraDay], pricing: Pricing | None = None) -> dict[str, Any]:
    pricing = pricing or load_pricing()
    month = pricing.hours_per_month / DAYS_PER_MONTH_HOURS
    escalated = sum(d.escalated for d in days)
    gateways = sum(1 / max(1, d.cameras_on_gateway) for d in days)
    items = [{"name": n, "usd_per_month": v * escalated * month} for n, v in per_escalation(pricing)]
    items += [{"name": n, "usd_per_month": v * gateways} for n, v in gateway_month(pricing)]
    items.append({"name": "SNS publishes (alerts)",
                  "usd_per_month": sum(d.alerts for d in days) * pricing.sns.publishes.usd / 1e6 * month})
    return {"cameras": [camera_cost(d, pricing) for d in days], "line_items": items,
            "prices": {"as_of": pricing.as_of, "region": pricing.region, "teacher": _teacher(pricing).label,
                       "baseline_instance": pricing.baseline.instance.type,
                       "hours_per_month": pricing.hours_per_month}}
