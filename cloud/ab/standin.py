"""STAND-IN: a SageMaker endpoint with several production variants, on loopback.

SageMaker routes each InvokeEndpoint of an endpoint with several production variants to one of them in
proportion to their current weights (or to the variant named by TargetVariant), and says which answered in the
`x-Amzn-Invoked-Production-Variant` response header. moto's sagemaker-runtime returns canned bodies and does no
routing, so locally this server does that one job in front of several `framesieve-cloud serve` processes (one
per variant, each answering with its own variant name). It is the only stand-in of that contract; the router
and `ab promote` run their real boto3 code against it and moto.

The weights are the endpoint's own: read from moto's (or any) sagemaker DescribeEndpoint, `CurrentWeight` per
variant, re-read at most every `refresh_s`; so `framesieve-cloud ab promote` (UpdateEndpointWeightsAndCapacities
on moto) shifts the traffic here as it would on AWS. Without a sagemaker client, fixed weights.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cloud.exceptions import ConfigError
from cloud.httpjson import send_json
from cloud.httpserve import LimitedHandler, LimitedServer
from cloud.inference.server import MAX_BODY_BYTES, TARGET_HEADER, VARIANT_HEADER

log = logging.getLogger("framesieve.standin")
_INVOKE = re.compile(r"^/endpoints/([^/]+)/invocations$")


@dataclass(frozen=True)
class Variant:
    name: str
    url: str  # the `framesieve-cloud serve` base URL (http://host:port)
    weight: float = 1.0


def endpoint_weights(sagemaker: Any, endpoint: str) -> dict[str, float]:
    """{variant: CurrentWeight} of a deployed endpoint (DescribeEndpoint)."""
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    return {v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
            for v in described.get("ProductionVariants", [])}


class VariantEndpoint(LimitedServer):
    """POST /endpoints/{name}/invocations routed by weight (or TargetVariant) to one variant's server."""

    def __init__(self, address: tuple[str, int], endpoint_name: str, variants: list[Variant],
                 weights: Callable[[], dict[str, float]] | None = None, refresh_s: float = 1.0,
                 seed: int | None = None):
        if len({v.name for v in variants}) != len(variants) or not variants:
            raise ConfigError(f"the endpoint stand-in needs distinct variant names, got {[v.name for v in variants]}")
        self.endpoint_name, self.variants = endpoint_name, {v.name: v for v in variants}
        self._weights_source, self.refresh_s = weights, refresh_s
        self._weights = {v.name: v.weight for v in variants}
        self._read_at = -1e9
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.answered: Counter[str] = Counter()  # by variant, routed by weight
        self.targeted: Counter[str] = Counter()  # by variant, TargetVariant calls
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop a stand-in started by `start_in_thread`."""
        self.shutdown()
        self.server_close()

    def weights(self) -> dict[str, float]:
        with self._lock:
            if self._weights_source is not None and time.monotonic() - self._read_at >= self.refresh_s:
                try:
                    read = self._weights_source()
                    self._weights = {n: float(read.get(n, 0.0)) for n in self.variants}
                except Exception as exc:  # keep routing on the last weights; say so
                    log.warning(json.dumps({"event": "weights_unreadable", "error": str(exc)[:300]}))
                self._read_at = time.monotonic()
            return dict(self._weights)

    def choose(self, target: str | None) -> Variant:
        if target is not None:
            if target not in self.variants:
                raise LookupError(f"TargetVariant {target!r} is not a variant of endpoint {self.endpoint_name!r}; "
                                  f"its variants: {sorted(self.variants)}")
            with self._lock:
                self.targeted[target] += 1
            return self.variants[target]
        weights = self.weights()
        total = sum(w for w in weights.values() if w > 0)
        if total <= 0:
            raise LookupError(f"every production variant of endpoint {self.endpoint_name!r} has weight 0: "
                              f"{weights}; give one a weight (framesieve-cloud ab promote)")
        live = [(n, w) for n, w in weights.items() if w > 0]
        with self._lock:
            pick = self._random.uniform(0, total)
            chosen = live[-1][0]  # where rounding leaves a sliver past the last
            for n, w in live:
                pick -= w
                if pick <= 0:
                    chosen = n
                    break
            self.answered[chosen] += 1
        return self.variants[chosen]


class _Handler(LimitedHandler):
    server: VariantEndpoint
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/ping":
            return self._send(200, json.dumps({"status": "ok", "weights": self.server.weights()}).encode(), {})
        self._error(404, "ValidationError", f"no route GET {self.path}; POST /endpoints/{{name}}/invocations")

    def do_POST(self) -> None:  # noqa: N802
        match = _INVOKE.match(urlsplit(self.path).path)
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            return self._error(413 if length.isdigit() else 411, "ValidationError",
                               f"send the body with a Content-Length of at most {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(int(length))
        if not match or match.group(1) != self.server.endpoint_name:
            return self._error(404 if not match else 400, "ValidationError",
                               f"no endpoint {match.group(1) if match else self.path!r}; this stand-in serves "
                               f"{self.server.endpoint_name!r}")
        try:
            variant = self.server.choose(self.headers.get(TARGET_HEADER))
        except LookupError as exc:
            return self._error(400, "ValidationError", str(exc))
        request = urllib.request.Request(f"{variant.url}/invocations", data=body, method="POST", headers={
            "Content-Type": self.headers.get("Content-Type", "application/json"),
            "Accept": self.headers.get("Accept", "application/json")})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                status, data, headers = reply.status, reply.read(), reply.headers
        except urllib.error.HTTPError as exc:  # the variant's own refusal, passed on as SageMaker would
            status, data, headers = exc.code, exc.read(), exc.headers
        except OSError as exc:
            return self._error(503, "ServiceUnavailable", f"variant {variant.name!r} at {variant.url} does not "
                                                          f"answer: {exc}")
        extra = {VARIANT_HEADER: variant.name}
        if headers.get("x-amzn-ErrorType"):
            extra["x-amzn-ErrorType"] = headers["x-amzn-ErrorType"]
        self._send(status, data, extra)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"message": message, "OriginalStatusCode": status,
                                       "OriginalMessage": message}).encode(), {"x-amzn-ErrorType": code})

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        send_json(self, status, data, headers)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)


def start_in_thread(endpoint_name: str, variants: list[Variant], host: str = "127.0.0.1", port: int = 0,
                    weights: Callable[[], dict[str, float]] | None = None, refresh_s: float = 1.0,
                    seed: int | None = None) -> VariantEndpoint:
    server = VariantEndpoint((host, port), endpoint_name, variants, weights, refresh_s, seed)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="framesieve-standin",
                     daemon=True).start()
    return server
