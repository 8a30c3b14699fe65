"""`edge-agent cost --json`: the same answers as the table, as one JSON document (schema framesieve.cost/1)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from edge_agent.bench.cost_batching import agent_max_in_flight, in_flight

if TYPE_CHECKING:
    from edge_agent.bench.cost_report import Comparison, CostReport

PER = 1e6  # per-escalation figures per million escalations, as the table shows them


def _per_million(usd: float | None) -> float | None:
    return None if usd is None else usd * PER


def _comparison(c: Comparison, cloud: float, all_in: float) -> dict[str, Any]:
    base = c.baseline.usd_per_camera_month
    t = c.target
    return {
        "label": c.baseline.label,
        "cpu_s_per_frame": c.baseline.cpu_s_per_frame,
        "instances": c.baseline.instances,
        "usd_per_camera_month": base,
        "usd_per_month": c.baseline.usd_per_month,
        "items": [i.to_dict() for i in c.baseline.items],
        "teacher_scale": c.teacher_scale,  # this teacher's CPU per image / the measured one's (backends scaled)
        "hybrid": None if c.hybrid is None else {  # the hybrid with this teacher (null: the report's own)
            "backend": c.hybrid.backend.name, "cloud_usd_per_camera_month": c.hybrid.cloud_usd_per_camera_month,
            "all_in_usd_per_camera_month": c.hybrid.all_in_usd_per_camera_month,
            "usd_per_million_escalations": _per_million(c.hybrid.usd_per_escalation())},
        "ratio_cloud": cloud / base,
        "ratio_all_in": all_in / base,
        "break_even_escalation_fraction": c.break_even,  # null: cheaper even at 100%
        "ten_x_goal": {
            "target_usd_per_camera_month": t.target_usd_per_camera_month,
            "met": t.ratio_reached <= 0.1,
            "fraction_needed": t.fraction_needed,
            "usd_per_million_escalations_needed": None if t.usd_per_escalation_needed is None
            else t.usd_per_escalation_needed * PER,
        },
    }


def report_dict(r: CostReport) -> dict[str, Any]:
    h = r.hybrid
    per = h.usd_per_escalation()
    return {
        "schema": "framesieve.cost/1",
        "summary": r.summary_path,
        "prices": {"region": r.pricing.region, "as_of": r.pricing.as_of, "files": r.pricing.sources},
        "cameras": r.cameras,
        "fps": r.summary.fps,
        "escalation_fraction": {"measured": r.fraction_measured, "monthly": r.fraction_monthly},
        "inputs": {**{k: v for k, v in asdict(r.inputs).items()},
                   "bytes_per_image": h.plan.workload.request_bytes_per_image,
                   "images_per_endpoint_call": h.plan.workload.images_per_call,
                   "images_per_router_invocation": h.plan.workload.images_per_invocation},
        "batching": {
            "derived": None if h.occupancy is None else h.occupancy.to_dict(),
            "in_flight_per_gateway": None if h.occupancy is None else {
                **dict(zip(("mean", "max_in_flight"), in_flight(h.occupancy, h.backend.p95_s), strict=True)),
                "max_in_flight_by": agent_max_in_flight(h.occupancy)[1]},
            "priced": {"images_per_endpoint_call": h.plan.workload.images_per_call,
                       "images_per_router_invocation": h.plan.workload.images_per_invocation},
            "overridden_by_flags": [k for k in ("images_per_endpoint_call", "images_per_router_invocation",
                                                "images_per_verdict_message") if getattr(r.inputs, k) is not None]},
        "training": {k: getattr(r.summary.total, k) for k in (
            "training_share", "training_share_ci95", "records_answered", "training_kept", "training_tiers",
            "training_bytes_per_record", "rows_per_escalation", "training_source")},
        "backend": {"chosen": h.backend.name, "label": h.backend.label, "objective_p95_s": h.plan.objective_p95_s,
                    "objective_met": h.plan.met, "p95_s": h.backend.p95_s,
                    "assumed_performance": h.backend.assumed, "stack_parameters": h.backend.stack},
        "backends": [o.to_dict() for o in h.plan.options],
        "baseline": [_comparison(c, (c.hybrid or h).cloud_usd_per_camera_month,
                                 (c.hybrid or h).all_in_usd_per_camera_month) for c in r.comparisons],
        "landed": [lc.to_dict() for lc in r.landed],
        "hybrid": {
            "cloud_usd_per_camera_month": h.cloud_usd_per_camera_month,
            "all_in_usd_per_camera_month": h.all_in_usd_per_camera_month,
            "cloud_usd_per_month": h.cloud_usd_per_month,
            "all_in_usd_per_month": h.all_in_usd_per_month,
            "escalations_per_month": h.escalations,
            "gateways": h.gateways,
            "cameras_per_gateway": h.cameras_per_gateway,
            "cloud_items": [i.to_dict() for i in h.cloud_items],
            "gateway_items": [i.to_dict() for i in h.gateway_items],
            "warmup_usd_per_camera_month": r.warmup_usd_per_camera_month,
        },
        "usd_per_million_escalations": {
            "total": None if per is None else per * PER,
            "items": {name: usd * PER for name, usd in h.per_escalation()},
        },
        "projection": [{"cameras": s.cameras, "images_per_s": s.images_per_s, "backend": s.backend,
                        "images_per_router_invocation": s.images_per_invocation, "batching": s.occupancy,
                        "instances": s.gpu_instances, "cloud_usd_per_camera_month": s.cloud_usd_per_camera_month,
                        "all_in_usd_per_camera_month": s.all_in_usd_per_camera_month,
                        "baseline_usd_per_camera_month": list(s.baseline_usd_per_camera_month),
                        "ratio_cloud": s.cloud_usd_per_camera_month / s.baseline_usd_per_camera_month[0],
                        "given_teacher": None if s.given_cloud_usd_per_camera_month is None else {
                            "backend": s.given_backend,
                            "cloud_usd_per_camera_month": s.given_cloud_usd_per_camera_month,
                            "ratio_cloud": s.given_cloud_usd_per_camera_month / s.baseline_usd_per_camera_month[-1]}}
                       for s in r.scale],
    }
