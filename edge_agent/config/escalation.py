"""The escalation section: which transport, its broker connection, the spool, and the circuit breaker."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from contracts.batch import DEFAULT_BATCH_WINDOW_MS
from edge_agent.config.base import _Strict

# `escalation.max_in_flight: auto` (the default): the escalations a gateway may await at once, sized at config load
# by Little's law from what the gateway itself samples. Escalations arrive at (sum over its cameras of their
# sampling fps) x the escalated share, and each is awaited for up to the batch window (mqtt/iot-core: the first
# of a window waits all of it) plus the escalation path's latency; so at once it awaits
#     rate x share x (window + latency)
# The share and the latency are the design's, not a measurement: sized for the worst the cascade is designed to
# meet, so that a gateway within its design never decides a frame at the edge only because too many were
# awaited (`cloud_busy`), which silently costs accuracy.
DESIGN_ESCALATED_SHARE = 0.30  # the cascade's design ceiling: at most 30% of sampled frames escalated (README)
LATENCY_OBJECTIVE_S = 2.0  # the escalation path's p95 objective (config/pricing.yaml latency_objective_p95_s)
MIN_IN_FLIGHT = 8  # the floor (the old fixed default): a small gateway still rides out a short stall
MIN_EXPLICIT = 1  # an explicit max_in_flight may go below the floor (a gateway that must not queue)
MAX_IN_FLIGHT = 256  # the cap (an explicit value's too): a worker thread and at most one 128 KB message each


def auto_in_flight(camera_fps: Iterable[float], window_ms: float) -> tuple[int, float]:
    """(the limit `max_in_flight: auto` chooses, the awaited escalations it was sized for before the floor and the
    cap) for a gateway whose cameras sample at `camera_fps`, with `window_ms` of batching (0 for url/sagemaker)."""
    need = sum(camera_fps) * DESIGN_ESCALATED_SHARE * (window_ms / 1000 + LATENCY_OBJECTIVE_S)
    return min(MAX_IN_FLIGHT, max(MIN_IN_FLIGHT, math.ceil(need - 1e-9))), need


def auto_or_count(value: object) -> object:
    """max_in_flight as written: auto, or a whole number within bounds (not a bool, a float or a string)."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_EXPLICIT <= value <= MAX_IN_FLIGHT:
        raise ValueError(f"max_in_flight takes auto (sized from the cameras, the default) or a whole number of "
                         f"escalations from {MIN_EXPLICIT} to {MAX_IN_FLIGHT}")
    return value


class MqttSettings(_Strict):
    """The broker connection of the mqtt and iot-core transports."""

    host: str = Field("127.0.0.1", min_length=1, description="broker host, or the IoT Core data endpoint")
    port: int = Field(1883, ge=1, le=65535, description="1883 plain, 8883 TLS and IoT Core")
    tls: bool = Field(False, description="mqtt: TLS on (iot-core is always mutual TLS)")
    ca_file: str | None = Field(None, description="CA bundle (PEM) that signed the broker's certificate")
    cert_file: str | None = Field(None, description="client certificate (PEM); required by iot-core")
    key_file: str | None = Field(None, description="client private key (PEM); required by iot-core")
    username: str | None = None
    password: str | None = None
    allow_plaintext_password: bool = Field(False, description="mqtt: accept a password without TLS")
    keepalive_s: int = Field(30, ge=5, le=1200)
    publish_timeout_s: float = Field(5.0, gt=0, le=60, description="wait for the broker's PUBACK this long")


class SpoolSettings(_Strict):
    """The durable outbox for escalations and events that could not be sent yet."""

    path: str = "framesieve-spool.sqlite"
    max_rows: int = Field(20_000, ge=1, le=10_000_000)
    max_bytes: int = Field(256 * 1024 * 1024, ge=256 * 1024, le=64 * 1024**3)
    replay_rate_per_s: float = Field(50.0, gt=0, le=100, description="IoT Core allows 100 publishes/s a connection")


class BreakerSettings(_Strict):
    """The circuit breaker: while the cloud fails, the edge decides at once instead of waiting out timeouts."""

    enabled: bool = Field(True, description="false: always ask the cloud, however often it fails")
    failures: int = Field(3, ge=1, le=1000, description="failed escalations within window_s that open it...")
    failure_ratio: float = Field(0.5, gt=0, le=1, description="...if they are at least this share of that window's")
    window_s: float = Field(30.0, gt=0, le=3600, description="how far back failures count")
    probe_interval_s: float = Field(10.0, gt=0, le=3600, description="while open, one escalation this often "
                                                                     "probes the cloud; its success closes it")


class EscalationSettings(_Strict):
    transport: Literal["none", "sagemaker", "url", "mqtt", "iot-core"] = "url"
    url: str = "http://127.0.0.1:8080/invocations"
    endpoint_name: str = "framesieve-teacher"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=120)
    retries: int = Field(3, ge=1, le=10)
    # What an escalation carries, never larger than the teacher's input (it would downscale it anyway).
    # frame: the whole frame; uncertain: only the crops the cascade is unsure of, in place on a flat grey
    # frame (smaller, but the teacher no longer sees what the student missed: measure with `edge-agent lean`);
    # regions: the motion crops, one JPEG each. Per camera, `edge-agent lean` calibrates crop and quality.
    crop: Literal["frame", "regions", "uncertain"] = "frame"
    crop_by_camera: dict[str, Literal["frame", "regions", "uncertain"]] = Field(
        default_factory=dict, description="per camera: the crop `edge-agent lean` calibrated")
    crop_margin: float = Field(0.5, ge=0, le=4, description="uncertain: context around a box, in box sizes per side")
    max_crop_px: int = Field(416, ge=32, le=4096, description="the teacher's input: a longer side is downscaled "
                                                                "to it")
    jpeg_quality: int = Field(70, ge=30, le=100, description="JPEG quality (lowered only to fit 128 KB)")
    jpeg_quality_by_camera: dict[str, Annotated[int, Field(ge=30, le=100)]] = Field(
        default_factory=dict, description="per camera: the quality `edge-agent lean` calibrated (agreement kept)")
    thing_name: str = Field("framesieve-gateway", pattern=r"^[A-Za-z0-9_:-]{1,128}$",
                            description="the IoT thing name: MQTT client id and the {thing} in every topic")
    topic_prefix: str = Field("framesieve", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    basic_ingest_rule: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,128}$",
                                          description="publish escalations to $aws/rules/<rule>/... (IoT Core)")
    verdict_timeout_s: float = Field(10.0, gt=0, le=300, description="mqtt/iot-core: then the edge decides")
    batch_window_ms: int = Field(DEFAULT_BATCH_WINDOW_MS, ge=0, le=1000, description=(
        "mqtt/iot-core: the gateway's escalations of this window leave as one message (wire v2), once a "
        "verdict said the cloud reads batches (until then, and with a cloud that does not, one message "
        "each); 0: one message each, always"))
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    max_in_flight: int | Literal["auto"] = Field("auto", description=(
        "escalations awaited at once (all cameras); beyond, the edge decides the frame (cloud_busy). auto: sized "
        f"at load from the gateway's cameras: sum of fps x {DESIGN_ESCALATED_SHARE:g} x (batch window + "
        f"{LATENCY_OBJECTIVE_S:g} s), at least {MIN_IN_FLIGHT}, at most {MAX_IN_FLIGHT}"))
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    _auto_in_flight: tuple[int, float] | None = PrivateAttr(None)  # set by size_in_flight (the agent's config)

    _auto_or_count = field_validator("max_in_flight", mode="before")(auto_or_count)

    def size_in_flight(self, camera_fps: Iterable[float]) -> None:
        """Size `max_in_flight: auto` for these cameras' sampling rates (AgentConfig does, at load)."""
        window = self.batch_window_ms if self.transport in ("mqtt", "iot-core") else 0
        self._auto_in_flight = auto_in_flight(camera_fps, window)

    @property
    def in_flight_limit(self) -> int:
        """The escalations awaited at once: an explicit max_in_flight, or what auto chose for the cameras (the
        floor where no cameras were given: the settings used alone, outside an agent config)."""
        if self.max_in_flight != "auto":
            return self.max_in_flight
        return self._auto_in_flight[0] if self._auto_in_flight is not None else MIN_IN_FLIGHT

    def in_flight_basis(self) -> str:
        """Why in_flight_limit is what it is, in words (the agent's start line)."""
        if self.max_in_flight != "auto":
            return "set explicitly"
        if self._auto_in_flight is None:
            return f"auto without cameras: the floor {MIN_IN_FLIGHT}"
        limit, need = self._auto_in_flight
        bound = (f", capped at {MAX_IN_FLIGHT}: beyond it frames may be decided at the edge (cloud_busy)"
                 if need > MAX_IN_FLIGHT else f", floored at {MIN_IN_FLIGHT}" if need < MIN_IN_FLIGHT else "")
        window = f"{self.batch_window_ms} ms batch window + " if self.transport in ("mqtt", "iot-core") else ""
        return (f"auto: {need:.1f} awaited at once at a {DESIGN_ESCALATED_SHARE:.0%} escalated share and "
                f"{window}{LATENCY_OBJECTIVE_S:g} s latency{bound}")

    @model_validator(mode="after")
    def _iot_core_needs_certificates(self) -> EscalationSettings:
        if self.transport == "iot-core" and not (self.mqtt.cert_file and self.mqtt.key_file):
            raise ValueError("transport iot-core needs mqtt.cert_file and mqtt.key_file (mutual TLS); "
                             "`edge-agent provision` creates them")
        m = self.mqtt
        if self.transport == "mqtt" and m.password and not m.tls and not m.allow_plaintext_password:
            raise ValueError("mqtt.password without mqtt.tls would cross the network in clear text; set "
                             "mqtt.tls: true (port 8883), or mqtt.allow_plaintext_password: true for a broker "
                             "on this host")
        return self
