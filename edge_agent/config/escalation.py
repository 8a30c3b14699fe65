"""The escalation section: which transport, its broker connection, the spool, and the circuit breaker."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.batch import DEFAULT_BATCH_WINDOW_MS
from edge_agent.config.base import _Strict


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
    max_in_flight: int = Field(8, ge=1, le=256, description="escalations awaited at once; beyond, the edge decides")
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)

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
