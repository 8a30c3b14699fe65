"""`edge-agent cost`: the customer's question, "how much do we save?", answered from a bench summary.

Builds on the line items of cost_model: compares the hybrid with the baseline (for the measured teacher and
for a user-given, likely heavier one), solves the break-even escalation fraction and what the 1/10 cost
goal would need, and projects GPU endpoint instances for fleets of 10 to 100,000 cameras.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_agent.bench.cost_model import (
    DEFAULT_CAMERAS,
    SCALE_FLEETS,
    BaselineCost,
    BenchSummary,
    HybridCost,
    LineItem,
    SummaryError,
    baseline_cost,
    cameras_per_gateway,
    gpu_load,
    hybrid_cost,
    load_summary,
    messages_per_escalation,
    steady_escalation_fraction,
    usage_items,
)
from edge_agent.bench.cost_table import format_cost
from edge_agent.bench.pricing import Pricing, PricingError, load_pricing

__all__ = [
    "DEFAULT_CAMERAS", "BaselineCost", "HybridCost", "LineItem", "CostReport", "baseline_cost", "hybrid_cost",
    "break_even_escalation_fraction", "build_report", "format_cost", "plot_cost", "report_text", "run_cost_cli",
]

TARGET_RATIO = 0.1  # the goal: a cloud bill per camera-month at most 1/10 of the baseline's


@dataclass(frozen=True)
class _Curve:
    """Hybrid cloud $/camera-month as a function of the monthly escalation fraction f, in closed form."""

    per_fraction: float  # variable $ per camera-month per unit of f (everything but the endpoint)
    fixed: float  # $ per camera-month that no escalation changes (connectivity)
    gpu_load_at_1: float  # endpoint instances the fleet keeps busy at f = 1
    min_instances: int
    gpu_usd: float  # one endpoint instance-month, per camera of the fleet

    def instances(self, f: float) -> int:
        return max(self.min_instances, math.ceil(self.gpu_load_at_1 * f - 1e-9))

    def __call__(self, f: float) -> float:
        return f * self.per_fraction + self.fixed + self.instances(f) * self.gpu_usd


def _curve(summary: BenchSummary, pricing: Pricing, cameras: int) -> _Curve:
    frames = summary.fps * pricing.hours_per_month * 3600  # sampled frames per camera-month
    per_escalation = sum(i.usd_per_month for i in usage_items(summary, pricing, messages_per_escalation(summary)))
    gateways = math.ceil(cameras / cameras_per_gateway(summary, pricing))
    conn = gateways * pricing.hours_per_month * 60 / 1e6 * pricing.iot_core.connectivity.usd / cameras
    gpu = pricing.sagemaker.instance.usd * pricing.hours_per_month / cameras
    return _Curve(frames * per_escalation, conn, gpu_load(summary, pricing, cameras, 1.0),
                  pricing.sagemaker.min_instances, gpu)


def _solve(curve: _Curve, target: float) -> float | None:
    """Smallest f in [0, 1] above which the cost exceeds target; None if it never does, 0.0 if it always does.

    The cost is linear in f between the points where the endpoint gains an instance, and steps up there, so
    each stretch is solved exactly; a step that jumps over the target returns the step's fraction.
    """
    if curve(0.0) > target:
        return 0.0
    if curve(1.0) <= target:
        return None
    lo, k = 0.0, curve.instances(0.0)
    while lo < 1.0:
        hi = 1.0 if curve.gpu_load_at_1 <= 0 else min(1.0, k / curve.gpu_load_at_1)
        if hi >= lo:
            base = curve.fixed + k * curve.gpu_usd
            if base > target:
                return lo
            if curve.per_fraction > 0 and (target - base) / curve.per_fraction <= hi:
                return max(lo, (target - base) / curve.per_fraction)
            lo = hi
        k += 1
    return None


def break_even_escalation_fraction(summary: BenchSummary, pricing: Pricing, cameras: int,
                                   baseline_usd_per_camera_month: float) -> float | None:
    """Monthly escalation fraction above which the hybrid's cloud bill per camera exceeds the baseline's.

    The endpoint's minimum instances are a fixed cost shared by the fleet, so a small fleet breaks even at a
    lower fraction (0.0: the idle minimum alone costs more than the baseline). None: cheaper even at 100%.
    """
    return _solve(_curve(summary, pricing, cameras), baseline_usd_per_camera_month)


@dataclass(frozen=True)
class Target:
    """What a cloud bill of 1/10 of the baseline's would need."""

    target_usd_per_camera_month: float
    fixed_usd_per_camera_month: float  # what the hybrid's cloud costs with no escalation (endpoint minimum)
    ratio_reached: float  # hybrid cloud / baseline, per camera-month
    fraction_needed: float | None  # None: met at any fraction; 0.0: fixed costs alone exceed the target
    usd_per_escalation_now: float | None
    usd_per_escalation_needed: float | None  # at the measured fraction; None: unreachable that way


def ten_x_target(summary: BenchSummary, pricing: Pricing, hybrid: HybridCost, baseline: BaselineCost,
                 ratio: float = TARGET_RATIO) -> Target:
    curve = _curve(summary, pricing, hybrid.cameras)
    goal = baseline.usd_per_camera_month * ratio
    escalations_per_camera = hybrid.escalations / hybrid.cameras
    needed = None
    if escalations_per_camera > 0 and goal > curve.fixed:
        needed = (goal - curve.fixed) / escalations_per_camera
    ratio_reached = hybrid.cloud_usd_per_camera_month / baseline.usd_per_camera_month
    return Target(goal, curve(0.0), ratio_reached, _solve(curve, goal), hybrid.usd_per_escalation(), needed)


@dataclass(frozen=True)
class Comparison:
    baseline: BaselineCost
    break_even: float | None
    target: Target


@dataclass(frozen=True)
class ScaleRow:
    cameras: int
    images_per_s: float
    gpu_instances: int
    gpu_at_minimum: bool
    cloud_usd_per_camera_month: float
    all_in_usd_per_camera_month: float
    baseline_usd_per_camera_month: tuple[float, ...]  # measured teacher, then the user-given one


def scale_projection(summary: BenchSummary, pricing: Pricing, fleets: tuple[int, ...] = SCALE_FLEETS,
                     teacher_cpu_s: float | None = None) -> list[ScaleRow]:
    """GPU endpoint instances and $/camera-month for each fleet size at the measured escalation rate."""
    rows = []
    pe = pricing.per_escalation
    teachers = [None] if teacher_cpu_s is None else [None, teacher_cpu_s]
    for n in fleets:
        h = hybrid_cost(summary, pricing, n)
        rate = n * summary.fps * h.escalation_fraction * messages_per_escalation(summary) * pe.endpoint_calls
        rows.append(ScaleRow(n, rate * pe.images_per_call, h.gpu_instances, h.gpu_at_minimum,
                             h.cloud_usd_per_camera_month, h.all_in_usd_per_camera_month,
                             tuple(baseline_cost(summary, pricing, n, cpu).usd_per_camera_month for cpu in teachers)))
    return rows


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


def build_report(summary: BenchSummary, pricing: Pricing, cameras: int = DEFAULT_CAMERAS,
                 teacher_cpu_s: float | None = None, summary_path: str = "<summary>") -> CostReport:
    if cameras < 1:
        raise ValueError(f"cameras must be at least 1; got {cameras}")
    if teacher_cpu_s is not None and not teacher_cpu_s > 0:
        raise ValueError(f"the teacher CPU time per frame must be positive; got {teacher_cpu_s}")
    hybrid = hybrid_cost(summary, pricing, cameras)
    measured = steady_escalation_fraction(summary)
    warmup = None
    if summary.warmup is not None:
        warmup = hybrid.cloud_usd_per_camera_month - hybrid_cost(summary, pricing, cameras, measured) \
            .cloud_usd_per_camera_month
    comparisons = []
    for cpu in [None] if teacher_cpu_s is None else [None, teacher_cpu_s]:
        base = baseline_cost(summary, pricing, cameras, cpu)
        comparisons.append(Comparison(
            base, break_even_escalation_fraction(summary, pricing, cameras, base.usd_per_camera_month),
            ten_x_target(summary, pricing, hybrid, base)))
    marks = [hybrid.escalation_fraction] + [c.break_even or 0.0 for c in comparisons]
    x_max = min(1.0, max(0.2, 2.0 * max(marks)))
    curve_fn = _curve(summary, pricing, cameras)
    xs = {x_max * i / 400 for i in range(401)}
    steps = curve_fn.gpu_load_at_1 * x_max
    if 0 < steps <= 400:  # both sides of each added instance, so the plot draws the steps upright
        xs |= {k / curve_fn.gpu_load_at_1 + d for k in range(1, int(steps) + 1) for d in (0.0, 1e-9)}
    curve = [(x, curve_fn(x)) for x in sorted(x for x in xs if x <= x_max)]
    return CostReport(summary_path, summary, pricing, cameras, measured, hybrid.escalation_fraction, warmup,
                      hybrid, comparisons, scale_projection(summary, pricing, teacher_cpu_s=teacher_cpu_s), curve)


def plot_cost(report: CostReport, path: Path | str) -> Path:
    """Write the cost PNG (matplotlib, imported only when a plot is asked for)."""
    from edge_agent.bench.cost_plot import plot_cost as _plot

    return _plot(report, Path(path))


def report_text(summary_path: Path, png: Path | None = None, cameras: int = DEFAULT_CAMERAS,
                teacher_cpu_s: float | None = None) -> str:
    """The cost table for `edge-agent bench`'s report (default prices), and its plot; an error becomes the text."""
    try:
        report = build_report(load_summary(summary_path), load_pricing(), cameras, teacher_cpu_s,
                              summary_path=str(summary_path))
    except (PricingError, SummaryError, ValueError) as exc:
        return f"cost model not run: {exc}"
    text = format_cost(report)
    if png is not None:
        try:
            plot_cost(report, png)
        except ImportError:
            text += "\n(no cost plot: matplotlib is not installed)"
    return text


def run_cost_cli(bench_json: Path, cameras: int = DEFAULT_CAMERAS, pricing: Path | None = None,
                 overrides: Path | None = None, teacher_cpu_s: float | None = None,
                 out_png: Path | None = None) -> int:
    """Print the cost table (and write the plot); 0 on success, 2 with a clear message on a bad input."""
    try:
        prices = load_pricing(pricing, overrides)
        summary = load_summary(bench_json)
        report = build_report(summary, prices, cameras, teacher_cpu_s, str(bench_json))
    except (PricingError, SummaryError, ValueError) as exc:
        print(f"edge-agent cost: {exc}", file=sys.stderr)
        return 2
    print(format_cost(report))
    if out_png is not None:
        try:
            print(f"plot: {plot_cost(report, out_png)}")
        except OSError as exc:
            print(f"edge-agent cost: cannot write the plot {out_png}: {exc.strerror}", file=sys.stderr)
            return 2
        except ImportError:
            print("edge-agent cost: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2
    return 0
