"""What `edge-agent cost` reports, as data: the comparison with the baseline, the 1/10 goal, the fleet
projection and the whole report. cost.py computes it; cost_table.py, cost_json.py and cost_plot.py present it,
so the presenters need only these types, not the computation."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.bench.cost_landed import LandedCost
from edge_agent.bench.cost_model import BaselineCost, BenchSummary, HybridCost, Inputs
from edge_agent.bench.pricing import Pricing


@dataclass(frozen=True)
class Target:
    """What a cloud bill of 1/10 of the baseline's would need."""

    target_usd_per_camera_month: float
    fixed_usd_per_camera_month: float  # what the hybrid's cloud costs with no escalation (endpoint minimum)
    ratio_reached: float  # hybrid cloud / baseline, per camera-month
    fraction_needed: float | None  # None: met at any fraction; 0.0: fixed costs alone exceed the target
    usd_per_escalation_now: float | None
    usd_per_escalation_needed: float | None  # at the measured fraction; None: unreachable that way


@dataclass(frozen=True)
class Comparison:
    baseline: BaselineCost
    break_even: float | None
    target: Target
    # the hybrid with this baseline's teacher on every backend option (the planner re-run on the scaled
    # options); None: the report's own hybrid (the measured teacher)
    hybrid: HybridCost | None = None
    teacher_scale: float = 1.0  # this teacher's CPU per image / the measured teacher's
    landed: tuple[LandedCost, ...] = ()  # landed-video mode with this teacher (empty: the report's own)


@dataclass(frozen=True)
class ScaleRow:
    cameras: int
    images_per_s: float
    backend: str  # the cheapest option meeting the objective at this fleet size
    gpu_instances: int  # endpoint instances (0: a per-use backend)
    gpu_at_minimum: bool
    cloud_usd_per_camera_month: float
    all_in_usd_per_camera_month: float
    baseline_usd_per_camera_month: tuple[float, ...]  # measured teacher, then the user-given one
    # the hybrid with the user-given teacher on every backend (None without one): its backend and cloud bill
    given_backend: str | None = None
    given_cloud_usd_per_camera_month: float | None = None
    images_per_invocation: float = 1.0  # the batch occupancy priced at this fleet size (derived, or the flag's)
    occupancy: dict | None = None  # its derivation (costing.occupancy.Occupancy.to_dict)


@dataclass(frozen=True)
class CostReport:
    summary_path: str
    summary: BenchSummary
    pricing: Pricing
    cameras: int
    fraction_measured: float
    fraction_monthly: float  # with the warm-up amortised
    warmup_usd_per_camera_month: float | None  # what the warm-up adds to the cloud bill
    hybrid: HybridCost
    comparisons: list[Comparison]  # measured teacher first, then the user-given one
    scale: list[ScaleRow]
    curve: list[tuple[float, float]]  # (monthly fraction, hybrid cloud $/camera-month) for the plot
    inputs: Inputs = Inputs()
    landed: tuple[LandedCost, ...] = ()  # landed-video mode (the sieve in the cloud), when the prices have it
