"""`edge-agent cost`: the customer's question, "how much do we save?", answered from a bench summary.

Builds on the line items of cost_model: compares the hybrid with the baseline (for the measured teacher and
for a user-given, likely heavier one), on the teacher backend the planner picks for the fleet (costing.planner),
solves the break-even escalation fraction and what the 1/10 cost goal would need, and projects the fleet at
the given size and at 10 to 100,000 cameras, each size on its own cheapest backend.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from edge_agent.bench.cost_landed import MODES, landed_cost
from edge_agent.bench.cost_model import (
    DEFAULT_CAMERAS,
    SCALE_FLEETS,
    BaselineCost,
    BenchSummary,
    HybridCost,
    Inputs,
    LineItem,
    SummaryError,
    baseline_cost,
    hybrid_cost,
    load_summary,
    steady_escalation_fraction,
    teacher_pricing,
    teacher_scale,
)
from edge_agent.bench.cost_report import Comparison, CostReport, ScaleRow, Target
from edge_agent.bench.cost_table import format_cost
from edge_agent.bench.pricing import Pricing, PricingError, load_pricing
from models.metrics import wilson_interval

__all__ = [
    "DEFAULT_CAMERAS", "BaselineCost", "HybridCost", "LineItem", "CostReport", "baseline_cost", "hybrid_cost",
    "break_even_escalation_fraction", "build_report", "format_cost", "plot_cost", "report_text", "run_cost_cli",
]

TARGET_RATIO = 0.1  # the goal: a cloud bill per camera-month at most 1/10 of the baseline's


class _Curve:
    """Hybrid cloud $/camera-month as a function of the monthly escalation fraction f, on one backend, priced
    exactly at each f: the batch occupancy follows f (more escalations per window, fuller messages), so the
    cost per escalation is not a constant and the bill is not linear in f. It never decreases as f grows (the
    messages, images and instances a fleet needs only grow), which the solver relies on."""

    def __init__(self, summary: BenchSummary, pricing: Pricing, cameras: int, inputs: Inputs, backend: str):
        self._args = (summary, pricing, cameras, replace(inputs, backend=backend))
        self.cameras = cameras
        self._cache: dict[float, HybridCost] = {}
        at_1 = self.at(1.0)
        b = at_1.backend
        self.fixed = sum(i.usd_per_month for i in at_1.cloud_items if "connectivity" in i.name) / cameras
        self.gpu_load_at_1 = b.load if b.instance_items else 0.0  # instances the fleet keeps busy at f = 1
        self.min_instances = b.min_instances if b.instance_items else 0

    def at(self, f: float) -> HybridCost:
        if f not in self._cache:
            summary, pricing, cameras, inputs = self._args
            self._cache[f] = hybrid_cost(summary, pricing, cameras, f, inputs)
        return self._cache[f]

    def instances(self, f: float) -> int:
        return self.at(f).gpu_instances

    def __call__(self, f: float) -> float:
        return self.at(f).cloud_usd_per_camera_month


def _curve(summary: BenchSummary, pricing: Pricing, cameras: int, inputs: Inputs, backend: str) -> _Curve:
    """The backend stays the one chosen at the measured fraction (the curve answers "what if f moved")."""
    return _Curve(summary, pricing, cameras, inputs, backend)


def _solve(curve: _Curve, target: float) -> float | None:
    """Smallest f in [0, 1] above which the cost exceeds target; None if it never does, 0.0 if it always does.

    The cost never decreases with f (it steps up where the endpoint gains an instance), so bisection finds the
    crossing, a step's own fraction where a step jumps over the target (60 halvings: to float precision).
    """
    if curve(0.0) > target:
        return 0.0
    if curve(1.0) <= target:
        return None
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if curve(mid) > target else (mid, hi)
    return lo


def break_even_escalation_fraction(summary: BenchSummary, pricing: Pricing, cameras: int,
                                   baseline_usd_per_camera_month: float, inputs: Inputs | None = None,
                                   backend: str | None = None) -> float | None:
    """Monthly escalation fraction above which the hybrid's cloud bill per camera exceeds the baseline's.

    The endpoint's minimum instances are a fixed cost shared by the fleet, so a small fleet breaks even at a
    lower fraction (0.0: the idle minimum alone costs more than the baseline). None: cheaper even at 100%.
    """
    inputs = inputs or Inputs()
    if backend is None:
        backend = hybrid_cost(summary, pricing, cameras, None, inputs).backend.name
    return _solve(_curve(summary, pricing, cameras, inputs, backend), baseline_usd_per_camera_month)


def ten_x_target(summary: BenchSummary, pricing: Pricing, hybrid: HybridCost, baseline: BaselineCost,
                 ratio: float = TARGET_RATIO, inputs: Inputs | None = None) -> Target:
    curve = _curve(summary, pricing, hybrid.cameras, inputs or Inputs(), hybrid.backend.name)
    goal = baseline.usd_per_camera_month * ratio
    escalations_per_camera = hybrid.escalations / hybrid.cameras
    needed = None
    if escalations_per_camera > 0 and goal > curve.fixed:
        needed = (goal - curve.fixed) / escalations_per_camera  # at the measured fraction, its own occupancy
    ratio_reached = hybrid.cloud_usd_per_camera_month / baseline.usd_per_camera_month
    return Target(goal, curve(0.0), ratio_reached, _solve(curve, goal), hybrid.usd_per_escalation(), needed)


def scale_fleets(cameras: int | None = None) -> tuple[int, ...]:
    return tuple(sorted(set(SCALE_FLEETS) | ({cameras} if cameras else set())))


def scale_projection(summary: BenchSummary, pricing: Pricing, fleets: tuple[int, ...] = SCALE_FLEETS,
                     teacher_cpu_s: float | None = None, inputs: Inputs | None = None) -> list[ScaleRow]:
    """The backend, its instances and $/camera-month for each fleet size at the measured escalation rate."""
    rows = []
    teachers = [None] if teacher_cpu_s is None else [None, teacher_cpu_s]
    for n in fleets:
        h = hybrid_cost(summary, pricing, n, None, inputs)
        given = (hybrid_cost(summary, teacher_pricing(summary, pricing, teacher_cpu_s), n, None, inputs)
                 if teacher_cpu_s is not None else None)
        rows.append(ScaleRow(n, h.plan.workload.images_per_s, h.backend.name, h.gpu_instances, h.gpu_at_minimum,
                             h.cloud_usd_per_camera_month, h.all_in_usd_per_camera_month,
                             tuple(baseline_cost(summary, pricing, n, cpu).usd_per_camera_month for cpu in teachers),
                             given.backend.name if given else None,
                             given.cloud_usd_per_camera_month if given else None,
                             h.plan.workload.images_per_invocation,
                             h.occupancy.to_dict() if h.occupancy else None))
    return rows


def build_report(summary: BenchSummary, pricing: Pricing, cameras: int = DEFAULT_CAMERAS,
                 teacher_cpu_s: float | None = None, summary_path: str = "<summary>",
                 inputs: Inputs | None = None) -> CostReport:
    if cameras < 1:
        raise ValueError(f"cameras must be at least 1; got {cameras}")
    if teacher_cpu_s is not None and not teacher_cpu_s > 0:
        raise ValueError(f"the teacher CPU time per frame must be positive; got {teacher_cpu_s}")
    inputs = inputs or Inputs()
    hybrid = hybrid_cost(summary, pricing, cameras, None, inputs)
    fixed = replace(inputs, backend=hybrid.backend.name)  # what-ifs stay on the chosen backend
    measured = steady_escalation_fraction(summary)
    warmup = None
    if summary.warmup is not None:
        warmup = hybrid.cloud_usd_per_camera_month - hybrid_cost(summary, pricing, cameras, measured, fixed) \
            .cloud_usd_per_camera_month
    comparisons = []
    for cpu in [None] if teacher_cpu_s is None else [None, teacher_cpu_s]:
        # the hybrid runs the same teacher as the baseline it is compared with: a heavier customer model scales
        # every backend option's throughput and compute per image, and the planner chooses again
        base = baseline_cost(summary, pricing, cameras, cpu)
        priced = teacher_pricing(summary, pricing, cpu)
        h = hybrid if cpu is None else hybrid_cost(summary, priced, cameras, None, inputs)
        on = replace(inputs, backend=h.backend.name)
        own_landed = tuple(landed_cost(summary, priced, h, mode, inputs) for mode in MODES) \
            if pricing.landed and cpu is not None else ()
        comparisons.append(Comparison(
            base, break_even_escalation_fraction(summary, priced, cameras, base.usd_per_camera_month, on,
                                                 h.backend.name),
            ten_x_target(summary, priced, h, base, inputs=on), None if cpu is None else h,
            teacher_scale(summary, cpu), own_landed))
    marks = [hybrid.escalation_fraction] + [c.break_even or 0.0 for c in comparisons]
    x_max = min(1.0, max(0.2, 2.0 * max(marks)))
    curve_fn = _curve(summary, pricing, cameras, fixed, hybrid.backend.name)
    xs = {x_max * i / 400 for i in range(401)}
    steps = curve_fn.gpu_load_at_1 * x_max
    if 0 < steps <= 400:  # both sides of each added instance, so the plot draws the steps upright
        xs |= {k / curve_fn.gpu_load_at_1 + d for k in range(1, int(steps) + 1) for d in (0.0, 1e-9)}
    curve = [(x, curve_fn(x)) for x in sorted(x for x in xs if x <= x_max)]
    landed = tuple(landed_cost(summary, pricing, hybrid, mode, inputs) for mode in MODES) if pricing.landed else ()
    return CostReport(summary_path, summary, pricing, cameras, measured, hybrid.escalation_fraction, warmup,
                      hybrid, comparisons, scale_projection(summary, pricing, scale_fleets(cameras), teacher_cpu_s,
                                                            inputs), curve, inputs, landed)


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


# the bytes per kept record stay the priced bench's: they follow its cameras' messages (resolution, crops)
TRAINING_KEYS = ("training_share", "training_share_ci95", "records_answered", "training_kept", "training_tiers",
                 "rows_per_escalation")


def with_training_figures(summary: BenchSummary, source: BenchSummary, name: str) -> BenchSummary:
    """The summary with another bench's training figures (share, counts, tiers, rows per escalation): a share
    measured on every clip's escalations instead of one clip's handful."""
    t = source.total
    if t.training_share is None or not t.records_answered:
        raise SummaryError(f"{name} has no measured training share (total.training_share and records_answered): "
                           "bench it again with this version of `edge-agent bench`")
    update = {k: getattr(t, k) for k in TRAINING_KEYS} | {"training_source": name}
    return summary.model_copy(update={"total": summary.total.model_copy(update=update)})


MIN_FRAMES = 300  # below this, the escalation fraction a fleet's bill is priced from is too loose


def thin_evidence(frames: int, escalated: int) -> str | None:
    """Why a projection from this bench is a guess (its escalation fraction's 95% interval), or None."""
    if frames >= MIN_FRAMES:
        return None
    if frames == 0:
        return "the bench sampled no frame: there is nothing to price"
    lo, hi = wilson_interval(escalated, frames)
    return (f"this bill rests on {frames} sampled frames ({escalated} escalated): the escalation fraction is "
            f"{escalated / frames:.1%} with a 95% interval of {lo:.1%}-{hi:.1%}, and a fleet priced from it is a "
            f"guess; bench at least {MIN_FRAMES} frames of your cameras (minutes of footage, not a few clips)")


def run_cost_cli(bench_json: Path, cameras: int = DEFAULT_CAMERAS, pricing: Path | None = None,
                 overrides: Path | None = None, teacher_cpu_s: float | None = None,
                 out_png: Path | None = None, inputs: Inputs | None = None, as_json: bool = False,
                 cameras_per_core: float | None = None, training_from: Path | None = None) -> int:
    """Print the cost table or its JSON (and write the plot); 0 on success, 2 with a clear message on a bad input.
    `cameras_per_core`: a measured gateway figure for the site's stream kind (gateway-capacity) over the bench's."""
    try:
        prices = load_pricing(pricing, overrides)
        summary = load_summary(bench_json)
        if training_from is not None:
            try:
                training = load_summary(training_from)
            except SummaryError as exc:  # say which of the two summaries it is
                raise SummaryError(f"--training-from: {exc}") from exc
            summary = with_training_figures(summary, training, str(training_from))
        if cameras_per_core is not None:
            summary = summary.model_copy(update={"total": summary.total.model_copy(
                update={"cameras_per_core": cameras_per_core})})
        report = build_report(summary, prices, cameras, teacher_cpu_s, str(bench_json), inputs)
    except (PricingError, SummaryError, ValueError) as exc:
        print(f"edge-agent cost: {exc}", file=sys.stderr)
        return 2
    thin = thin_evidence(summary.total.sampled_frames, summary.total.escalated)
    if thin:
        print(f"edge-agent cost: warning: {thin}", file=sys.stderr)
    if as_json:
        import json

        from edge_agent.bench.cost_json import report_dict

        print(json.dumps(report_dict(report), indent=1))
    else:
        print(format_cost(report))
    if out_png is not None:
        try:
            written = plot_cost(report, out_png)
        except OSError as exc:
            print(f"edge-agent cost: cannot write the plot {out_png}: {exc.strerror}", file=sys.stderr)
            return 2
        except ImportError:
            print("edge-agent cost: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2
        print(f"plot: {written}", file=sys.stderr if as_json else sys.stdout)  # JSON on stdout stays parseable
    return 0
