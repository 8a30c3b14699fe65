"""Counting the AWS requests each escalation makes, so the cost model can price them.

Every boto3 client the cloud side builds gets a `before-send` hook: it fires once per HTTP attempt,
retries included, which is what AWS bills. The count goes to the `CallCounter` active in the current
context (a ContextVar, so concurrent escalations in one process each count their own). The SQLite
store counts its writes the same way through `count()`. Imports boto3 only, as the Lambda does.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoRegionError

from cloud.exceptions import ConfigError

# (service, operation) -> the priced kind. Anything else is counted under "other".
_KINDS = {
    ("sagemaker-runtime", "InvokeEndpoint"): "endpoint_invocations",
    ("dynamodb", "PutItem"): "store_writes",
    ("dynamodb", "UpdateItem"): "store_writes",
    ("dynamodb", "DeleteItem"): "store_writes",
    ("dynamodb", "BatchWriteItem"): "store_writes",
    ("dynamodb", "TransactWriteItems"): "store_writes",
    ("dynamodb", "GetItem"): "store_reads",
    ("dynamodb", "Query"): "store_reads",
    ("s3", "PutObject"): "s3_puts",
    ("sns", "Publish"): "sns_publishes",
    ("iot-data", "Publish"): "iot_publishes",
    ("sqlite", "write"): "store_writes",
    ("sqlite", "read"): "store_reads",
}
KINDS = ("endpoint_invocations", "store_reads", "store_writes", "s3_puts", "sns_publishes", "iot_publishes")


class CallCounter:
    """AWS requests by priced kind (see KINDS) and by `service.Operation`."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()

    def add(self, service: str, operation: str, n: int = 1) -> None:
        self.by_operation[f"{service}.{operation}"] += n

    def kinds(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for key, n in self.by_operation.items():
            service, _, operation = key.partition(".")
            kind = _KINDS.get((service, operation), "other")
            out[kind] = out.get(kind, 0) + n
        return out


_current: contextvars.ContextVar[CallCounter | None] = contextvars.ContextVar("framesieve_calls", default=None)


@contextmanager
def counting() -> Iterator[CallCounter]:
    """Count the requests made inside the block (nested blocks count into their own counter only)."""
    counter = CallCounter()
    token = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(token)


def current_kinds() -> dict[str, int]:
    """The calls counted so far in the innermost `counting` block (zeros outside one)."""
    counter = _current.get()
    return counter.kinds() if counter is not None else dict.fromkeys(KINDS, 0)


def count(service: str, operation: str, n: int = 1) -> None:
    counter = _current.get()
    if counter is not None:
        counter.add(service, operation, n)


def _on_send(event_name: str, **_: Any) -> None:
    # event_name is "before-send.<service-id>.<Operation>", e.g. before-send.iot-data-plane.Publish
    _, service_id, operation = event_name.split(".", 2)
    count(_SERVICE_IDS.get(service_id, service_id), operation)


_SERVICE_IDS = {"iot-data-plane": "iot-data", "sagemaker-runtime": "sagemaker-runtime"}
_session: boto3.session.Session | None = None
_session_lock = threading.Lock()  # a boto3 Session is not thread-safe while it makes clients


def client(service: str, *, endpoint_url: str | None = None, max_attempts: int = 3, connect_timeout: float = 5,
           read_timeout: float = 30, region_name: str | None = None) -> Any:
    """A boto3 client with standard retries (exponential backoff with jitter on throttling and 5xx) and the
    counting hook. The endpoint comes from AWS_ENDPOINT_URL[_<SERVICE>] unless `endpoint_url` is given."""
    config = Config(retries={"mode": "standard", "total_max_attempts": max_attempts}, connect_timeout=connect_timeout,
                    read_timeout=read_timeout)
    global _session
    with _session_lock:  # one Session: its loaded service models are shared by every client it makes
        _session = _session or boto3.session.Session()
        try:
            made = _session.client(service, endpoint_url=endpoint_url or None, config=config, region_name=region_name)
        except NoRegionError as exc:
            raise ConfigError(f"no AWS region for {service}: set AWS_DEFAULT_REGION (e.g. export "
                              "AWS_DEFAULT_REGION=eu-west-1; boto3 does not read AWS_REGION), or a region in the "
                              "AWS profile (aws configure)") from exc
    made.meta.events.register("before-send", _on_send)
    return made
