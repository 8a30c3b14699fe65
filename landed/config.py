"""The sieve's configuration: one YAML file (config/sieve.example.yaml), validated at load into typed objects.

It says which landed video belongs to which camera (an S3 key prefix, a Kinesis Video stream), the site of
each camera, and the pipeline settings the gateway agent takes for a camera (fps, motion, regions, cascade
bands, tracker, onboarding), with `defaults` deep-merged under each camera as in the agent's config. From it
`agent_config` builds the AgentConfig the edge pipeline runs with: the same code, the same settings.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from edge_agent import safe_yaml
from edge_agent.config import AgentConfig, CameraSettings, describe_errors
from edge_agent.config.base import _Strict
from edge_agent.config.escalation import EscalationSettings, auto_or_count
from edge_agent.config.merge import overlay

_ESC = EscalationSettings.model_fields
NAME = r"^[A-Za-z0-9_-]{1,60}$"  # goes into a thing name (A-Z a-z 0-9 : _ -), so no other characters


class SieveError(Exception):
    """The sieve's config is invalid, or a landed object or stream cannot be mapped to a camera."""


class SieveEscalation(_Strict):
    """How frames go to the cloud model: the agent's own settings of the same names (their defaults too)."""

    crop: Literal["frame", "regions", "uncertain"] = _ESC["crop"].default
    crop_margin: float = Field(_ESC["crop_margin"].default, ge=0, le=4)
    max_crop_px: int = Field(_ESC["max_crop_px"].default, ge=32, le=4096)
    jpeg_quality: int = Field(_ESC["jpeg_quality"].default, ge=30, le=100)
    max_in_flight: int | Literal["auto"] = Field(_ESC["max_in_flight"].default)

    _auto_or_count = field_validator("max_in_flight", mode="before")(auto_or_count)


class SieveCamera(CameraSettings):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    site: str = Field(pattern=NAME, description="the site its rows are stored under")
    s3_prefix: str | None = Field(None, min_length=1, description="objects whose key starts with this are its video")
    bucket: str | None = Field(None, min_length=3, description="only objects of this bucket (default: any)")
    stream: str | None = Field(None, pattern=r"^[a-zA-Z0-9_.-]{1,256}$", description="its Kinesis Video stream")

    @model_validator(mode="after")
    def _has_video(self) -> SieveCamera:
        if not self.s3_prefix and not self.stream:
            raise ValueError(f"camera {self.id}: give s3_prefix (landed objects) or stream (Kinesis Video), or both")
        return self


class KvsSettings(_Strict):
    image_format: Literal["JPEG", "PNG"] = Field("JPEG", description="what GetImages returns")
    height_px: int | None = Field(None, ge=1, le=2160, description="scale images to this height (None: the stream's)")
    lag_s: float = Field(10.0, ge=0, le=3600, description="follow: ask for media at least this old (ingest delay)")
    poll_s: float = Field(5.0, gt=0, le=300, description="follow: wait this long when no new media has arrived")
    max_results: int = Field(100, ge=1, le=100, description="images per GetImages page (the API allows 100)")


class StreamGroup(_Strict):
    name: str = Field(pattern=NAME)
    streams: list[str] = Field(min_length=1, max_length=99)


class SieveConfig(_Strict):
    thing: str = Field("framesieve-sieve", pattern=NAME, description=(
        "the identity the sieve escalates as: registered as thing '<thing>_<site>' for each site's cameras"))
    student: str = Field("default", description="student manifest path, or 'default' for the shipped one")
    student_threads: int = Field(1, ge=1, le=64)
    escalation: SieveEscalation = Field(default_factory=SieveEscalation)
    lambda_max_segment_s: float = Field(1800.0, gt=0, le=36_000, description=(
        "a landed object longer than this is handed to the Fargate task instead of the Lambda (README: the "
        "serverless path has the numbers)"))
    kvs: KvsSettings = Field(default_factory=KvsSettings)
    stream_groups: list[StreamGroup] = Field(default_factory=list)
    cameras: list[SieveCamera] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SieveConfig:
        ids = [c.id for c in self.cameras]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"camera ids must be unique; repeated: {dupes}")
        streams = {c.stream: c for c in self.cameras if c.stream}
        for group in self.stream_groups:
            if unknown := [s for s in group.streams if s not in streams]:
                raise ValueError(f"stream group {group.name}: {unknown} is no camera's stream; add a camera with "
                                 "`stream:` for it")
            if len(sites := sorted({streams[s].site for s in group.streams})) > 1:
                raise ValueError(f"stream group {group.name}: its streams are of sites {sites}; a group (one worker) "
                                 "takes the streams of one site: split it by site")
        return self

    # -- which camera a piece of landed video belongs to ------------------------------------------------------
    def camera_for_object(self, bucket: str, key: str) -> SieveCamera:
        """The camera whose s3_prefix is the longest that starts `key` (and whose bucket, if any, matches)."""
        matches = [c for c in self.cameras if c.s3_prefix and key.startswith(c.s3_prefix)
                   and c.bucket in (None, bucket)]
        if not matches:
            known = [f"{c.bucket or '*'}/{c.s3_prefix}" for c in self.cameras if c.s3_prefix]
            raise SieveError(f"s3://{bucket}/{key} is under no camera's s3_prefix {known}; add a camera for it to "
                             "the sieve config (cameras[].s3_prefix), or land it under one of those")
        return max(matches, key=lambda c: len(c.s3_prefix or ""))

    def camera_for_stream(self, stream: str) -> SieveCamera:
        for camera in self.cameras:
            if camera.stream == stream:
                return camera
        raise SieveError(f"stream {stream!r} is no camera's stream {[c.stream for c in self.cameras if c.stream]}; "
                         "add a camera with `stream:` for it to the sieve config")

    def group(self, name: str) -> list[SieveCamera]:
        for group in self.stream_groups:
            if group.name == name:
                return [self.camera_for_stream(s) for s in group.streams]
        raise SieveError(f"stream group {name!r} is not in the sieve config {[g.name for g in self.stream_groups]}")

    def thing_of(self, site: str) -> str:
        return f"{self.thing}_{site}"

    def agent_config(self, cameras: list[tuple[SieveCamera, str]], work: Path) -> AgentConfig:
        """The agent's config for these cameras (each with the source it reads), all of one site: the pipeline
        as a gateway runs it, its events in `work`, escalations through the transport the sieve injects."""
        sites = {cam.site for cam, _ in cameras}
        if len(sites) != 1:
            raise SieveError(f"one run takes the cameras of one site, got {sorted(sites)}")
        settings = set(CameraSettings.model_fields)
        cams = [{**cam.model_dump(include=settings), "id": cam.id, "source": source} for cam, source in cameras]
        return AgentConfig.model_validate({
            # fp32: a Lambda or task keeps no cache between runs, so quantising on its frames would be paid each time
            "site": sites.pop(), "student": {"manifest": self.student, "precision": "fp32"},
            "student_threads": self.student_threads, "cameras": cams,
            "escalation": {"transport": "url", **self.escalation.model_dump()},
            "output": {"events_db": str(work / "events.sqlite"), "log_frames": False},
            "fleet": {"models_dir": str(work / "models")}})


def parse_sieve_config(text: str, source: str = "<sieve config>") -> SieveConfig:
    try:
        raw, lines = safe_yaml.load(text)
    except safe_yaml.YamlLimitError as exc:
        raise SieveError(f"{source}: not valid YAML: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SieveError(f"{source}: not valid YAML at {safe_yaml.syntax_message(exc)}") from exc
    if not isinstance(raw, dict):
        raise SieveError(f"{source}: the top level must be a mapping (thing, student, cameras, ...); see "
                         "config/sieve.example.yaml")
    defaults: Any = raw.pop("defaults", {}) or {}
    if not isinstance(defaults, dict):
        raise SieveError(f"{source}: 'defaults' must be a mapping of camera settings (fps, cascade, ...)")
    cameras = raw.get("cameras")
    own = list(cameras) if isinstance(cameras, list) else []
    if isinstance(cameras, list):
        raw["cameras"] = [overlay(defaults, c) if isinstance(c, dict) else c for c in cameras]
    try:
        return SieveConfig.model_validate(raw)
    except ValidationError as exc:
        problems = describe_errors(exc, lines, own_cameras=own)
        raise SieveError(f"{source} is invalid:\n" + "\n".join(f"  {p}" for p in problems)) from exc


def load_sieve_config(path: Path | str) -> SieveConfig:
    """From a file, or from S3 when `path` is s3://bucket/key (where the stack keeps it)."""
    if str(path).startswith("s3://"):
        import boto3

        bucket, _, key = str(path)[5:].partition("/")
        try:
            body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read(safe_yaml.MAX_BYTES + 1)
        except Exception as exc:
            raise SieveError(f"cannot read the sieve config {path}: {exc}") from exc
        if len(body) > safe_yaml.MAX_BYTES:
            raise SieveError(f"{path}: over the {safe_yaml.MAX_BYTES}-byte limit for a config file")
        return parse_sieve_config(safe_yaml.decode(body), str(path))
    path = Path(path)
    try:
        text = safe_yaml.decode(path.read_bytes())
    except OSError as exc:
        raise SieveError(f"cannot read the sieve config {path}: {exc.strerror}; see config/sieve.example.yaml") \
            from exc
    except safe_yaml.YamlLimitError as exc:
        raise SieveError(f"{path}: {exc}") from exc
    return parse_sieve_config(text, str(path))


def epoch_seconds(text: str) -> float:
    """A time given as epoch seconds or as an ISO time (a time without a zone is UTC); ValueError otherwise."""
    try:
        return float(text)
    except ValueError:
        pass
    value = dt.datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
