"""Landed-video mode priced per camera-month (landed/: the sieve in the cloud, README "The serverless path"):
no gateway and no IoT Core; the agent's pipeline runs in the cloud over video that already lands in AWS, and
its escalations go through the router in the same process to the same teacher backend.

- S3 segments: a Lambda invocation per landed object, billed for the pipeline's CPU per sampled frame (at the
  Lambda's share of a vCPU), its wait for each escalation's answer, and its start per invocation;
- Kinesis Video Streams: Fargate workers running all month, as many cameras each as keep its vCPUs at the
  target utilisation, plus the images GetImages returns (data consumed);
- both: the teacher backend the gateway mode's planner chose for the same escalations (its router Lambda
  lines dropped: the router runs inside the sieve), the store and training writes, SNS, and (if on) the
  frames' decisions summed per camera-minute into the store's minute counters (landed/events.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from costing.lineitem import GB, FleetBill, LineItem, ceil, item
from costing.pricing import Pricing
from costing.summary import BenchSummary
from edge_agent.bench.cost_model import HybridCost, Inputs, usage_items

LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU at 1,769 MB, in proportion below it
MODES = {"s3": "landed, S3 segments (Lambda)", "kvs": "landed, KVS streams (Fargate)"}


@dataclass(frozen=True)
class LandedCost(FleetBill):
    mode: str  # s3 | kvs
    cameras: int
    cpu_s_per_frame: float
    cpu_source: str
    escalations: float  # per month, fleet: the gateway mode's
    workers: int  # kvs: Fargate tasks running (0 for s3)
    items: list[LineItem]

    @property
    def label(self) -> str:
        return MODES[self.mode]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "label": self.label, "cameras": self.cameras,
                "cpu_s_per_frame": self.cpu_s_per_frame, "cpu_source": self.cpu_source,
                "escalations_per_month": self.escalations, "workers": self.workers,
                "usd_per_month": self.usd_per_month, "usd_per_camera_month": self.usd_per_camera_month,
                "items": [i.to_dict() for i in self.items]}


def _router_line(line: LineItem) -> bool:
    """The router Lambda's own lines of a SageMaker backend (the teacher-inside-Lambda option keeps them)."""
    return line.name == "Lambda requests (router)" or (line.name.startswith("Lambda compute (")
                                                       and "teacher inside" not in line.name)


def landed_cost(summary: BenchSummary, pricing: Pricing, hybrid: HybridCost, mode: str,
                inputs: Inputs | None = None) -> LandedCost:
    """Landed-video mode for the same fleet, footage and escalations as `hybrid` (the gateway mode)."""
    landed = pricing.landed
    if landed is None:
        raise ValueError("the price file has no `landed:` section; landed-video mode cannot be priced")
    if mode not in MODES:
        raise ValueError(f"landed mode {mode!r}: expected one of {sorted(MODES)}")
    cameras, fps, hours = hybrid.cameras, summary.fps, pricing.hours_per_month
    frames = cameras * fps * hours * 3600
    cpu = landed.cpu_s_per_frame or summary.total.edge_cpu_s_per_frame
    source = "price file (landed.cpu_s_per_frame)" if landed.cpu_s_per_frame else \
        "bench summary (edge CPU per sampled frame: the same pipeline code)"
    teacher = [i for i in hybrid.backend.items if not _router_line(i)]
    usage = [i for i in usage_items(summary, pricing, hybrid.escalations, inputs)
             if not i.name.startswith(("IoT", "Data transfer"))]  # in-region, in-process: no IoT, no transfer
    workers = 0
    if mode == "s3":
        invocations = frames / (fps * landed.segment_s)
        share = min(1.0, landed.lambda_memory_mb / LAMBDA_MB_PER_VCPU)
        # with the teacher inside (backend kind lambda) the wait is the teacher's own run, priced on its line
        wait = 0.0 if hybrid.backend.kind == "lambda" else landed.escalation_wait_s
        seconds = frames * cpu / share + hybrid.escalations * wait + invocations * landed.init_s
        compute = [
            item(f"Lambda requests (sieve: one per {landed.segment_s:g} s segment)", invocations / 1e6,
                 pricing.lambda_.requests),
            item(f"Lambda compute (sieve, {landed.lambda_memory_mb} MB: {cpu * 1000:.1f} ms CPU/frame, "
                 f"{wait * 1000:.0f} ms/escalation waited, {landed.init_s:g} s/segment)",
                 seconds * landed.lambda_memory_mb / 1024, pricing.lambda_.compute),
            item("S3 GETs (each segment fetched once)", invocations / 1e3, pricing.s3.gets),
        ]
    else:
        f = landed.fargate
        per_worker = max(1, math.floor(f.task_vcpus * f.target_utilisation / (cpu * fps) + 1e-9))
        workers = ceil(cameras / per_worker)
        compute = [
            item(f"Fargate vCPU ({workers} worker(s) x {f.task_vcpus:g} vCPU, {per_worker} cameras each)",
                 workers * f.task_vcpus * hours, f.vcpu),
            item(f"Fargate memory ({workers} worker(s) x {f.task_memory_gb:g} GB)", workers * f.task_memory_gb * hours,
                 f.memory),
            item(f"KVS GetImages ({landed.kvs.image_bytes / 1000:.0f} kB per image, as data consumed)",
                 frames * landed.kvs.image_bytes / GB, landed.kvs.data_consumed),
        ]
    # frame counts: one write per camera-minute, and one more where a segment ends inside a minute
    writes = frames / (fps * 60) + (frames / (fps * landed.segment_s) if mode == "s3" else 0.0)
    events = [item(f"DynamoDB frame counts ({landed.frame_event_write_units:g} write units per camera-minute)",
                   writes * landed.frame_event_write_units / 1e6, pricing.dynamodb.writes)] if landed.frame_events \
        else []
    return LandedCost(mode, cameras, cpu, source, hybrid.escalations, workers, [*compute, *teacher, *usage, *events])
