"""Asking the teacher endpoint, with retries where a retry can help.

The sagemaker-runtime client is built with botocore retries off, so each attempt here is one counted
invocation. Throttling, 5xx and connection failures are retried with exponential backoff and full
jitter; a model failure (HTTP 424, or a 4xx refusal of the input) is not: it would fail again.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloud.exceptions import EndpointError
from contracts.wire import InvocationRequest, InvocationResponse, WireError

_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "ThrottledException"}
_UNAVAILABLE = {"ServiceUnavailable", "InternalFailure", "InternalDependencyException", "ModelNotReadyException",
                "ServiceUnavailableException"}


def classify(exc: Exception) -> str:
    """model | refused | throttled | unavailable: the first two are final, the others worth a retry."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("OriginalStatusCode") or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", 0)
        if code in _THROTTLED or status == 429:
            return "throttled"
        if code in _UNAVAILABLE or (isinstance(status, int) and status >= 500):
            return "unavailable"
        if code == "ModelError" and status == 424:
            return "model"
        return "refused"
    if isinstance(exc, BotoCoreError):  # connection refused or reset, read timeout
        return "unavailable"
    return "refused"


def _message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        original = exc.response.get("OriginalMessage") or err.get("Message", "")
        status = exc.response.get("OriginalStatusCode") or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", "?")
        return f"{err.get('Code', 'error')} (HTTP {status}): {original}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Answer:
    """An endpoint's answer with what champion/challenger needs: the production variant that gave it (SageMaker's
    `x-Amzn-Invoked-Production-Variant` header, boto3's InvokedProductionVariant; "" where none is named) and the
    round trip in ms at the caller, every attempt included."""

    response: InvocationResponse
    attempts: int
    variant: str
    ms: float
    images: int = 0  # images in the call (a batch's call answers several escalations at once)


def invoke(client: Any, endpoint: str, request: InvocationRequest, *, attempts: int = 3, backoff_s: float = 0.2,
           sleep: Callable[[float], None] = time.sleep) -> tuple[InvocationResponse, int]:
    """The endpoint's answer and the attempts it took; EndpointError after the last failed attempt."""
    answer = call(client, endpoint, request, attempts=attempts, backoff_s=backoff_s, sleep=sleep)
    return answer.response, answer.attempts


def call(client: Any, endpoint: str, request: InvocationRequest, *, attempts: int = 3, backoff_s: float = 0.2,
         sleep: Callable[[float], None] = time.sleep, target_variant: str = "") -> Answer:
    """As `invoke`, with the variant that answered and the time it took; `target_variant` asks one production
    variant by name (InvokeEndpoint's TargetVariant: the shadow call of cloud/router/shadow.py)."""
    body = request.to_bytes()
    extra = {"TargetVariant": target_variant} if target_variant else {}
    t0 = time.perf_counter()
    for attempt in range(1, attempts + 1):
        try:
            reply = client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="application/json",
                                           Accept="application/json", **extra)
            raw = reply["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            kind = classify(exc)
            if kind in ("model", "refused") or attempt == attempts:
                raise EndpointError(kind, f"endpoint {endpoint!r} failed after {attempt} attempt(s): "
                                          f"{_message(exc)}", attempt) from exc
            sleep(random.uniform(0, backoff_s * 2 ** (attempt - 1)))
            continue
        try:
            response = InvocationResponse.from_payload(json.loads(raw))
            return Answer(response, attempt, str(reply.get("InvokedProductionVariant") or ""),
                          (time.perf_counter() - t0) * 1000, len(request.images))
        except (ValueError, WireError) as exc:
            raise EndpointError("refused", f"endpoint {endpoint!r} answered something that is not an "
                                           f"InvocationResponse: {exc}", attempt) from exc
    raise AssertionError("unreachable")
