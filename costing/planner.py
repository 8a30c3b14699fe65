"""The cheapest teacher backend for a fleet: every option in `backends:` priced for the fleet's image rate, its
p95 estimated, and the cheapest one that meets the latency objective chosen.

What an option costs includes what it changes around it: the router Lambda's requests and GB-seconds (the
teacher inside the Lambda makes each invocation longer and larger; async inference invokes the router twice,
once to submit and once on the answer's notification), SageMaker's data-processed charge (not for Lambda),
and async inference's S3 round trips. Everything else an escalation costs is the same whatever the backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from costing.backends import AsyncOption, LambdaOption, RealtimeOption, ServerlessOption
from costing.lineitem import GB, Bill, LineItem, ceil, item
from costing.pricing import Pricing

COLD_P95_SHARE = 0.05  # more than 5% of requests cold: the p95 is a cold start


@dataclass(frozen=True)
class Workload:
    """The fleet's demand on the teacher. Batching (one call per gateway window) shows as images per call."""

    cameras: int
    images_per_s: float  # fleet mean: images the teacher answers per second
    images_per_call: float = 1.0  # images per endpoint call (and per teacher run inside the Lambda)
    images_per_invocation: float = 1.0  # images per router Lambda invocation
    request_bytes_per_image: float = 0.0
    response_bytes_per_image: float = 0.0

    def __post_init__(self) -> None:
        if self.cameras < 1:
            raise ValueError(f"cameras must be at least 1; got {self.cameras}")
        if not self.images_per_s >= 0:
            raise ValueError(f"the image rate must be >= 0; got {self.images_per_s}")
        for name in ("images_per_call", "images_per_invocation"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")

    @property
    def calls_per_s(self) -> float:
        return self.images_per_s / self.images_per_call

    @property
    def invocations_per_s(self) -> float:
        return self.images_per_s / self.images_per_invocation


@dataclass(frozen=True)
class BackendCost(Bill):
    name: str
    label: str
    kind: str
    items: list[LineItem]  # every line this backend causes, $/month for the fleet
    p95_s: float  # escalation path: path overhead + the backend's own
    meets: bool
    note: str  # why it misses the objective, or what decides its latency
    assumed: bool  # its performance figures are assumptions
    performance_source: str
    stack: dict[str, str]
    instances: int = 0
    load: float = 0.0  # instances (or concurrent requests) the fleet keeps busy, unrounded
    min_instances: int = 0
    instance_usd_month: float = 0.0  # one instance for the month; 0 for per-use options
    cold_share: float = 0.0  # share of requests that meet a cold container or a scaled-to-zero endpoint
    instance_items: list[LineItem] = field(default_factory=list)  # the part of `items` that is instance-hours

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "kind": self.kind, "usd_per_month": self.usd_per_month,
                "p95_s": self.p95_s, "meets_objective": self.meets, "note": self.note, "instances": self.instances,
                "load": self.load, "cold_share": self.cold_share, "assumed_performance": self.assumed,
                "performance_source": self.performance_source, "stack_parameters": self.stack,
                "items": [i.to_dict() for i in self.items]}


def _router_items(p: Pricing, invocations: float, memory_mb: int, seconds: float, why: str) -> list[LineItem]:
    return [item("Lambda requests (router)", invocations / 1e6, p.lambda_.requests),
            item(f"Lambda compute ({memory_mb} MB x {seconds * 1000:.0f} ms, {why})",
                 invocations * memory_mb / 1024 * seconds, p.lambda_.compute)]


def _data_processed(p: Pricing, w: Workload, images: float) -> LineItem:
    nbytes = images * (w.request_bytes_per_image + w.response_bytes_per_image)
    return item("SageMaker data processed (in + out)", nbytes / GB, p.sagemaker.data_processed)


def _idle_share(rate_per_s: float, window_s: float) -> float:
    """Poisson arrivals: the share of requests that follow a gap longer than window_s (and of time spent so)."""
    return math.exp(-rate_per_s * window_s) if rate_per_s > 0 else 1.0


def _instances(name: str, o: RealtimeOption | AsyncOption, p: Pricing, w: Workload, hours: float,
               floor: int, share_at_zero: float) -> tuple[LineItem, float, int]:
    sm = p.sagemaker
    load = w.images_per_s * sm.headroom / (o.images_per_s * sm.target_utilisation)
    n = max(floor, ceil(load))
    up = n - (share_at_zero if n == 1 and floor == 0 else 0.0)
    line = item(f"SageMaker {o.instance.type} ({name}: {n} instance(s))", up * hours, o.instance)
    return line, load, n


def evaluate(name: str, option: Any, p: Pricing, w: Workload) -> BackendCost:
    """One option priced and timed for the workload."""
    b, hours = p.backends, p.hours_per_month
    seconds = hours * 3600
    images, calls, invocations = (w.images_per_s * seconds, w.calls_per_s * seconds, w.invocations_per_s * seconds)
    common = {"label": option.label, "kind": option.kind, "assumed": option.assumed,
              "performance_source": option.performance_source, "stack": dict(option.stack)}
    router = _router_items(p, invocations, p.lambda_.memory_mb, p.lambda_.duration_ms / 1000,
                           "waiting on the endpoint")
    if isinstance(option, RealtimeOption):
        line, load, n = _instances(name, option, p, w, hours, option.min_instances, 0.0)
        p95 = b.path_overhead_s + option.p95_s
        return BackendCost(name, items=[line, *router, _data_processed(p, w, images)], p95_s=p95,
                           meets=p95 <= b.latency_objective_p95_s, note="always warm", instances=n, load=load,
                           min_instances=option.min_instances, instance_usd_month=option.instance.usd * hours,
                           instance_items=[line], **common)
    if isinstance(option, AsyncOption):
        zero = _idle_share(w.calls_per_s, option.idle_scale_in_s)
        line, load, n = _instances(name, option, p, w, hours, 0, zero)
        s3 = [item("S3 requests (async input PUT, output PUT)", calls * 2 / 1e3, p.s3.puts),
              item("S3 requests (async output GET)", calls / 1e3, p.s3.gets)]
        # the router submits and returns; the answer's notification invokes it again
        router = _router_items(p, invocations * 2, p.lambda_.memory_mb, 0.03, "submit, then the answer")
        cold = zero > COLD_P95_SHARE
        p95 = b.path_overhead_s + (option.scale_from_zero_s if cold else option.p95_s)
        note = f"scaled to zero {zero:.0%} of the time" if zero > 1e-3 else "never idle long enough to scale to zero"
        return BackendCost(name, items=[line, *router, _data_processed(p, w, images), *s3], p95_s=p95,
                           meets=p95 <= b.latency_objective_p95_s, note=note, instances=n, load=load,
                           instance_usd_month=option.instance.usd * hours, cold_share=zero,
                           instance_items=[line], **common)
    if isinstance(option, LambdaOption | ServerlessOption):
        # inside the Lambda the teacher runs once per router invocation, on all of that invocation's images
        batch, rate = ((w.images_per_invocation, w.invocations_per_s) if isinstance(option, LambdaOption)
                       else (w.images_per_call, w.calls_per_s))
        duration = option.s_per_image * batch
        per_call = option.p95_s + option.s_per_image * (batch - 1)
        cold_share = _idle_share(rate, b.keep_warm_s)
        concurrency = rate * duration * p.sagemaker.headroom
        if isinstance(option, LambdaOption):
            total = option.router_s + duration
            items = _router_items(p, invocations, option.memory_mb, total, "the teacher inside")
        else:
            gb_s = calls * option.memory_mb / 1024 * duration
            items = [item(f"SageMaker Serverless compute ({option.memory_mb} MB x {duration * 1000:.0f} ms)", gb_s,
                          option.compute), *router, _data_processed(p, w, images)]
        p95 = b.path_overhead_s + (option.cold_start_s if cold_share > COLD_P95_SHARE else per_call)
        meets = p95 <= b.latency_objective_p95_s and concurrency <= option.max_concurrency
        if concurrency > option.max_concurrency:
            note = f"needs {concurrency:,.0f} concurrent requests, over its quota of {option.max_concurrency:,}"
        elif cold_share > COLD_P95_SHARE:
            note = f"{cold_share:.0%} of requests start cold ({option.cold_start_s:g} s)"
        else:
            note = f"{cold_share:.1%} of requests start cold"
        return BackendCost(name, items=items, p95_s=p95, meets=meets, note=note, load=concurrency,
                           cold_share=cold_share, **common)
    raise TypeError(f"unknown backend option {name!r}: {type(option).__name__}")


@dataclass(frozen=True)
class Plan:
    workload: Workload
    objective_p95_s: float
    options: list[BackendCost]  # in the price file's order
    chosen: BackendCost
    met: bool  # False: no option meets the objective, the fastest one is chosen

    def to_dict(self) -> dict[str, Any]:
        w = self.workload
        return {"objective_p95_s": self.objective_p95_s, "chosen": self.chosen.name, "objective_met": self.met,
                "workload": {"cameras": w.cameras, "images_per_s": w.images_per_s,
                             "images_per_call": w.images_per_call, "images_per_invocation": w.images_per_invocation,
                             "request_bytes_per_image": w.request_bytes_per_image},
                "options": [o.to_dict() for o in self.options]}


def plan(p: Pricing, w: Workload, objective_p95_s: float | None = None, only: str | None = None) -> Plan:
    """Every option priced; the cheapest meeting the objective chosen (or `only`, when the user names one)."""
    objective = p.backends.latency_objective_p95_s if objective_p95_s is None else objective_p95_s
    if not objective > 0:
        raise ValueError(f"the latency objective must be a positive number of seconds; got {objective}")
    if only is not None and only not in p.backends.options:
        raise ValueError(f"backend {only!r} is not in the price file's backends.options: "
                         f"{', '.join(p.backends.options)}")
    b = p.backends.model_copy(update={"latency_objective_p95_s": objective})
    priced = p.model_copy(update={"backends": b})
    rows = [evaluate(name, option, priced, w) for name, option in p.backends.options.items()]
    if only is not None:
        chosen = next(r for r in rows if r.name == only)
        return Plan(w, objective, rows, chosen, chosen.meets)
    meeting = [r for r in rows if r.meets]
    if meeting:
        return Plan(w, objective, rows, min(meeting, key=lambda r: r.usd_per_month), True)
    return Plan(w, objective, rows, min(rows, key=lambda r: (r.p95_s, r.usd_per_month)), False)
