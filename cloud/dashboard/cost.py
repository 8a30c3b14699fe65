"""$ per camera-day and per month from the live counters and the price file (config/pricing.yaml), for the
dashboard's Cost page. The cost model proper (`edge-agent cost`, edge_agent/bench/) plans a fleet from a bench
run and the cloud cannot import it; both price from the same code in costing/, so the live page has the same
line items:

- hybrid: the escalations a camera made today, each paying the per-use teacher (the price file's `lambda-teacher`
  option, costing.planner: it scales with the live count, so small fleets pay no idle endpoint) and the chain
  behind it (costing.chain: uplink, verdicts, IoT rule and action, result rows, the message claim), with the
  per-message lines shared by the escalations of one gateway message: its gateway's escalations per message,
  measured from the result rows (each row names the images of the router invocation that answered it) where
  the last hour has enough of them, else derived from its gateway's size and live escalated share by
  costing.occupancy at the agent's default window (contracts.batch.DEFAULT_BATCH_WINDOW_MS); the training
  capture by the price file's sink (costing.training: Firehose with Glacier IR tiers by default) over the
  fleet's escalations; alerts; plus its share of its gateway (hardware amortised, power, IoT connection);
- baseline: today's system, the teacher on every sampled frame on autoscaled EC2 (`baseline:`), at the same
  measured teacher seconds per image;
- break-even: the escalation share at which the hybrid camera costs what the baseline one does (solved on the
  same bill, as batching makes it no longer linear in the share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.batch import DEFAULT_BATCH_WINDOW_MS
from costing.backends import LambdaOption
from costing.chain import chain_items, message_units, transfer_out_item, uplink_item
from costing.lineitem import GB, LineItem, item
from costing.occupancy import Occupancy, occupancy
from costing.planner import Workload, evaluate
from costing.pricing import Pricing, load_pricing
from costing.training import direct_objects, tier_counts, training_items

DAYS_PER_MONTH_HOURS = 24.0
DAY_S = 86400.0
# line names whose parenthesis says how many a message holds, which differs by gateway: summed under the name
VARYING = ("IoT verdict messages", "IoT escalation messages", "Lambda compute")
MIN_MEASURED_ROWS = 20  # result rows naming their invocation's images before the measured occupancy is used


@dataclass(frozen=True)
class CameraDay:
    camera: str
    sampled: float  # frames sampled over the day (scaled up from the part of the day seen)
    escalated: float
    alerts: float
    cameras_on_gateway: int
    gateway: str = ""  # its gateway (thing); "" prices the camera as if its gateway's cameras were all like it
    # live evidence from its result rows (the last hour): rows naming the images of the invocation that answered
    # them, and the gateway messages they make up (sum of crops / call_images); rows with a training capture
    answered_rows: int = 0
    answered_messages: float = 0.0
    rows: int = 0
    kept_rows: int = 0


@dataclass(frozen=True)
class Batching:
    """One gateway's escalations per message, and where the figure comes from."""

    gateway: str
    cameras: int
    per_message: float
    source: str  # "measured" | "derived"
    text: str
    occupancy: Occupancy | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"gateway": self.gateway, "cameras": self.cameras, "escalations_per_message": round(self.per_message, 4),
               "source": self.source, "how": self.text}
        return out | ({"occupancy": self.occupancy.to_dict()} if self.occupancy else {})


@dataclass(frozen=True)
class _Gateway:
    name: str
    cameras: int
    days: list[CameraDay] = field(default_factory=list)


def _teacher(pricing: Pricing) -> tuple[str, LambdaOption]:
    for name, option in pricing.backends.options.items():
        if isinstance(option, LambdaOption):
            return name, option
    raise ValueError("the price file has no backend of kind 'lambda' (the per-use teacher the live cost uses); "
                     "add one under backends.options")


def _images(pricing: Pricing) -> float:
    """Images the teacher answers per escalation (crops in one escalation)."""
    pe = pricing.per_escalation
    return pe.images_per_call * pe.endpoint_calls


def per_escalation(pricing: Pricing, per_message: float = 1.0) -> list[tuple[str, float]]:
    """$ of one escalation by line item, training and alerts aside (priced over the fleet: fleet_cost), when its
    gateway message carries `per_message` escalations (1: unbatched)."""
    if not per_message >= 1:
        raise ValueError(f"escalations per message must be at least 1; got {per_message}")
    p, pe = pricing, pricing.per_escalation
    name, option = _teacher(pricing)
    images = _images(pricing)
    per_invocation = per_message * (images / pe.lambda_invocations if pe.lambda_invocations else images)
    # the per-use teacher as the planner prices it, over a month at one image a second: $ per image x images
    w = Workload(1, 1.0, max(1.0, per_message * pe.images_per_call), max(1.0, per_invocation),
                 p.live.bytes_per_escalation / images, pe.verdict_bytes / max(1.0, pe.images_per_call))
    per_image = 1 / (p.hours_per_month * 3600)  # the planner's month at one image a second, per image
    teacher = [(i.name, i.usd_per_month * per_image * images) for i in evaluate(name, option, p, w).items]
    messages = 1 / per_message
    units = message_units(per_message * p.live.bytes_per_escalation, p.iot_core.message_unit_bytes)
    lines: list[LineItem] = [
        uplink_item(p, messages, units),
        *chain_items(p, messages, images, per_message * images, pe.dynamodb_writes, pe.dynamodb_writes),
        item("Data transfer in (escalations)", p.live.bytes_per_escalation / GB, p.data_transfer.inbound),
        transfer_out_item(p, images),
    ]
    return [*teacher, *((i.name, i.usd_per_month) for i in lines)]


def gateway_month(pricing: Pricing) -> list[tuple[str, float]]:
    """$ per gateway-month, by line item."""
    g = pricing.gateway
    minutes = pricing.hours_per_month * 60
    return [(f"Gateway hardware (/{g.amortisation_months:g} months)", g.hardware.usd / g.amortisation_months),
            ("Gateway power", g.power.usd), ("IoT connectivity", minutes * pricing.iot_core.connectivity.usd / 1e6)]


def baseline_per_frame(pricing: Pricing) -> float:
    """$ of the teacher on one sampled frame on the baseline's EC2 instances (fractional instances)."""
    b = pricing.baseline
    cpu_s = _teacher(pricing)[1].s_per_image
    return cpu_s / (b.instance.vcpus * b.target_utilisation) * b.headroom * b.instance.usd / 3600


def derived(pricing: Pricing, cameras: int, sampled_per_day: float, escalated_per_day: float,
            window_ms: float = DEFAULT_BATCH_WINDOW_MS) -> Occupancy:
    """A gateway's escalations per message from its size and live escalated share (costing.occupancy)."""
    fps = sampled_per_day / DAY_S / max(1, cameras)
    share = min(1.0, escalated_per_day / sampled_per_day) if sampled_per_day else 0.0
    source = ("the agent's default escalation.batch_window_ms" if window_ms == DEFAULT_BATCH_WINDOW_MS
              else "given")
    return occupancy(max(1, cameras), fps if fps > 0 else 1.0, share, pricing.live.bytes_per_escalation, window_ms,
                     source)


def batching(gw: _Gateway, pricing: Pricing, window_ms: float) -> Batching:
    """Measured where the gateway's rows name their invocation's images, else derived from the fleet."""
    rows = sum(d.answered_rows for d in gw.days)
    messages = sum(d.answered_messages for d in gw.days)
    if rows >= MIN_MEASURED_ROWS and messages > 0:
        per = max(1.0, rows / messages)
        return Batching(gw.name, gw.cameras, per, "measured",
                        f"measured: {rows} result rows of the last hour in {messages:.4g} router invocations")
    # the gateway's cameras the store has counts for, scaled to all of it (a camera without counts: like them)
    seen = len(gw.days)
    sampled = sum(d.sampled for d in gw.days) * gw.cameras / seen
    escalated = sum(d.escalated for d in gw.days) * gw.cameras / seen
    occ = derived(pricing, gw.cameras, sampled, escalated, window_ms)
    return Batching(gw.name, gw.cameras, occ.per_message, "derived", f"derived: {occ.text()}", occ)


def _gateways(days: list[CameraDay]) -> list[_Gateway]:
    out: dict[str, _Gateway] = {}
    for d in days:
        key = d.gateway or f"(camera {d.camera})"  # no gateway named: one of cameras_on_gateway like it
        out.setdefault(key, _Gateway(key, max(1, d.cameras_on_gateway))).days.append(d)
    return list(out.values())


def training_share(days: list[CameraDay], pricing: Pricing) -> tuple[float, str]:
    rows = sum(d.rows for d in days)
    if rows >= MIN_MEASURED_ROWS:
        return sum(d.kept_rows for d in days) / rows, f"measured: {sum(d.kept_rows for d in days)} of {rows} rows"
    return pricing.per_escalation.training_sample_rate, "the price file's per_escalation.training_sample_rate"


def training_month(pricing: Pricing, escalations: float, messages: float, share: float) -> list[LineItem]:
    """The training lines for the fleet's month (costing.training, the same code `edge-agent cost` runs)."""
    live = pricing.live
    return training_items(tier_counts(live.training_tiers), pricing, escalations, share,
                          live.training_bytes_per_record, live.training_json_bytes_per_record,
                          direct_objects(escalations, messages, share),
                          escalations / messages if messages else 1.0)


def fleet_cost(days: list[CameraDay], pricing: Pricing | None = None,
               window_ms: float = DEFAULT_BATCH_WINDOW_MS) -> dict[str, Any]:
    pricing = pricing or load_pricing()
    month = pricing.hours_per_month / DAYS_PER_MONTH_HOURS
    gws = _gateways(days)
    batch = {gw.name: batching(gw, pricing, window_ms) for gw in gws}
    of = {d.camera: batch[gw.name] for gw in gws for d in gw.days}
    share, share_source = training_share(days, pricing)
    escalations = sum(d.escalated for d in days) * month
    messages = sum(d.escalated / of[d.camera].per_message for d in days) * month

    def train_usd(esc: float, msg: float) -> float:
        return sum(i.usd_per_month for i in training_month(pricing, esc, msg, share)) if esc > 0 else 0.0

    training = training_month(pricing, escalations, messages, share) if escalations > 0 else []
    lines: dict[str, float] = {}
    for d in days:
        for n, v in per_escalation(pricing, of[d.camera].per_message):
            key = n.split(" (")[0] if n.startswith(VARYING) else n
            lines[key] = lines.get(key, 0.0) + v * d.escalated * month
    items = [{"name": n, "usd_per_month": v} for n, v in lines.items()]
    items += [{"name": i.name, "usd_per_month": i.usd_per_month} for i in training]
    gateways = sum(1 / max(1, d.cameras_on_gateway) for d in days)
    items += [{"name": n, "usd_per_month": v * gateways} for n, v in gateway_month(pricing)]
    items.append({"name": "SNS publishes (alerts)",
                  "usd_per_month": sum(d.alerts for d in days) * pricing.sns.publishes.usd / 1e6 * month})
    cams = [camera_cost(d, pricing, of[d.camera], escalations, messages, train_usd, window_ms) for d in days]
    return {"cameras": cams, "line_items": items,
            "batching": [b.to_dict() for b in batch.values()],
            "training": {"sink": pricing.training.sink, "share": share, "share_source": share_source,
                         "bytes_source": pricing.live.source},
            "prices": {"as_of": pricing.as_of, "region": pricing.region, "teacher": _teacher(pricing)[1].label,
                       "baseline_instance": pricing.baseline.instance.type,
                       "hours_per_month": pricing.hours_per_month, "batch_window_ms": window_ms}}


def camera_cost(day: CameraDay, pricing: Pricing, batch: Batching | None = None, fleet_escalations: float = 0.0,
                fleet_messages: float = 0.0, train_usd: Any = None,
                window_ms: float = DEFAULT_BATCH_WINDOW_MS) -> dict[str, Any]:
    """One camera's day. `fleet_*`: the fleet's escalations and gateway messages a month (the training lines are
    priced over the fleet: Firehose packs every camera's records into the same objects)."""
    days = pricing.hours_per_month / DAYS_PER_MONTH_HOURS
    batch = batch or batching(_Gateway(day.camera, max(1, day.cameras_on_gateway), [day]), pricing, window_ms)
    if train_usd is None:
        def train_usd(esc: float, msg: float) -> float:
            return sum(i.usd_per_month for i in training_month(pricing, esc, msg, training_share([day], pricing)[0])) \
                if esc > 0 else 0.0
        fleet_escalations, fleet_messages = day.escalated * days, day.escalated / batch.per_message * days
    fixed = sum(v for _, v in gateway_month(pricing)) / max(1, day.cameras_on_gateway) / days
    alerts = day.alerts * pricing.sns.publishes.usd / 1e6

    def hybrid_at(escalated: float, per_message: float) -> tuple[float, float]:
        """($ a day, $ per escalation) with this camera escalating `escalated` frames a day, the rest unchanged."""
        if escalated <= 0:
            return fixed, 0.0
        esc = fleet_escalations + (escalated - day.escalated) * days
        msg = fleet_messages + (escalated - day.escalated) / per_message * days
        training = train_usd(esc, msg) / esc if esc > 0 else 0.0
        chain = sum(v for _, v in per_escalation(pricing, per_message))
        return fixed + escalated * (chain + training), chain + training

    hybrid, per_esc = hybrid_at(day.escalated, batch.per_message)
    hybrid += alerts
    baseline = day.sampled * baseline_per_frame(pricing)

    def at_share(s: float) -> float:
        per = batch.per_message if batch.source == "measured" else derived(
            pricing, batch.cameras, day.sampled * batch.cameras, day.sampled * batch.cameras * s, window_ms).per_message
        return hybrid_at(day.sampled * s, per)[0] - baseline

    if not day.sampled:
        break_even = None
    elif at_share(0.0) > 0:
        break_even = -1.0  # the gateway alone costs more than the baseline at this camera's frame rate
    elif at_share(1.0) < 0:
        break_even = 1.0
    else:
        lo, hi = 0.0, 1.0
        for _ in range(25):  # 3e-8: the share is shown to 4 decimals
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if at_share(mid) < 0 else (lo, mid)
        break_even = (lo + hi) / 2
    return {"camera": day.camera, "sampled_per_day": round(day.sampled), "escalated_per_day": round(day.escalated),
            "escalation_share": round(day.escalated / day.sampled, 4) if day.sampled else None,
            "hybrid_usd_per_day": hybrid, "baseline_usd_per_day": baseline,
            "hybrid_usd_per_month": hybrid * days, "baseline_usd_per_month": baseline * days,
            # below this share of escalated frames the hybrid costs less; None: nothing sampled yet; -1: the
            # gateway alone costs more than the baseline at this camera's frame rate; 1: never reached
            "break_even_share": None if break_even is None else round(break_even, 4),
            "fixed_usd_per_day": fixed, "usd_per_escalation": per_esc,
            "escalations_per_message": round(batch.per_message, 4), "batching": batch.source}
