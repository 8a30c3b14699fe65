"""Cost model line items: $ per month for today's baseline and for the hybrid, from a bench summary and prices.

The baseline runs the teacher on every sampled frame on autoscaled EC2 CPU instances; the hybrid pays the
teacher backend the planner chooses (costing.planner), the serverless chain behind each escalation, and a
gateway per site. Every figure is a LineItem (quantity x unit price, with its source) so a reader can trace
it to a measured input or a price.
"""

from __future__ import annotations

from dataclasses import dataclass

from costing.chain import chain_items, message_units, transfer_out_item, uplink_item
from costing.lineitem import GB, FleetBill, LineItem, ceil, item
from costing.occupancy import Occupancy
from costing.planner import BackendCost, Plan, Workload, plan
from costing.pricing import Pricing
from costing.summary import BenchSummary, SummaryError, load_summary, parse_summary
from costing.training import direct_objects, training_items
from edge_agent.bench.cost_batching import (
    agent_window_ms,
    cameras_per_gateway,
    fleet_occupancy,
    messages_per_escalation,
)

__all__ = ["GB", "DEFAULT_CAMERAS", "SCALE_FLEETS", "BenchSummary", "SummaryError", "LineItem", "Inputs",
           "load_summary", "parse_summary", "message_units", "messages_per_escalation", "steady_escalation_fraction",
           "monthly_escalation_fraction", "BaselineCost", "baseline_cost", "usage_items", "workload",
           "cameras_per_gateway", "fleet_occupancy", "agent_window_ms", "HybridCost", "hybrid_cost", "teacher_scale",
           "training_bytes_per_record", "training_retention_months", "teacher_pricing"]

DEFAULT_CAMERAS = 1000
SCALE_FLEETS = (10, 100, 1_000, 10_000, 100_000)
_item, _ceil = item, ceil


def steady_escalation_fraction(summary: BenchSummary) -> float:
    """Escalations per sampled frame once running: after specialization, the deployed student's."""
    if summary.warmup is not None and summary.warmup.steady_escalation_fraction is not None:
        return summary.warmup.steady_escalation_fraction
    return summary.total.escalation_fraction


def monthly_escalation_fraction(summary: BenchSummary, pricing: Pricing) -> float:
    """The steady fraction plus a new camera's warm-up escalations spread over the amortisation months."""
    f = steady_escalation_fraction(summary)
    if summary.warmup is None:
        return f
    window_h = pricing.hours_per_month * pricing.warmup_amortisation_months
    return min(1.0, f + (summary.warmup.escalation_fraction - f) * summary.warmup.hours / window_h)


@dataclass(frozen=True)
class Inputs:
    """What lean messages and per-gateway batching change. images_per_*: None derives them from the fleet (each
    gateway's escalations per batch window, costing.occupancy); a number overrides the derivation."""

    bytes_per_escalation: float | None = None
    images_per_endpoint_call: float | None = None
    images_per_router_invocation: float | None = None
    images_per_verdict_message: float | None = None
    # What keeping only informative training records and result rows changes (issue 14 item 4): the share of
    # escalations kept in S3 and the result rows written per escalation. None: the bench's, else the price file's.
    training_share: float | None = None
    rows_per_escalation: float | None = None
    backend: str | None = None  # force an option instead of the planner's choice
    latency_p95_s: float | None = None  # the objective (default: the price file's)
    batch_window_ms: float | None = None  # the gateways' window (None: the agent's default; 0: no batching)

    def __post_init__(self) -> None:
        if self.bytes_per_escalation is not None and not self.bytes_per_escalation > 0:
            raise ValueError(f"bytes per escalation must be positive; got {self.bytes_per_escalation}")
        for name in ("training_share", "rows_per_escalation"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= (1 if name == "training_share" else 10):
                raise ValueError(f"{name.replace('_', ' ')} must be in [0, {1 if name == 'training_share' else 10}]; "
                                 f"got {v}")
        if self.batch_window_ms is not None and not 0 <= self.batch_window_ms <= 1000:
            raise ValueError(f"batch_window_ms must be in [0, 1000] (the agent's own bounds); got "
                             f"{self.batch_window_ms}")
        for name in ("images_per_endpoint_call", "images_per_router_invocation", "images_per_verdict_message"):
            v = getattr(self, name)
            if v is not None and not v >= 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1; got {v}")


@dataclass(frozen=True)
class _Flow:
    """Per escalation: images, bytes and how many images share each call, invocation and verdict."""

    images: float  # images the teacher answers per escalated frame
    bytes: float  # request bytes per escalation
    per_call: float
    per_invocation: float
    per_verdict: float
    occupancy: Occupancy | None = None  # the batch occupancy derived from the fleet (None: batching off)


def _flow(summary: BenchSummary, pricing: Pricing, inputs: Inputs, cameras: int | None = None,
          fraction: float | None = None) -> _Flow:
    """The flags override; else the occupancy derived from the fleet (`cameras`, `fraction`); without a fleet
    (landed video: no gateway batcher) one message per call, invocation and verdict."""
    t, pe = summary.total, pricing.per_escalation
    per_message = pe.images_per_call * pe.endpoint_calls  # images in one escalation message
    images = messages_per_escalation(summary) * per_message
    nbytes = inputs.bytes_per_escalation or t.message_bytes_mean * messages_per_escalation(summary)
    occ = fleet_occupancy(summary, pricing, cameras, fraction, inputs.bytes_per_escalation,
                          inputs.batch_window_ms) if cameras and fraction is not None else None
    batched = occ.per_message if occ else 1.0

    def pick(flag: float | None, derived: float) -> float:
        return flag if flag is not None else derived

    per_call = pick(inputs.images_per_endpoint_call, batched * pe.images_per_call)
    per_inv = pick(inputs.images_per_router_invocation,
                   batched * (per_message / pe.lambda_invocations if pe.lambda_invocations else per_message))
    per_verdict = pick(inputs.images_per_verdict_message, batched * per_message)
    return _Flow(images, nbytes, max(1.0, per_call), max(1.0, per_inv), max(1.0, per_verdict), occ)


def workload(summary: BenchSummary, pricing: Pricing, cameras: int, fraction: float,
             inputs: Inputs | None = None) -> Workload:
    """The fleet's demand on the teacher backend."""
    flow = _flow(summary, pricing, inputs or Inputs(), cameras, fraction)
    rate = cameras * summary.fps * fraction * flow.images
    per_image = flow.bytes / flow.images if flow.images else 0.0
    return Workload(cameras, rate, flow.per_call, flow.per_invocation, per_image,
                    pricing.per_escalation.verdict_bytes / max(1.0, pricing.per_escalation.images_per_call))


# ---------------------------------------------------------------- baseline

@dataclass(frozen=True)
class BaselineCost(FleetBill):
    label: str
    cameras: int
    cpu_s_per_frame: float
    vcpus_per_camera: float  # provisioned: load / target utilisation x headroom
    instances: int
    items: list[LineItem]


def baseline_cost(summary: BenchSummary, pricing: Pricing, cameras: int,
                  teacher_cpu_s: float | None = None) -> BaselineCost:
    """EC2 sized from teacher CPU-s per frame x fps (vCPUs busy per camera); the customer's model may be heavier."""
    b = pricing.baseline
    cpu = summary.total.baseline_cpu_s_per_frame if teacher_cpu_s is None else teacher_cpu_s
    label = "measured teacher" if teacher_cpu_s is None else "user-given teacher"
    vcpus = cpu * summary.fps / b.target_utilisation * b.headroom
    instances = max(1, _ceil(cameras * vcpus / b.instance.vcpus))
    name = f"EC2 {b.instance.type} ({cpu:g} CPU-s/frame, {label})"
    items = [_item(name, instances * pricing.hours_per_month, b.instance)]
    return BaselineCost(label, cameras, cpu, vcpus, instances, items)


def teacher_scale(summary: BenchSummary, teacher_cpu_s: float | None) -> float:
    """How much heavier the given teacher is than the measured one (the bench's baseline CPU-s per frame, the
    same model the backend options' figures were measured with): 1.0 for the measured teacher."""
    measured = summary.total.baseline_cpu_s_per_frame
    if teacher_cpu_s is None or not measured > 0:
        return 1.0
    return teacher_cpu_s / measured


def teacher_pricing(summary: BenchSummary, pricing: Pricing, teacher_cpu_s: float | None) -> Pricing:
    """The prices with every backend option running the given teacher, so the hybrid's teacher and the
    baseline's are the same model (only the backends change: throughput and compute time per image)."""
    k = teacher_scale(summary, teacher_cpu_s)
    return pricing if k == 1.0 else pricing.model_copy(update={"backends": pricing.backends.scaled(k)})


# ---------------------------------------------------------------- hybrid

def usage_items(summary: BenchSummary, pricing: Pricing, escalations: float,
                inputs: Inputs | None = None, cameras: int | None = None,
                fraction: float | None = None) -> list[LineItem]:
    """What the cloud spends per escalation whatever the backend; the backend's own lines (teacher, router
    Lambda, data processed) come from costing.planner. With `cameras` and `fraction`, the per-message lines
    follow the batch occupancy derived for that fleet; without them, one escalation per message."""
    p, pe, iot = pricing, pricing.per_escalation, pricing.iot_core
    inputs = inputs or Inputs()
    flow = _flow(summary, pricing, inputs, cameras, fraction)
    t = summary.total
    share = next(v for v in (inputs.training_share, t.training_share, pe.training_sample_rate) if v is not None)
    rows_each = next(v for v in (inputs.rows_per_escalation, t.rows_per_escalation, pe.dynamodb_writes)
                     if v is not None)
    images = escalations * flow.images
    messages = images / flow.per_invocation  # one gateway message per router invocation
    nbytes = flow.bytes * escalations / messages if messages else 0.0  # bytes per gateway message
    batched = flow.per_invocation > 1 or flow.bytes != summary.total.message_bytes_mean
    units = (summary.total.message_units_mean if summary.total.message_units_mean and not batched
             else message_units(nbytes, iot.message_unit_bytes))
    uplink = uplink_item(p, messages, units)
    kept_each = training_bytes_per_record(summary, inputs, flow)
    rows = escalations * rows_each
    per_batch = escalations / messages if messages else 1.0
    objects = direct_objects(escalations, messages, share)  # the s3 sink's: one per batch holding a kept record
    return [
        uplink,
        *chain_items(p, messages, images, flow.per_verdict, rows, rows_each),  # costing/chain.py
        *training_items(summary, pricing, escalations, share, kept_each, training_json_bytes_per_record(
            summary, inputs, kept_each), objects, per_batch),  # by the sink: costing/training.py
        _item("SNS publishes (alerts)", escalations * messages_per_escalation(summary) * pe.sns_publishes / 1e6,
              p.sns.publishes),
        _item("Data transfer in (escalations)", escalations * flow.bytes / GB, p.data_transfer.inbound),
        transfer_out_item(p, images),
    ]


def training_bytes_per_record(summary: BenchSummary, inputs: Inputs, flow: _Flow | None = None) -> float:
    """Bytes of one kept training record: the bench's measured record (the router's serialiser over the
    message's crops) unless --bytes-per-escalation says the messages change, then the message's bytes."""
    t = summary.total
    if inputs.bytes_per_escalation is None and t.training_bytes_per_record:
        return t.training_bytes_per_record
    return flow.bytes if flow is not None else inputs.bytes_per_escalation or t.message_bytes_mean


def training_json_bytes_per_record(summary: BenchSummary, inputs: Inputs, per_kept: float) -> float:
    """Bytes of one kept record as plain JSON (what Firehose ingests and bills): the bench's measurement, else
    the stored bytes (a lower bound)."""
    t = summary.total
    if inputs.bytes_per_escalation is None and t.training_json_bytes_per_record:
        return t.training_json_bytes_per_record
    return per_kept


def training_retention_months(summary: BenchSummary, pricing: Pricing) -> float:
    """Months a kept record stays in S3, averaged over the bench's kept records by tier (each tier for as long
    as the bucket's lifecycle keeps it: s3.retention_months_by_tier, else s3.retention_months)."""
    s3, tiers = pricing.s3, summary.total.training_tiers
    if not tiers or not sum(tiers.values()):
        return s3.retention_months
    return sum(n * s3.retention_months_by_tier.get(t, s3.retention_months) for t, n in tiers.items()) \
        / sum(tiers.values())


@dataclass(frozen=True)
class HybridCost:
    cameras: int
    escalation_fraction: float  # the monthly average used
    escalations: float  # escalated sampled frames per month, fleet
    plan: Plan  # every backend option priced for this fleet; `backend` is the one used
    cameras_per_gateway: int
    gateways: int
    cloud_items: list[LineItem]
    gateway_items: list[LineItem]
    occupancy: Occupancy | None = None  # the batch occupancy derived for this fleet (flags may override it)

    @property
    def backend(self) -> BackendCost:
        return self.plan.chosen

    @property
    def gpu_instances(self) -> int:  # endpoint instances (0 for a per-use backend)
        return self.backend.instances

    @property
    def gpu_load(self) -> float:
        return self.backend.load if self.backend.instance_items else 0.0

    @property
    def gpu_at_minimum(self) -> bool:  # a small fleet pays for idle capacity
        return bool(self.backend.instance_items) and self.backend.load < self.backend.min_instances

    @property
    def cloud_usd_per_month(self) -> float:
        return sum(i.usd_per_month for i in self.cloud_items)

    @property
    def all_in_usd_per_month(self) -> float:
        return self.cloud_usd_per_month + sum(i.usd_per_month for i in self.gateway_items)

    @property
    def cloud_usd_per_camera_month(self) -> float:
        return self.cloud_usd_per_month / self.cameras

    @property
    def all_in_usd_per_camera_month(self) -> float:
        return self.all_in_usd_per_month / self.cameras

    def per_escalation(self) -> list[tuple[str, float]]:
        """$ per escalated frame by line, instance-hours shared over this fleet's escalations."""
        if self.escalations <= 0:
            return []
        return [(i.name, i.usd_per_month / self.escalations) for i in self.cloud_items if "connectivity" not in i.name]

    def usd_per_escalation(self) -> float | None:
        return sum(u for _, u in self.per_escalation()) if self.escalations > 0 else None


def hybrid_cost(summary: BenchSummary, pricing: Pricing, cameras: int, escalation_fraction: float | None = None,
                inputs: Inputs | None = None) -> HybridCost:
    """Cloud bill (teacher backend, IoT, Lambda, stores) and gateways, at the bench's monthly fraction or a given
    one; the backend is the planner's cheapest meeting the latency objective unless inputs.backend names one."""
    inputs = inputs or Inputs()
    f = monthly_escalation_fraction(summary, pricing) if escalation_fraction is None else escalation_fraction
    hours = pricing.hours_per_month
    escalations = cameras * f * summary.fps * hours * 3600
    chosen = plan(pricing, workload(summary, pricing, cameras, f, inputs), inputs.latency_p95_s, inputs.backend)
    per_gw = cameras_per_gateway(summary, pricing)
    gateways = _ceil(cameras / per_gw)
    g = pricing.gateway
    cloud = [
        *chosen.chosen.items,
        *usage_items(summary, pricing, escalations, inputs, cameras, f),
        _item(f"IoT connectivity ({gateways} gateway(s))", gateways * hours * 60 / 1e6, pricing.iot_core.connectivity),
    ]
    gateway = [
        _item(f"Gateway hardware (/{g.amortisation_months:g} months)", gateways, g.hardware, "gateway-month",
              g.hardware.usd / g.amortisation_months),
        _item("Gateway power", gateways, g.power),
    ]
    return HybridCost(cameras, f, escalations, chosen, per_gw, gateways, cloud, gateway,
                      fleet_occupancy(summary, pricing, cameras, f, inputs.bytes_per_escalation,
                                      inputs.batch_window_ms))
