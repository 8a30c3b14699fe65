"""Cost model line items: $ per month for today's baseline and for the hybrid, from a bench summary and prices.

The baseline runs the teacher on every sampled frame on autoscaled EC2 CPU instances; the hybrid pays a
GPU endpoint and the serverless chain behind each escalation, plus a gateway per site. Every figure is a
LineItem (quantity x unit price, with its source) so a reader can trace it to a measured input or a price.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent.bench.pricing import Pricing

GB = 1024**3  # AWS bills storage and transfer per binary gigabyte
DEFAULT_CAMERAS = 1000
SCALE_FLEETS = (10, 1_000, 100_000)


class SummaryError(Exception):
    """The bench summary is missing, not JSON, or lacks a key the cost model needs."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the bench writes more than the cost model reads


class BenchTotals(_Input):
    sampled_frames: int = Field(ge=0)
    escalation_fraction: float = Field(ge=0, le=1)
    escalated: int = Field(ge=0)
    messages: int = Field(ge=0)
    message_bytes_mean: float = Field(ge=0)
    edge_cpu_s_per_frame: float = Field(ge=0)
    baseline_cpu_s_per_frame: float = Field(gt=0)
    cameras_per_core: float = Field(gt=0)
    message_units_mean: float | None = Field(None, ge=0, description="optional: mean 5 KB units per message")


class Warmup(_Input):
    escalation_fraction: float = Field(ge=0, le=1)
    hours: float = Field(ge=0)
    # After the warm-up the camera runs the student its specialization deployed: this fraction from then on.
    steady_escalation_fraction: float | None = Field(None, ge=0, le=1)


class BenchSummary(_Input):
    schema_: str = Field(alias="schema", pattern=r"^framesieve\.bench/1$")
    fps: float = Field(gt=0)
    total: BenchTotals
    warmup: Warmup | None = None


def parse_summary(data: object, source: str = "<summary>") -> BenchSummary:
    """Validate a bench summary; the error names the file and each missing or bad key."""
    try:
        return BenchSummary.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(map(str, err["loc"])) or "(top level)"
            if err["type"] == "missing":
                problems.append(f"  missing key {where!r}")
            else:
                problems.append(f"  {where}: {err['msg']}; got {err.get('input')!r:.80}")
        raise SummaryError(f"{source} is not a usable bench summary:\n" + "\n".join(problems)) from exc


def load_summary(path: Path | str) -> BenchSummary:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise SummaryError(f"cannot read bench summary {path}: {exc.strerror}; run `edge-agent bench` first") from exc
    except json.JSONDecodeError as exc:
        raise SummaryError(f"{path}: not valid JSON: {exc}") from exc
    return parse_summary(data, str(path))


@dataclass(frozen=True)
class LineItem:
    """One traceable figure: quantity (in the price's unit) x unit price = $/month, for the whole fleet."""

    name: str
    quantity: float
    unit: str
    unit_price_usd: float
    usd_per_month: float
    source: str


def _item(name: str, quantity: float, price, unit: str | None = None, unit_price: float | None = None) -> LineItem:
    usd = price.usd if unit_price is None else unit_price
    return LineItem(name, quantity, unit or price.unit, usd, quantity * usd, price.source)


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 2.0000000001 from float noise is still 2


def message_units(nbytes: float, unit_bytes: int = 5120) -> int:
    """IoT Core meters each message in 5 KB units, rounded up: 5120 bytes is 1 unit, 5121 is 2."""
    return max(1, _ceil(nbytes / unit_bytes))


def messages_per_escalation(summary: BenchSummary) -> float:
    t = summary.total
    return t.messages / t.escalated if t.escalated else 1.0


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


# ---------------------------------------------------------------- baseline

@dataclass(frozen=True)
class BaselineCost:
    label: str
    cameras: int
    cpu_s_per_frame: float
    vcpus_per_camera: float  # provisioned: load / target utilisation x headroom
    instances: int
    items: list[LineItem]

    @property
    def usd_per_month(self) -> float:
        return sum(i.usd_per_month for i in self.items)

    @property
    def usd_per_camera_month(self) -> float:
        return self.usd_per_month / self.cameras


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


# ---------------------------------------------------------------- hybrid

def usage_items(summary: BenchSummary, pricing: Pricing, messages: float) -> list[LineItem]:
    """Everything the cloud spends per escalation message, for `messages` messages (linear in them)."""
    p, pe, iot = pricing, pricing.per_escalation, pricing.iot_core
    nbytes = summary.total.message_bytes_mean
    units = summary.total.message_units_mean or message_units(nbytes, iot.message_unit_bytes)
    up = messages * units / 1e6
    if iot.basic_ingest:
        uplink = _item("IoT escalations (Basic Ingest: no messaging charge)", up, iot.messaging, unit_price=0.0)
    else:
        uplink = _item(f"IoT escalation messages ({units:g} x 5 KB units)", up, iot.messaging)
    verdict_units = message_units(pe.verdict_bytes, iot.message_unit_bytes)
    gb_s = pe.lambda_invocations * p.lambda_.memory_mb / 1024 * p.lambda_.duration_ms / 1000
    kept = messages * pe.training_sample_rate
    return [
        uplink,
        _item("IoT verdict messages", messages * pe.verdict_messages * verdict_units / 1e6, iot.messaging),
        _item("IoT rules triggered", messages * pe.rules_triggered / 1e6, iot.rules_triggered),
        _item("IoT rule actions", messages * pe.rule_actions / 1e6, iot.rule_actions),
        _item("Lambda requests", messages * pe.lambda_invocations / 1e6, p.lambda_.requests),
        _item(f"Lambda compute ({p.lambda_.memory_mb} MB x {p.lambda_.duration_ms:g} ms)", messages * gb_s,
              p.lambda_.compute),
        _item("SageMaker data processed (in + out)",
              messages * pe.endpoint_calls * (nbytes + pe.verdict_bytes) / GB, p.sagemaker.data_processed),
        _item("DynamoDB writes", messages * pe.dynamodb_writes * _ceil(p.dynamodb.item_bytes / 1024) / 1e6,
              p.dynamodb.writes),
        _item(f"DynamoDB storage ({p.dynamodb.retention_months:g} months kept)",
              messages * pe.dynamodb_writes * p.dynamodb.item_bytes * p.dynamodb.retention_months / GB,
              p.dynamodb.storage),
        _item(f"S3 PUTs (training samples, {pe.training_sample_rate:.0%})", kept * pe.s3_puts_per_sample / 1e3,
              p.s3.puts),
        _item(f"S3 storage ({p.s3.retention_months:g} months kept)", kept * nbytes * p.s3.retention_months / GB,
              p.s3.storage),
        _item("SNS publishes (alerts)", messages * pe.sns_publishes / 1e6, p.sns.publishes),
        _item("Data transfer in (escalations)", messages * nbytes / GB, p.data_transfer.inbound),
        _item("Data transfer out (verdicts)", messages * pe.verdict_bytes / GB, p.data_transfer.outbound),
    ]


def gpu_load(summary: BenchSummary, pricing: Pricing, cameras: int, fraction: float) -> float:
    """Endpoint instances the fleet keeps busy (unrounded): mean image rate x headroom / usable throughput."""
    sm, pe = pricing.sagemaker, pricing.per_escalation
    images_per_s = (cameras * summary.fps * fraction * messages_per_escalation(summary)
                    * pe.endpoint_calls * pe.images_per_call)
    return images_per_s * sm.headroom / (sm.teacher_images_per_s * sm.target_utilisation)


def gpu_instances_needed(summary: BenchSummary, pricing: Pricing, cameras: int, fraction: float) -> int:
    """Whole instances for that load, never fewer than the endpoint's minimum."""
    return max(pricing.sagemaker.min_instances, _ceil(gpu_load(summary, pricing, cameras, fraction)))


def cameras_per_gateway(summary: BenchSummary, pricing: Pricing) -> int:
    g = pricing.gateway
    fit = max(1, math.floor(summary.total.cameras_per_core * g.cores * g.target_utilisation + 1e-9))
    return min(fit, g.max_cameras) if g.max_cameras else fit


@dataclass(frozen=True)
class HybridCost:
    cameras: int
    escalation_fraction: float  # the monthly average used
    escalations: float  # escalated sampled frames per month, fleet
    gpu_instances: int
    gpu_load: float  # instances the fleet keeps busy (unrounded)
    gpu_at_minimum: bool  # the load is below the endpoint's minimum: a small fleet pays for idle capacity
    cameras_per_gateway: int
    gateways: int
    cloud_items: list[LineItem]
    gateway_items: list[LineItem]

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
        """$ per escalated frame by line, the endpoint's instance-hours shared over this fleet's escalations."""
        if self.escalations <= 0:
            return []
        return [(i.name, i.usd_per_month / self.escalations) for i in self.cloud_items if "connectivity" not in i.name]

    def usd_per_escalation(self) -> float | None:
        return sum(u for _, u in self.per_escalation()) if self.escalations > 0 else None


def hybrid_cost(summary: BenchSummary, pricing: Pricing, cameras: int,
                escalation_fraction: float | None = None) -> HybridCost:
    """Cloud bill (endpoint, IoT, Lambda, stores) and gateways, at the bench's monthly fraction or a given one."""
    f = monthly_escalation_fraction(summary, pricing) if escalation_fraction is None else escalation_fraction
    hours = pricing.hours_per_month
    escalations = cameras * f * summary.fps * hours * 3600
    gpu = gpu_instances_needed(summary, pricing, cameras, f)
    per_gw = cameras_per_gateway(summary, pricing)
    gateways = _ceil(cameras / per_gw)
    sm, g = pricing.sagemaker, pricing.gateway
    cloud = [
        _item(f"SageMaker {sm.instance.type} endpoint ({gpu} instance(s))", gpu * hours, sm.instance),
        *usage_items(summary, pricing, escalations * messages_per_escalation(summary)),
        _item(f"IoT connectivity ({gateways} gateway(s))", gateways * hours * 60 / 1e6, pricing.iot_core.connectivity),
    ]
    gateway = [
        _item(f"Gateway hardware (/{g.amortisation_months:g} months)", gateways, g.hardware, "gateway-month",
              g.hardware.usd / g.amortisation_months),
        _item("Gateway power", gateways, g.power),
    ]
    load = gpu_load(summary, pricing, cameras, f)
    return HybridCost(cameras, f, escalations, gpu, load, load < sm.min_instances, per_gw, gateways, cloud, gateway)
