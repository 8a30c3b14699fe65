"""The agent's configuration: one YAML file, validated at load into typed objects.

`defaults` holds every per-camera setting; each camera may override any of them (deep-merged), so a
fleet config states the common case once. Errors name the key path, its line, the bad value and what
is allowed; `edge-agent validate-config` prints them and exits 2.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge_agent.pipeline.motion import MotionConfig


class ConfigError(Exception):
    """The configuration file is missing, not YAML, or invalid; the message lists every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegionSettings(_Strict):
    whole_frame_fraction: float = Field(0.5, gt=0, le=1)
    max_regions: int = Field(3, ge=1, le=16)
    margin: float = Field(0.15, ge=0, le=1)
    refresh_s: float = Field(10.0, ge=0, description="run on the whole frame at least this often (0: never)")


class LabelBand(_Strict):
    accept: float = Field(gt=0, le=1)
    reject: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> LabelBand:
        if self.reject >= self.accept:
            raise ValueError(f"reject ({self.reject}) must be below accept ({self.accept})")
        return self


class CascadeSettings(_Strict):
    level: Literal["presence", "boxes"] = "presence"
    labels: dict[str, LabelBand] = Field(default_factory=lambda: {
        "person": LabelBand(accept=0.5, reject=0.2), "vehicle": LabelBand(accept=0.5, reject=0.2)})
    audit_fraction: float = Field(0.02, ge=0, le=1)
    budget_per_hour: int = Field(1200, ge=0)

    @field_validator("labels")
    @classmethod
    def _known(cls, value: dict[str, LabelBand]) -> dict[str, LabelBand]:
        unknown = set(value) - {"person", "vehicle"}
        if unknown:
            raise ValueError(f"unknown labels {sorted(unknown)}; FrameSieve reports person and vehicle")
        return value


class TrackerSettings(_Strict):
    iou: float = Field(0.2, gt=0, le=1)
    max_age_s: float = Field(3.0, gt=0)


class CameraSettings(_Strict):
    fps: float = Field(1.0, gt=0, le=30, description="sampled frames per second")
    motion: MotionConfig = Field(default_factory=MotionConfig)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    cascade: CascadeSettings = Field(default_factory=CascadeSettings)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)


class CameraConfig(CameraSettings):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    source: str = Field(min_length=1)


class EscalationSettings(_Strict):
    transport: Literal["none", "sagemaker", "url"] = "url"
    url: str = "http://127.0.0.1:8080/invocations"
    endpoint_name: str = "framesieve-teacher"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=120)
    retries: int = Field(3, ge=1, le=10)
    crop: Literal["frame", "regions"] = "frame"
    jpeg_quality: int = Field(80, ge=30, le=100)


class OutputSettings(_Strict):
    events_db: str = "framesieve-events.sqlite"
    detections_out: str | None = None
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve Prometheus /metrics here")
    metrics_host: str = "127.0.0.1"


class AgentConfig(_Strict):
    site: str = "site-1"
    student: str = Field("default", description="student manifest path, or 'default' for the shipped one")
    student_threads: int = Field(1, ge=1, le=64)
    cameras: list[CameraConfig] = Field(min_length=1)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)

    @field_validator("cameras")
    @classmethod
    def _unique(cls, value: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {dupes}")
        return value


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(override)


def _lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """Key path -> 1-based line, from the YAML node tree (for error messages)."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out.update(_lines(value, (*path, key.value)))
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_lines(item, (*path, i)))
    return out


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    try:
        raw = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (site, cameras, escalation, ...)")
    lines = _lines(node) if node is not None else {}
    defaults = raw.pop("defaults", {}) or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: 'defaults' must be a mapping of camera settings")
    cameras = raw.get("cameras")
    if isinstance(cameras, list):
        raw["cameras"] = [_merge(defaults, c) if isinstance(c, dict) else c for c in cameras]
    try:
        CameraSettings.model_validate(defaults)
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
            where = ".".join(map(str, loc)) or "(top level)"
            at = f" (line {line})" if line else ""
            problems.append(f"  {where}{at}: {err['msg']}; got {err.get('input')!r:.80}")
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(problems)) from exc


def load_config(path: Path | str) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}; see config/agent.example.yaml") from exc
    return parse_config(text, str(path))
