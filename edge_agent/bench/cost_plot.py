"""The cost PNG: what each option costs per camera-month, and where the hybrid stops paying off."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.bench.cost_report import CostReport

_BASE_COLOURS = ("#7f7f7f", "#b07aa1")
_CLOUD, _ALL_IN = "#4e79a7", "#f28e2b"


def plot_cost(report: CostReport, path: Path) -> Path:
    """Left: $/camera-month bars. Right: hybrid cloud $/camera-month against the escalation fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r, h = report, report.hybrid
    fig, (bars, curve, options) = plt.subplots(1, 3, figsize=(19, 5.6), gridspec_kw={"width_ratios": [1, 1.4, 1.2]})
    fig.suptitle(f"FrameSieve cost per camera-month: {r.cameras:,} cameras at {r.summary.fps:g} fps "
                 f"({r.pricing.region} on-demand prices as of {r.pricing.as_of})", fontsize=12)

    names = [f"Baseline\n{c.baseline.label.replace(' ', chr(10))}" for c in r.comparisons]
    names += ["Hybrid\ncloud only", "Hybrid\nall-in\n(+ gateways)"]
    values = [c.baseline.usd_per_camera_month for c in r.comparisons]
    values += [h.cloud_usd_per_camera_month, h.all_in_usd_per_camera_month]
    colours = list(_BASE_COLOURS[: len(r.comparisons)]) + [_CLOUD, _ALL_IN]
    drawn = bars.bar(names, values, color=colours)
    bars.bar_label(drawn, labels=[f"${v:,.2f}" for v in values], padding=2, fontsize=9)
    bars.set_ylabel("US$ per camera-month")
    bars.set_title(f"Baseline vs hybrid at {r.fraction_monthly:.1%} escalated frames")
    bars.set_ylim(0, max(values) * 1.15)
    bars.tick_params(axis="x", labelsize=9)

    xs = [100 * f for f, _ in r.curve]
    curve.plot(xs, [usd for _, usd in r.curve], color=_CLOUD, lw=2, label="Hybrid, cloud only")
    top = max(usd for _, usd in r.curve)
    for colour, c in zip(_BASE_COLOURS, r.comparisons, strict=False):
        usd = c.baseline.usd_per_camera_month
        top = max(top, usd)
        curve.axhline(usd, color=colour, ls="--", lw=1.5, label=f"Baseline, {c.baseline.label} (${usd:,.2f})")
        if c.break_even is not None and c.break_even <= r.curve[-1][0]:
            curve.axvline(100 * c.break_even, color=colour, ls=":", lw=1.2)
            curve.annotate(f"break-even {c.break_even:.1%}", (100 * c.break_even, usd), xytext=(-8, 10),
                           textcoords="offset points", ha="right", color=colour, fontsize=9,
                           bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.9})
    curve.plot([100 * r.fraction_monthly], [h.cloud_usd_per_camera_month], "o", color="black",
               label=f"Measured ({r.fraction_monthly:.1%}: ${h.cloud_usd_per_camera_month:,.2f})")
    curve.set_xlim(0, xs[-1])
    curve.set_ylim(0, top * 1.15)
    curve.set_xlabel("Escalation fraction (% of sampled frames sent to the cloud, monthly average)")
    curve.set_ylabel("US$ per camera-month")
    steps = "steps: one more instance" if h.backend.instance_items else "per use: no instance steps"
    curve.set_title(f"Hybrid cloud cost vs escalation fraction on {h.backend.name} ({steps})", fontsize=10)
    curve.grid(alpha=0.3)
    curve.legend(loc="upper left", fontsize=9)
    _backends(options, r)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _backends(ax, r: CostReport) -> None:
    """Each teacher backend's monthly bill for this fleet; grey where it misses the latency objective."""
    pl = r.hybrid.plan
    rows = sorted(pl.options, key=lambda o: o.usd_per_month, reverse=True)
    colours = ["#59a14f" if o is pl.chosen else _CLOUD if o.meets else "#bab0ac" for o in rows]
    drawn = ax.barh([o.name for o in rows], [o.usd_per_month / r.cameras for o in rows], color=colours)
    ax.bar_label(drawn, labels=[f"${o.usd_per_month / r.cameras:,.2f}  p95 {o.p95_s:.2f} s"
                                f"{'' if o.meets else ' (misses)'}{' *' if o.assumed else ''}" for o in rows],
                 padding=3, fontsize=8)
    ax.set_xlabel("US$ per camera-month (with router Lambda, data processed)")
    ax.set_title(f"Backends at {pl.workload.images_per_s:,.1f} images/s, objective p95 <= {pl.objective_p95_s:g} s\n"
                 f"green: chosen; grey: misses the objective; *: assumed performance", fontsize=10)
    ax.set_xlim(0, max(o.usd_per_month for o in rows) / r.cameras * 1.6)
    ax.tick_params(axis="y", labelsize=9)
