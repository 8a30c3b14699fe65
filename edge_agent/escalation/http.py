"""The http transport: a SageMaker endpoint through boto3's sagemaker-runtime, or a plain
`/invocations` URL (the FrameSieve inference container, or any server speaking its format)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

from contracts.wire import (
    EscalationRequest,
    InvocationResponse,
    Verdict,
    WireError,
    invocation_for,
    verdict_from_response,
)
from edge_agent.escalation.base import Transport, TransportError, register

log = logging.getLogger(__name__)


def _parse(request: EscalationRequest, body: bytes) -> Verdict:
    try:
        return verdict_from_response(request, InvocationResponse.from_payload(json.loads(body)))
    except (json.JSONDecodeError, UnicodeDecodeError, WireError) as exc:
        raise TransportError(f"the endpoint's answer is not a valid response: {exc}") from exc


@register("sagemaker")
class SageMakerTransport(Transport):
    def __init__(self, endpoint_name: str, region: str = "us-east-1", endpoint_url: str | None = None,
                 timeout_s: float = 5.0, retries: int = 3):
        import boto3
        from botocore.config import Config

        self.endpoint_name = endpoint_name
        config = Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                        retries={"max_attempts": retries, "mode": "standard"})
        self.client = boto3.client("sagemaker-runtime", region_name=region, endpoint_url=endpoint_url,
                                   config=config)

    def escalate(self, request: EscalationRequest) -> Verdict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.invoke_endpoint(EndpointName=self.endpoint_name, ContentType="application/json",
                                                Accept="application/json",
                                                Body=invocation_for(request).to_bytes())
        except (BotoCoreError, ClientError) as exc:
            raise TransportError(f"SageMaker endpoint {self.endpoint_name!r}: {exc}") from exc
        return _parse(request, reply["Body"].read())


@register("url")
class UrlTransport(Transport):
    """POST to a URL with timeouts and retries with exponential backoff (5xx and network errors)."""

    def __init__(self, url: str, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 0.2):
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def escalate(self, request: EscalationRequest) -> Verdict:
        body = invocation_for(request).to_bytes()
        last: Exception | None = None
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            http_request = urllib.request.Request(
                self.url, data=body, method="POST",
                headers={"Content-Type": "application/json", "Accept": "application/json"})
            try:
                with urllib.request.urlopen(http_request, timeout=self.timeout_s) as reply:
                    return _parse(request, reply.read())
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500:  # the request itself is wrong: retrying will not help
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = exc
            log.debug("escalation %s attempt %d failed: %s", request.message_id, attempt + 1, last)
        raise TransportError(f"{self.url}: {last}")
