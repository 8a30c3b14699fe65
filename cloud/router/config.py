"""The router's settings, read once from the environment (names in `cloud.constants`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from cloud import constants as c
from cloud.alerts import AlertRule, rules_from_env
from cloud.exceptions import ConfigError

_VARIANT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's VariantName pattern


def _number(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r}: expected a number in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class RouterConfig:
    store_url: str = c.DEFAULT_STORE_URL
    store_writes: str = c.DEFAULT_STORE_WRITES
    retention_days: float = c.DEFAULT_RETENTION_DAYS
    endpoint_name: str = c.DEFAULT_ENDPOINT_NAME
    endpoint_attempts: int = c.DEFAULT_ENDPOINT_ATTEMPTS
    endpoint_backoff_s: float = c.DEFAULT_ENDPOINT_BACKOFF_S
    endpoint_timeout_s: float = c.DEFAULT_ENDPOINT_TIMEOUT_S
    training_bucket: str = ""
    training_prefix: str = c.DEFAULT_TRAINING_PREFIX
    training_sample_rate: float = c.DEFAULT_TRAINING_SAMPLE_RATE
    training_keep: str = c.DEFAULT_TRAINING_KEEP
    training_sink: str = c.DEFAULT_TRAINING_SINK
    training_stream: str = c.DEFAULT_TRAINING_STREAM
    training_packed_prefix: str = c.DEFAULT_TRAINING_PACKED_PREFIX
    verdict_topic: str = c.DEFAULT_VERDICT_TOPIC
    iot_data_endpoint: str = ""
    alert_topic_arn: str = ""
    rules: tuple[AlertRule, ...] = ()
    event_window_s: float = c.DEFAULT_EVENT_WINDOW_S
    registry_cache_s: float = c.DEFAULT_REGISTRY_CACHE_S
    ab_variants: tuple[str, ...] = ()  # the endpoint's production variants (for shadow calls)
    shadow_share: float = c.DEFAULT_SHADOW_SHARE

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RouterConfig:
        env = dict(os.environ) if env is None else env
        topic = env.get(c.VERDICT_TOPIC, c.DEFAULT_VERDICT_TOPIC)
        if topic and "{thing}" not in topic:
            raise ConfigError(f"{c.VERDICT_TOPIC}={topic!r}: the topic must contain {{thing}}, the gateway's "
                              f"thing name (e.g. {c.DEFAULT_VERDICT_TOPIC!r}), or be empty to not publish")
        prefix = env.get(c.TRAINING_PREFIX, c.DEFAULT_TRAINING_PREFIX)
        writes = env.get(c.STORE_WRITES) or c.DEFAULT_STORE_WRITES
        if writes not in ("every", "change"):
            raise ConfigError(f"{c.STORE_WRITES}={writes!r}: expected 'every' (a row per verdict) or 'change' "
                              "(a row only when the labels a camera sees change, or an alert is sent)")
        keep = env.get(c.TRAINING_KEEP) or c.DEFAULT_TRAINING_KEEP
        if keep not in ("informative", "all"):
            raise ConfigError(f"{c.TRAINING_KEEP}={keep!r}: expected 'informative' (onboarding, disagreements, "
                              "low-confidence answers and audits, tagged by tier) or 'all'")
        sink = env.get(c.TRAINING_SINK) or c.DEFAULT_TRAINING_SINK
        if sink not in c.TRAINING_SINKS:
            raise ConfigError(f"{c.TRAINING_SINK}={sink!r}: expected 's3' (one object per escalation or gateway "
                              "batch) or 'firehose' (records packed by a Kinesis Data Firehose stream per lifecycle)")
        stream = env.get(c.TRAINING_STREAM) or c.DEFAULT_TRAINING_STREAM
        if sink == "firehose" and stream.count("{lifecycle}") != 1:
            raise ConfigError(f"{c.TRAINING_STREAM}={stream!r}: the stream name must contain {{lifecycle}} once, "
                              f"which stands for each lifecycle (audit, training), e.g. {c.DEFAULT_TRAINING_STREAM!r}")
        packed = env.get(c.TRAINING_PACKED_PREFIX, c.DEFAULT_TRAINING_PACKED_PREFIX)
        if sink == "firehose" and not packed.endswith("/"):
            raise ConfigError(f"{c.TRAINING_PACKED_PREFIX}={packed!r}: the prefix the streams deliver to must end "
                              f"with '/' (e.g. {c.DEFAULT_TRAINING_PACKED_PREFIX!r})")
        variants = tuple(v.strip() for v in env.get(c.AB_VARIANTS, "").split(",") if v.strip())
        bad = [v for v in variants if not _VARIANT.match(v)]
        if bad or len(set(variants)) != len(variants):
            raise ConfigError(f"{c.AB_VARIANTS}={env.get(c.AB_VARIANTS)!r}: expected distinct production variant "
                              "names (letters, digits, '-'; at most 63 characters) separated by commas, e.g. "
                              "'champion,challenger'")
        shadow = _number(env, c.SHADOW_SHARE, c.DEFAULT_SHADOW_SHARE, 0, 1)
        if shadow > 0 and len(variants) < 2:
            raise ConfigError(f"{c.SHADOW_SHARE}={shadow:g} needs two production variants in {c.AB_VARIANTS} "
                              f"(e.g. 'champion,challenger'), not {variants or 'none'}; or set it to 0")
        return cls(
            ab_variants=variants,
            shadow_share=shadow,
            training_keep=keep,
            training_sink=sink,
            training_stream=stream,
            training_packed_prefix=packed,
            store_url=env.get(c.STORE_URL) or c.DEFAULT_STORE_URL,
            store_writes=writes,
            retention_days=_number(env, c.RETENTION_DAYS, c.DEFAULT_RETENTION_DAYS, 0, 3650),
            endpoint_name=env.get(c.ENDPOINT_NAME) or c.DEFAULT_ENDPOINT_NAME,
            endpoint_attempts=int(_number(env, c.ENDPOINT_ATTEMPTS, c.DEFAULT_ENDPOINT_ATTEMPTS, 1, 10)),
            endpoint_backoff_s=_number(env, c.ENDPOINT_BACKOFF_S, c.DEFAULT_ENDPOINT_BACKOFF_S, 0, 30),
            endpoint_timeout_s=_number(env, c.ENDPOINT_TIMEOUT_S, c.DEFAULT_ENDPOINT_TIMEOUT_S, 0.1, 300),
            training_bucket=env.get(c.TRAINING_BUCKET, ""),
            training_prefix=prefix if not prefix or prefix.endswith("/") else prefix + "/",
            training_sample_rate=_number(env, c.TRAINING_SAMPLE_RATE, c.DEFAULT_TRAINING_SAMPLE_RATE, 0, 1),
            verdict_topic=topic,
            iot_data_endpoint=env.get(c.IOT_DATA_ENDPOINT, ""),
            alert_topic_arn=env.get(c.ALERT_TOPIC_ARN, ""),
            rules=rules_from_env(env),
            event_window_s=_number(env, c.EVENT_WINDOW_S, c.DEFAULT_EVENT_WINDOW_S, 1, 86400),
            registry_cache_s=_number(env, c.REGISTRY_CACHE_S, c.DEFAULT_REGISTRY_CACHE_S, 0, 3600),
        )
