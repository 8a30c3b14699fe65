"""The agent's configuration: one YAML file, validated at load into typed objects.

`defaults` holds every per-camera setting; each camera may override any of them (deep-merged), so a
fleet config states the common case once. Errors name the key path, its line, the bad value and what
is allowed; `edge-agent validate-config` prints them and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from contracts.jobs import Bands
from edge_agent import safe_yaml
from edge_agent.config.base import _Strict
from edge_agent.config.errors import describe_errors as describe_errors  # re-exported
from edge_agent.config.escalation import BreakerSettings as BreakerSettings  # re-exported
from edge_agent.config.escalation import EscalationSettings
from edge_agent.config.escalation import MqttSettings as MqttSettings
from edge_agent.config.escalation import SpoolSettings as SpoolSettings
from edge_agent.config.merge import deep_merge as deep_merge  # re-exported
from edge_agent.config.merge import overlay
from edge_agent.config.student import Int8Calibration as Int8Calibration  # re-exported
from edge_agent.config.student import Int8Gate as Int8Gate
from edge_agent.config.student import StudentSettings
from edge_agent.pipeline.decode import DecodeConfig
from edge_agent.pipeline.fullres import EscalationSourceConfig
from edge_agent.pipeline.motion import MotionConfig
from edge_agent.pipeline.sources import LIVE_SCHEMES
from edge_agent.redact import redact_text, redact_url
from models.student.defaults import DEFAULTS, SpecializationDefaults


class ConfigError(Exception):
    """The configuration file is missing, not YAML, or invalid; the message lists every problem."""


class RegionSettings(_Strict):
    whole_frame_fraction: float = Field(0.5, gt=0, le=1)
    max_regions: int = Field(3, ge=1, le=16)
    margin: float = Field(0.15, ge=0, le=1)
    refresh_s: float = Field(10.0, ge=0, description="run on the whole frame at least this often (0: never)")
    max_downscale: float = Field(3.0, ge=1, le=16, description=(
        "a whole-frame look at a frame more than this many times the student's input on either axis is "
        "split into overlapping tiles, so small objects keep enough pixels"))
    oversize_hint: bool = Field(True, description=(
        "log once per camera and size when the whole frame is shrunk 1.5x or more into one student look (not "
        "tiled): a detect sub-stream at about the student's input decodes a fraction of the pixels"))




class CascadeSettings(_Strict):
    level: Literal["presence", "boxes"] = "presence"
    # Chosen by leaving one scene out for the teacher-derived student: on every fold, the cheapest bands
    # keeping recall on the other scenes (README, `edge-agent models loso`).
    labels: dict[str, Bands] = Field(default_factory=lambda: {
        "person": Bands(accept=0.3, reject=0.2), "vehicle": Bands(accept=0.3, reject=0.2)})
    audit_fraction: float = Field(0.02, ge=0, le=1)
    budget_per_hour: int = Field(1200, ge=0)
    nothing_ttl_s: float = Field(10.0, ge=0, description="how long the cloud's 'nothing here' is trusted")
    nothing_rise: float = Field(0.15, gt=0, le=1, description="student score rise that reopens 'nothing here'")

    @field_validator("labels")
    @classmethod
    def _known(cls, value: dict[str, Bands]) -> dict[str, Bands]:
        unknown = set(value) - {"person", "vehicle"}
        if unknown:
            raise ValueError(f"unknown labels {sorted(unknown)}; FrameSieve reports person and vehicle")
        return value


class TrackerSettings(_Strict):
    iou: float = Field(0.2, gt=0, le=1)
    max_age_s: float = Field(3.0, gt=0)


class OnboardingSettings(_Strict):
    """A camera without a proven student of its own onboards: the cloud decides every frame where the
    student's answer could matter, and the teacher's answers become its training records."""

    enabled: bool = Field(True, description="onboard until a student of its own is promoted on evidence "
                                            "(false: run the agent's student from the start, trading misses "
                                            "for savings)")
    still_check_s: float = Field(DEFAULTS.still_check_s, ge=0, description="with no motion, still send a frame "
                                                                           "this often (0: never)")


class StudentGuardSettings(_Strict):
    """A promoted student's recall test (models/student/sequential.py): `models specialize --install` writes it."""

    audit_fraction: float = Field(gt=0, le=1, description="the audit share the test was sized for")
    recall_threshold: int = Field(ge=1, description="the CUSUM's alarm level")
    recall_weight: int = Field(ge=1, description="what a missed audit adds to it (a hit takes 1 away)")
    recall_labels: list[Literal["person", "vehicle"]] = Field(
        default_factory=lambda: list(DEFAULTS.promotion_labels), min_length=1)


class CameraSettings(_Strict):
    fps: float = Field(1.0, gt=0, le=30, description="sampled frames per second")
    motion: MotionConfig = Field(default_factory=MotionConfig)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    cascade: CascadeSettings = Field(default_factory=CascadeSettings)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    onboarding: OnboardingSettings = Field(default_factory=OnboardingSettings)


class CameraConfig(CameraSettings):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    source: str = Field(min_length=1)
    student: str | None = Field(None, description="this camera's own student manifest (specialization)")
    student_max_escalation: float | None = Field(
        None, gt=0, le=1, description="back to the agent's student if this camera's escalates more than this")
    student_max_audit_disagreement: float | None = Field(
        None, gt=0, le=1, description="back to the agent's student if this camera's audits disagree more than this")
    student_bands: Bands | None = Field(None, description="this camera's own student's cascade bands (every label)")
    student_guard: StudentGuardSettings | None = Field(
        None, description="this camera's own student's recall test, as its decision sized it")
    loop: bool = Field(False, description="files and folders: start again at the end, instead of ending the camera")
    realtime: bool = Field(False, description="files and folders: hand out samples at the pace of media time")
    decode: DecodeConfig = Field(default_factory=DecodeConfig, description=(
        "streams: how frames are decoded (files only when given: else OpenCV, as the bench's figures were)"))

    escalation_source: EscalationSourceConfig | None = Field(None, description=(
        "the camera's full-resolution (main) stream, used only for escalation crops while `source` is its "
        "sub-stream (the detect stream); a URL, or {url, pick, max_skew_s, buffer_s, threads}"))

    @field_validator("escalation_source", mode="before")
    @classmethod
    def _url_alone(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _file_options_on_files(self) -> CameraConfig:
        scheme = self.source.split("://", 1)[0].lower() if "://" in self.source else ""
        if scheme in LIVE_SCHEMES and (self.loop or self.realtime):
            raise ValueError(f"loop/realtime are for files and folders; camera {self.id}'s source is a live "
                             f"{scheme}:// stream, which runs in real time and never ends: remove them")
        return self

    def source_options(self) -> dict[str, object]:
        """What `open_source` takes for this camera beyond its URI and fps."""
        opts: dict[str, object] = {k: v for k, v in (("loop", self.loop), ("realtime", self.realtime)) if v}
        live = "://" in self.source and self.source.split("://", 1)[0].lower() in LIVE_SCHEMES
        if live or "decode" in self.model_fields_set:
            opts["decode"] = self.decode
        return opts

    @field_validator("source")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if "://" in value:  # a bad port would otherwise kill the camera's thread after start
            try:
                urlsplit(value).port  # noqa: B018 - raises for a port outside 0-65535
            except ValueError as exc:
                raise ValueError(f"{redact_url(value)}: {exc}; give a port from 1 to 65535") from None
        return value


# A camera's identity, source and own student: fixed by its config, never by a live settings change.
CAMERA_ONLY_FIELDS = frozenset(CameraConfig.model_fields) - frozenset(CameraSettings.model_fields)


class FleetSettings(_Strict):
    """Fleet management over the same connection (mqtt and iot-core transports only)."""

    shadow: bool = Field(True, description="apply the device shadow's desired config live, report state")
    jobs: bool = Field(True, description="take model-update jobs")
    telemetry_interval_s: float = Field(60.0, ge=0, le=86_400, description="0: no telemetry")
    models_dir: str = Field("framesieve-models", description="where model updates are installed")
    health_max_latency_ms: float = Field(1000.0, gt=0, description="a new model slower than this per batch fails")
    probation_batches: int = Field(3, ge=1, le=1000, description="live batches a new model must pass")


class SpecializationSettings(_Strict):
    """The per-camera specialization loop: keep the teacher's answers, fine-tune, promote, roll out."""

    enabled: bool = Field(False, description="collect training records and run the loop (needs the train extra)")
    records_dir: str = Field("framesieve-training", description="the teacher's answers, one folder per camera")
    retrain_after_records: int = Field(200, ge=1, description="run the loop after this many new records")
    interval_s: float = Field(86_400.0, ge=0, description="and at least this often when there are new ones (0: off)")
    min_records: int = Field(DEFAULTS.min_records, ge=4, description="never train on fewer")
    keep_records: int = Field(2000, ge=8, description="newest records kept per camera; older ones are deleted")
    epochs: int = Field(DEFAULTS.epochs, ge=1, le=500)
    target_recall: float = Field(DEFAULTS.target_recall, gt=0, lt=1,
                                 description="presence recall a promoted student's lower bound must reach")
    confidence: float = Field(DEFAULTS.confidence, gt=0.5, lt=1, description="of that one-sided lower bound")
    bound: Literal["wilson", "clopper-pearson"] = Field(DEFAULTS.bound, description="how the bound is computed")
    min_present: int = Field(DEFAULTS.min_present, ge=1, description="held-back frames showing each promotion "
                                                                     "label, at least")
    min_absent: int = Field(DEFAULTS.min_absent, ge=0, description="held-back frames without it, at least")
    min_span_s: float = Field(DEFAULTS.min_span_s, ge=0, description="camera time the held-back frames must cover")
    promotion_labels: list[Literal["person", "vehicle"]] = Field(
        default_factory=lambda: list(DEFAULTS.promotion_labels), min_length=1,
        description="labels whose recall bound decides a promotion and which the guard watches")
    guard_recall_drop_to: float = Field(DEFAULTS.guard_recall_drop_to, gt=0, lt=1,
                                        description="the fall of recall the guard must notice...")
    guard_detect_s: float = Field(DEFAULTS.guard_detect_s, gt=0, description="...within this much camera time")
    guard_power: float = Field(DEFAULTS.guard_power, gt=0.5, lt=1, description="...with this probability")
    guard_false_alarms_per_week: float = Field(DEFAULTS.guard_false_alarms_per_week, gt=0,
                                               description="...at most this many false alarms a week")
    guard_max_audit_fraction: float = Field(DEFAULTS.guard_max_audit_fraction, gt=0, le=1,
                                            description="no promotion when the guard would need more audits")
    warmup_records: int = Field(100, ge=0, description="a camera not onboarding audits more until it has this many")
    warmup_audit_fraction: float = Field(0.25, ge=0, le=1, description="its audit share during the warm-up")
    escalation_margin: float = Field(DEFAULTS.escalation_margin, ge=0, le=1,
                                     description="roll back above the champion's live escalation fraction plus this")
    audit_margin: float = Field(DEFAULTS.audit_margin, ge=0, le=1,
                                description="roll back above the champion's audit disagreement plus this")
    check_interval_s: float = Field(60.0, gt=0, description="how often the loop looks for new records")
    train_threads: int = Field(1, ge=1, le=64, description="CPU threads for training (it runs niced)")
    timeout_s: float = Field(3600.0, gt=0, description="a training run taking longer is stopped")

    def rules(self) -> SpecializationDefaults:
        """The promotion and guard rules these settings make (for `models specialize`)."""
        return DEFAULTS.model_copy(update={k: getattr(self, k) for k in SpecializationDefaults.model_fields
                                           if k in type(self).model_fields} | {
            "promotion_labels": tuple(self.promotion_labels)})

    @model_validator(mode="after")
    def _enough_kept(self) -> SpecializationSettings:
        if self.keep_records < self.min_records:
            raise ValueError(f"keep_records ({self.keep_records}) must be at least min_records ({self.min_records})")
        if self.guard_recall_drop_to >= self.target_recall:
            raise ValueError(f"guard_recall_drop_to ({self.guard_recall_drop_to}) must be below target_recall "
                             f"({self.target_recall}): the guard notices a fall")
        return self


class OutputSettings(_Strict):
    events_db: str = "framesieve-events.sqlite"
    detections_out: str | None = None
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve Prometheus /metrics here")
    metrics_host: str = "127.0.0.1"
    log_frames: bool = Field(True, description="a log line per decided frame (camera, frame, decided_by, latency)")


class AgentConfig(_Strict):
    site: str = "site-1"
    student: str = Field("default", description="student manifest path, or 'default' for the shipped one")
    # Written in the file as `student: {manifest, precision, calibration, gate}`: split at load, so the manifest
    # stays the plain `student` every part reads.
    student_settings: StudentSettings = Field(default_factory=StudentSettings)
    student_threads: int = Field(1, ge=1, le=64)
    cameras: list[CameraConfig] = Field(min_length=1)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    specialization: SpecializationSettings = Field(default_factory=SpecializationSettings)

    @model_validator(mode="before")
    @classmethod
    def _student_mapping(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("student"), dict):
            if "student_settings" in raw:
                raise ValueError("give the student's settings as `student: {manifest, precision, ...}` only")
            raw = dict(raw)
            settings = dict(raw.pop("student"))
            raw["student"] = settings.get("manifest", "default")
            raw["student_settings"] = settings
        return raw

    @model_validator(mode="after")
    def _one_manifest(self) -> AgentConfig:
        # `student: PATH` (or a model_copy that set it) wins over the settings' own copy
        if self.student_settings.manifest != self.student:
            self.student_settings = self.student_settings.model_copy(update={"manifest": self.student})
        return self

    @model_validator(mode="after")
    def _size_in_flight(self) -> AgentConfig:
        # max_in_flight: auto, from these cameras (on a copy: a settings object given in may serve another config)
        self.escalation = self.escalation.model_copy()
        self.escalation.size_in_flight(c.fps for c in self.cameras)
        return self

    @field_validator("cameras")
    @classmethod
    def _unique(cls, value: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {dupes}")
        return value


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    try:
        raw, lines = safe_yaml.load(text)
    except safe_yaml.YamlLimitError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(redact_text(f"{source}: not valid YAML at {safe_yaml.syntax_message(exc)}")) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (site, cameras, escalation, ...)")
    defaults = raw.pop("defaults", {}) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: 'defaults' must be a mapping of camera settings")
    cameras = raw.get("cameras")
    own = list(cameras) if isinstance(cameras, list) else []  # each camera as written, before the defaults
    if isinstance(cameras, list):
        raw["cameras"] = [overlay(defaults, c) if isinstance(c, dict) else c for c in cameras]
    problems: list[str] = []
    try:
        CameraSettings.model_validate(defaults)
    except ValidationError as exc:  # said once, where it is written, not again for every camera
        problems += describe_errors(exc, lines, prefix=("defaults",))
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems += describe_errors(exc, lines, own_cameras=own, skip_defaults=bool(problems))
    if problems:
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    return config


def load_config(path: Path | str) -> AgentConfig:
    path = Path(path)
    try:
        if path.stat().st_size > safe_yaml.MAX_BYTES:  # not read at all: it could be a disk image
            raise ConfigError(f"{path}: {path.stat().st_size} bytes, over the {safe_yaml.MAX_BYTES}-byte limit "
                              "for a config file")
        text = safe_yaml.decode(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}; see config/agent.example.yaml") from exc
    except safe_yaml.YamlLimitError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(text, str(path))
