"""The price file (config/pricing.yaml) as validated models, with user overrides merged over it.

Prices steer a purchase decision, so a typo must fail loudly: unknown keys are rejected, prices cannot be
negative, and every error names the key path, its line and the value it got.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.training import TIERS
from contracts.yaml_errors import syntax_message
from costing.backends import Backends, InstancePrice, Price
from models.shipped import shipped_config

DEFAULT_PRICING = shipped_config("pricing.yaml")  # the source tree's config/, or the installed wheel's

# The unit the cost model assumes for each price line: a line priced per another unit would be silently
# off by a factor of a thousand or a million, so it is rejected instead.
EXPECTED_UNITS = {
    ("baseline", "instance"): "instance-hour",
    ("sagemaker", "data_processed"): "GB",
    ("iot_core", "messaging"): "million messages",
    ("iot_core", "connectivity"): "million connection-minutes",
    ("iot_core", "rules_triggered"): "million rules triggered",
    ("iot_core", "rule_actions"): "million actions",
    ("lambda", "requests"): "million requests",
    ("lambda", "compute"): "GB-second",
    ("dynamodb", "writes"): "million write request units",
    ("dynamodb", "storage"): "GB-month",
    ("s3", "puts"): "thousand requests",
    ("s3", "gets"): "thousand requests",
    ("s3", "storage"): "GB-month",
    ("sns", "publishes"): "million requests",
    ("data_transfer", "inbound"): "GB",
    ("data_transfer", "outbound"): "GB",
    ("gateway", "hardware"): "gateway",
    ("gateway", "power"): "gateway-month",
}


class PricingError(Exception):
    """The price file or its overrides are missing, not YAML, or invalid; the message lists every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EC2Instance(InstancePrice):
    vcpus: int = Field(ge=1, description="vCPUs one instance provides")


class BaselinePricing(_Strict):
    instance: EC2Instance
    target_utilisation: float = Field(0.7, gt=0, le=1)
    headroom: float = Field(1.3, ge=1)


class SageMakerPricing(_Strict):
    """What every SageMaker-hosted backend shares; the instances themselves are backend options."""

    target_utilisation: float = Field(0.7, gt=0, le=1, description="instances are added above this share")
    headroom: float = Field(1.3, ge=1, description="extra capacity for bursts (multiplies the mean rate)")
    data_processed: Price


class IoTCorePricing(_Strict):
    messaging: Price
    message_unit_bytes: int = Field(5120, ge=1)
    connectivity: Price
    rules_triggered: Price
    rule_actions: Price
    basic_ingest: bool = True


class LambdaPricing(_Strict):
    requests: Price
    compute: Price
    memory_mb: int = Field(512, ge=128, le=10240)
    duration_ms: float = Field(150, gt=0, le=900_000)


class DynamoDBPricing(_Strict):
    writes: Price
    storage: Price
    item_bytes: int = Field(800, ge=1, le=400 * 1024)
    retention_months: float = Field(3, ge=0)


class S3Pricing(_Strict):
    puts: Price
    gets: Price
    storage: Price
    retention_months: float = Field(12, ge=0)
    # Per training tier (contracts.training.TIERS), where the bucket's lifecycle keeps it for another time than
    # retention_months: the template expires an agreeing audit after RetentionDays (30), like a result row.
    retention_months_by_tier: dict[str, float] = Field(default_factory=dict)
    # The storage class packed training objects move to (the Firehose sink's lifecycle rule): storage, the
    # lifecycle's transition request per object, and the per-GB charge for reading them back. None: not priced.
    glacier_ir_storage: Price | None = None
    glacier_ir_transitions: Price | None = None
    glacier_ir_retrieval: Price | None = None
    glacier_ir_min_months: float = Field(3, ge=0, description="minimum storage duration billed (90 days)")
    glacier_ir_min_object_bytes: int = Field(128 * 1024, ge=0, description="S3 does not transition smaller objects")
    transition_months: float = Field(1, ge=0, description="months in Standard before the transition (30 days)")

    @model_validator(mode="after")
    def _known_tiers(self) -> S3Pricing:
        for tier, months in self.retention_months_by_tier.items():
            if tier not in TIERS:
                raise ValueError(f"s3.retention_months_by_tier: unknown tier {tier!r}; the tiers are "
                                 f"{', '.join(TIERS)}")
            if months < 0:
                raise ValueError(f"s3.retention_months_by_tier.{tier} must be >= 0; got {months}")
        return self


class FirehosePricing(_Strict):
    """Kinesis Data Firehose, Direct PUT to S3 (the training records' Firehose sink)."""

    ingestion: Price
    record_rounding_bytes: int = Field(5120, ge=1, description="each record is billed rounded up to this")
    buffer_mb: float = Field(128, gt=0, le=128, description="the streams' buffer size (before compression), MiB")
    buffer_s: float = Field(900, gt=0, le=900, description="the streams' buffer interval, seconds")


class TrainingPricing(_Strict):
    """Where kept training records go and how often they are read back (infra: TrainingSink)."""

    sink: str = Field("s3", pattern=r"^(s3|firehose)$", description="s3: an object per escalation or gateway "
                                                                       "batch; firehose: packed by a stream")
    archived_reads: float = Field(1, ge=0, description="times each record is read back after it moved to "
                                                       "Glacier Instant Retrieval, over its life")


class LivePricing(_Strict):
    """What the dashboard's live Cost page needs and the results store does not hold: the bytes of an escalation
    message and of a kept training record, and the kept records' tiers (the cost model reads them from a bench
    summary). Defaults: bench-vtest's summary (the agent's default message, 416 px q70, whole frame)."""

    bytes_per_escalation: float = Field(28_713, gt=0, description="one escalation's bytes in its gateway message")
    training_bytes_per_record: float = Field(21_796, gt=0, description="a kept record as stored (gzip)")
    training_json_bytes_per_record: float = Field(29_224, gt=0, description="the same record as plain JSON")
    training_tiers: dict[str, float] = Field(default_factory=lambda: {"audit": 2.0, "disagreement": 2.0},
                                             description="kept records by tier (shares; their months: s3)")
    source: str = Field("bench-vtest summary.json (total.message_bytes_mean, training_*_per_record, "
                        "training_tiers), 2026-12-03", min_length=1)


class SNSPricing(_Strict):
    publishes: Price


class DataTransferPricing(_Strict):
    inbound: Price
    outbound: Price


class GatewayPricing(_Strict):
    hardware: Price
    amortisation_months: float = Field(36, gt=0)
    cores: int = Field(4, ge=1)
    target_utilisation: float = Field(0.7, gt=0, le=1)
    max_cameras: int | None = Field(None, ge=1)
    power: Price


class PerEscalation(_Strict):
    """Cloud calls per escalation message; the cloud backend's recorded counts replace these defaults."""

    endpoint_calls: float = Field(1, ge=0)
    images_per_call: float = Field(1, ge=0)
    lambda_invocations: float = Field(1, ge=0)
    dynamodb_writes: float = Field(1, ge=0)
    dynamodb_claims: float = Field(1, ge=0)
    training_sample_rate: float = Field(0.1, ge=0, le=1)
    s3_puts_per_sample: float = Field(1, ge=0)
    verdict_messages: float = Field(2, ge=0)
    verdict_bytes: int = Field(1024, ge=0)
    rules_triggered: float = Field(1, ge=0)
    rule_actions: float = Field(1, ge=0)
    sns_publishes: float = Field(0.05, ge=0)


class FargatePricing(_Strict):
    vcpu: Price
    memory: Price
    task_vcpus: float = Field(1, gt=0, le=16, description="vCPUs of one sieve task")
    task_memory_gb: float = Field(2, gt=0, le=120, description="memory of one sieve task, GB")
    target_utilisation: float = Field(0.7, gt=0, le=1, description="a stream worker's CPU is kept at most this busy")


class KvsPricing(_Strict):
    data_consumed: Price
    image_bytes: float = Field(gt=0, description="bytes of one image GetImages returns")
    image_bytes_source: str = Field(min_length=1)


class LandedPricing(_Strict):
    """Landed-video mode (landed/: the sieve in the cloud): the agent's pipeline in a Lambda (S3 segments) or
    a Fargate task (stream workers), escalating through the router in the same process (no IoT Core)."""

    segment_s: float = Field(60, gt=0, le=86_400, description="seconds of video per landed S3 object")
    lambda_memory_mb: int = Field(1769, ge=128, le=10240, description="the sieve Lambda's memory (1,769 MB = 1 vCPU)")
    init_s: float = Field(ge=0, description="billed seconds per invocation besides the frames (fetch, model load)")
    init_source: str = Field(min_length=1)
    escalation_wait_s: float = Field(ge=0, description="billed seconds the sieve waits for each escalation's answer")
    escalation_wait_source: str = Field(min_length=1)
    cpu_s_per_frame: float | None = Field(None, gt=0, description="the sieve's CPU per sampled frame (None: the "
                                                                  "bench summary's edge CPU per frame, same code)")
    frame_events: bool = Field(True, description="each sampled frame's decision into the store's minute counters")
    frame_event_write_units: float = Field(4, ge=0, description="DynamoDB write units per frame event")
    fargate: FargatePricing
    kvs: KvsPricing


LANDED_UNITS = {("fargate", "vcpu"): "vCPU-hour", ("fargate", "memory"): "GB-hour", ("kvs", "data_consumed"): "GB"}


class Pricing(_Strict):
    schema_: str = Field("framesieve.pricing/1", alias="schema", pattern=r"^framesieve\.pricing/1$")
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="date the prices were recorded")
    region: str = Field(min_length=1)
    note: str = Field(min_length=1)
    hours_per_month: float = Field(730, gt=0)
    baseline: BaselinePricing
    sagemaker: SageMakerPricing
    iot_core: IoTCorePricing
    lambda_: LambdaPricing = Field(alias="lambda")
    dynamodb: DynamoDBPricing
    s3: S3Pricing
    firehose: FirehosePricing | None = Field(None, description="the training records' Firehose sink")
    training: TrainingPricing = Field(default_factory=TrainingPricing)
    live: LivePricing = Field(default_factory=LivePricing, description="the live Cost page's inputs the store lacks")
    sns: SNSPricing
    data_transfer: DataTransferPricing
    gateway: GatewayPricing
    per_escalation: PerEscalation = Field(default_factory=PerEscalation)
    backends: Backends
    warmup_amortisation_months: float = Field(1, gt=0)
    landed: LandedPricing | None = Field(None, description="landed-video mode; absent: not priced")
    sources: list[str] = Field(default_factory=list, description="files the figures were read from")

    @model_validator(mode="after")
    def _units(self) -> Pricing:
        bad = []
        for (section, line), unit in EXPECTED_UNITS.items():
            got = getattr(getattr(self, "lambda_" if section == "lambda" else section), line).unit
            if got != unit:
                bad.append(f"{section}.{line}.unit must be {unit!r} (the model prices it per that); got {got!r}")
        for name, option in self.backends.options.items():
            for line, unit in (("instance", "instance-hour"), ("compute", "GB-second")):
                got = getattr(getattr(option, line, None), "unit", unit)
                if got != unit:
                    bad.append(f"backends.options.{name}.{line}.unit must be {unit!r}; got {got!r}")
        for (section, line), unit in LANDED_UNITS.items() if self.landed else ():
            got = getattr(getattr(self.landed, section), line).unit
            if got != unit:
                bad.append(f"landed.{section}.{line}.unit must be {unit!r} (the model prices it per that); got {got!r}")
        optional = {("firehose", "ingestion"): "GB", ("s3", "glacier_ir_storage"): "GB-month",
                    ("s3", "glacier_ir_transitions"): "thousand requests", ("s3", "glacier_ir_retrieval"): "GB"}
        for (section, line), unit in optional.items():
            got = getattr(getattr(getattr(self, section), line, None), "unit", unit)
            if got != unit:
                bad.append(f"{section}.{line}.unit must be {unit!r} (the model prices it per that); got {got!r}")
        if self.training.sink == "firehose":
            missing = [name for name, v in (("firehose", self.firehose),
                                            ("s3.glacier_ir_storage", self.s3.glacier_ir_storage),
                                            ("s3.glacier_ir_transitions", self.s3.glacier_ir_transitions),
                                            ("s3.glacier_ir_retrieval", self.s3.glacier_ir_retrieval)) if v is None]
            if missing:
                bad.append(f"training.sink firehose needs {', '.join(missing)} (config/pricing.yaml has them); "
                           "or set training.sink: s3")
        if bad:
            raise ValueError("; ".join(bad))
        return self


def merge(base: Any, override: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else in the override replaces the base."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _lines(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Key path -> 1-based line in the YAML text, for error messages."""
    if node is None:
        return {}
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out.update(_lines(value, (*path, key.value)))
            out[(*path, key.value)] = key.start_mark.line + 1
    return out


def _read(path: Path) -> tuple[dict, dict[tuple, int]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PricingError(f"cannot read price file {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
        lines = _lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        raise PricingError(f"{path}: not valid YAML at {syntax_message(exc)}") from exc
    if not isinstance(raw, dict):
        raise PricingError(f"{path}: the top level must be a mapping (as_of, baseline, sagemaker, ...)")
    return raw, lines


def load_pricing(path: Path | str | None = None, overrides: Path | str | None = None) -> Pricing:
    """Read the price file and merge the user's overrides over it; raise PricingError naming each bad key."""
    path = Path(path) if path else DEFAULT_PRICING
    raw, lines = _read(path)
    files = [str(path)]
    over_lines: dict[tuple, int] = {}
    if overrides:
        over, over_lines = _read(Path(overrides))
        raw = merge(raw, over)
        files.append(str(overrides))
    raw["sources"] = files
    try:
        return Pricing.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc[:2] == ("backends", "options") and len(loc) > 4:
                loc = loc[:3] + loc[4:]  # pydantic puts the option's `kind` tag in the path; the file has none
            where = ".".join(map(str, loc)) or "(top level)"
            at = ""
            for name, table in ((files[-1], over_lines), (files[0], lines)):
                if loc in table:
                    at = f" ({Path(name).name} line {table[loc]})"
                    break
            problems.append(f"  {where}{at}: {err['msg']}; got {err.get('input')!r:.80}")
        raise PricingError(f"{' + '.join(files)} is invalid:\n" + "\n".join(problems)) from exc
