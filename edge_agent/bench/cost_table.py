"""The cost report as a console table: inputs, every line item with its source, then the answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_agent.bench.cost_batching import agent_max_in_flight, in_flight

if TYPE_CHECKING:
    from edge_agent.bench.cost_model import HybridCost, LineItem
    from edge_agent.bench.cost_report import Comparison, CostReport

PER = 1e6  # per-escalation figures are shown per million escalations: fractions of a cent are unreadable


def _usd(x: float) -> str:
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 0.01 or x == 0:
        return f"${x:,.2f}"
    return f"${x:.2g}"


def _price(x: float) -> str:
    return f"${x:.4g}"


def _qty(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def _items(title: str, items: list[LineItem], cameras: int, sources: list[str]) -> list[str]:
    out = ["", title, f"  {'item':<50} {'quantity':>11} {'unit':<27} {'unit price':>10} {'$/month':>9} "
                      f"{'$/cam-mo':>8}  src"]
    for i in items:
        if i.source not in sources:
            sources.append(i.source)
        out.append(f"  {i.name:<50} {_qty(i.quantity):>11} {i.unit:<27} {_price(i.unit_price_usd):>10} "
                   f"{_usd(i.usd_per_month):>9} {_usd(i.usd_per_month / cameras):>8}  [{sources.index(i.source) + 1}]")
    return out


def _be_text(c: Comparison) -> str:
    if c.break_even is None:
        return "none: the hybrid's cloud bill stays below the baseline even at 100% escalation"
    if c.break_even == 0.0:
        return "0%: the endpoint's idle minimum alone costs more than the baseline at this fleet size"
    return f"{c.break_even:.2%} of sampled frames (monthly average); above it the hybrid's cloud bill is higher"


def _target_lines(c: Comparison, ratio: float) -> list[str]:
    t = c.target
    if t.fraction_needed is None:
        by_fraction = "met at any escalation fraction"
    elif t.fraction_needed == 0.0:
        by_fraction = (f"not by escalating less: with no escalation the cloud still costs "
                       f"{_usd(t.fixed_usd_per_camera_month)}/camera-month (endpoint minimum)")
    else:
        by_fraction = f"an escalation fraction <= {t.fraction_needed:.2%}"
    if t.usd_per_escalation_needed is None:
        by_cost = "not by cheaper escalations (fixed costs alone exceed it)"
    else:
        by_cost = f"<= {_usd(t.usd_per_escalation_needed * PER)} per million escalations"
    now = "n/a" if t.usd_per_escalation_now is None else _usd(t.usd_per_escalation_now * PER)
    return [f"  1/10 goal, {_usd(t.target_usd_per_camera_month)}/camera-month: reached {t.ratio_reached:.3f} of the "
            f"baseline ({'met' if t.ratio_reached <= ratio else 'not met'}). It needs",
            f"    {by_fraction};",
            f"    or, at the measured fraction, {by_cost} (now {now})"]


def _training_line(r: CostReport) -> str | None:
    """The training share priced and the evidence behind it (counts, 95% interval, tiers, bytes per record)."""
    t, i = r.summary.total, r.inputs
    if i.training_share is not None:
        return f"Training share {i.training_share:g} (--training-share)"
    if t.training_share is None:
        return f"Training share {r.pricing.per_escalation.training_sample_rate:g} (the price file's; not measured)"
    kept = t.training_kept if t.training_kept is not None else round(t.training_share * (t.records_answered or 0))
    counts = f" ({kept} kept of {t.records_answered} escalations" if t.records_answered else " ("
    ci = (f", 95% {t.training_share_ci95[0]:.3f}-{t.training_share_ci95[1]:.3f}" if t.training_share_ci95 else "")
    tiers = ", ".join(f"{k} {v}" for k, v in (t.training_tiers or {}).items())
    nbytes = f"; {t.training_bytes_per_record:,.0f} B per kept record" if t.training_bytes_per_record else ""
    where = f" from {t.training_source}" if t.training_source else ""
    return (f"Training share {t.training_share:.3f}{counts}{ci}{'; ' + tiers if tiers else ''}){where}{nbytes}; "
            f"{t.rows_per_escalation if t.rows_per_escalation is not None else 'n/a'} rows per escalation")


def _hybrid_usd(c: Comparison, h: HybridCost, which: str | None, usd: float) -> float:
    """A hybrid row's $/camera-month with this comparison's teacher (its own hybrid, or landed-video mode)."""
    if which and which.startswith("landed:"):
        return next((lc.usd_per_camera_month for lc in c.landed if lc.mode == which[7:]), usd)
    own = c.hybrid or h
    return {"cloud": own.cloud_usd_per_camera_month, "all_in": own.all_in_usd_per_camera_month}.get(which or "", usd)


def format_cost(report: CostReport, target_ratio: float = 0.1) -> str:
    """A readable table; the numbered sources at the end trace every unit price."""
    r, h, p, t = report, report.hybrid, report.pricing, report.summary.total
    sources: list[str] = []
    warm = steady = ""
    if r.summary.warmup and r.summary.warmup.steady_escalation_fraction is not None:
        steady = " (the student each camera runs after its warm-up and specialization)"
    if r.summary.warmup:
        w = r.summary.warmup
        warm = (f"; monthly with warm-up {_pct(r.fraction_monthly)} ({w.escalation_fraction:.1%} for {w.hours:g} h per "
                f"new camera, over {p.warmup_amortisation_months:g} month(s))")
    lines = [
        f"FrameSieve cost model: {r.cameras:,} cameras at {r.summary.fps:g} fps; {p.region} on-demand prices as of "
        f"{p.as_of} ({' + '.join(p.sources)})",
        f"Bench {r.summary_path}: escalation fraction {_pct(r.fraction_measured)}{steady}{warm}; "
        f"{t.message_bytes_mean:,.0f} B/message; edge {t.edge_cpu_s_per_frame:g} CPU-s/frame; "
        f"{t.cameras_per_core:g} cameras/core",
    ]
    if (training := _training_line(r)) is not None:
        lines.append(training)
    for c in r.comparisons:
        b = c.baseline
        lines += _items(f"Baseline, {b.label}: {b.cpu_s_per_frame:g} CPU-s/frame x {r.summary.fps:g} fps / "
                        f"{p.baseline.target_utilisation:g} target utilisation x {p.baseline.headroom:g} headroom = "
                        f"{b.vcpus_per_camera:.3f} vCPU/camera -> {b.instances} instance(s)", b.items, r.cameras,
                        sources)
    lines += _backends(r)
    minimum = " (the endpoint's minimum: idle capacity is paid for)" if h.gpu_at_minimum else ""
    load = (f"endpoint load {h.gpu_load:.2f} instance(s) -> {h.gpu_instances}{minimum}" if h.backend.instance_items
            else f"{h.backend.load:.1f} concurrent requests at peak")
    lines += _items(f"Hybrid cloud on {h.backend.name}: {h.escalations:,.0f} escalations/month; {load}",
                    h.cloud_items, r.cameras, sources)
    cap = ", capped by gateway.max_cameras" if p.gateway.max_cameras else ""
    lines += _items(f"Hybrid gateways: {h.cameras_per_gateway} cameras/gateway (cameras_per_core x {p.gateway.cores} "
                    f"cores x {p.gateway.target_utilisation:g}{cap}) -> {h.gateways} gateway(s)",
                    h.gateway_items, r.cameras, sources)
    lines += _landed_items(r, sources)

    heads = "".join(f" {'vs ' + c.baseline.label.split()[0]:>14}" for c in r.comparisons)
    lines += ["", f"  {'$ per camera-month':<34} {'per camera':>11} {'fleet/month':>12}{heads}"]
    rows: list[tuple[str, float, str | None]] = [
        (f"baseline, {c.baseline.label}", c.baseline.usd_per_camera_month, None) for c in r.comparisons]
    rows += [("hybrid, cloud only", h.cloud_usd_per_camera_month, "cloud"),
             ("hybrid, all-in", h.all_in_usd_per_camera_month, "all_in")]
    rows += [(lc.label, lc.usd_per_camera_month, f"landed:{lc.mode}") for lc in r.landed]  # cloud is all-in
    for name, usd, which in rows:
        # a hybrid row is compared with each baseline's own hybrid: the same teacher on both sides
        ratios = "".join(f" {_hybrid_usd(c, h, which, usd) / c.baseline.usd_per_camera_month:>14.3f}"
                         for c in r.comparisons)
        lines.append(f"  {name:<34} {_usd(usd):>11} {_usd(usd * r.cameras):>12}{ratios}")
    for c in r.comparisons:
        if c.hybrid is not None:
            ch, per = c.hybrid, c.hybrid.usd_per_escalation()
            lines.append(f"  with the {c.baseline.label} ({c.baseline.cpu_s_per_frame:g} CPU-s/frame, "
                         f"x{c.teacher_scale:.3g} the measured one) on every backend: {ch.backend.name}, "
                         "hybrid cloud "
                         f"{_usd(ch.cloud_usd_per_camera_month)}/camera-month, "
                         f"{_usd(per * PER) if per is not None else 'n/a'} per million escalations")
    if r.warmup_usd_per_camera_month is not None and r.summary.warmup is not None:
        w, months = r.summary.warmup, r.pricing.warmup_amortisation_months
        escalations = w.escalation_fraction * w.hours * 3600 * r.summary.fps
        per = h.usd_per_escalation()
        lines.append(f"  onboarding a new camera: {escalations:,.0f} escalations over {w.hours:g} h "
                     f"({w.escalation_fraction:.1%} of its frames), "
                     f"{_usd(escalations * per) if per is not None else 'n/a'} per new camera at this fleet's "
                     f"cost per escalation; beyond its steady state it adds "
                     f"{_usd(r.warmup_usd_per_camera_month)}/camera-month over {months:g} month(s)")

    lines += ["", "$ per million escalations (endpoint instance-hours shared over this fleet's escalations):"]
    lines += [f"  {name:<50} {_usd(usd * PER):>10}" for name, usd in h.per_escalation()]
    total = h.usd_per_escalation()
    lines += [f"  {'total':<50} {_usd(total * PER) if total is not None else 'n/a':>10}", ""]
    for c in r.comparisons:
        lines.append(f"Break-even vs the baseline, {c.baseline.label}: {_be_text(c)}")
        lines += _target_lines(c, target_ratio)

    bheads = "".join(f" {'base ' + c.baseline.label.split()[0]:>15}" for c in r.comparisons)
    lines += ["", f"Projection at {_pct(r.fraction_monthly)} escalated ($ per camera-month; each fleet on its own "
                  "cheapest backend):",
              f"  {'cameras':>9} {'images/s':>10} {'per msg':>8} {'backend':<16} {'inst.':>6} {'cloud':>10} "
              f"{'all-in':>10}{bheads} {'cloud/base':>10}"]
    for s in r.scale:
        base = "".join(f" {_usd(b):>15}" for b in s.baseline_usd_per_camera_month)
        inst = f"{s.gpu_instances}{'*' if s.gpu_at_minimum else ' '}" if s.gpu_instances else "-  "
        lines.append(f"  {s.cameras:>9,} {s.images_per_s:>10.1f} {s.images_per_invocation:>8.3f} {s.backend:<16} "
                     f"{inst:>6} "
                     f"{_usd(s.cloud_usd_per_camera_month):>10} {_usd(s.all_in_usd_per_camera_month):>10}{base}"
                     f" {s.cloud_usd_per_camera_month / s.baseline_usd_per_camera_month[0]:>10.3f}"
                     + (f" given teacher: {s.given_backend} {_usd(s.given_cloud_usd_per_camera_month)}, "
                        f"{s.given_cloud_usd_per_camera_month / s.baseline_usd_per_camera_month[-1]:.3f}"
                        if s.given_cloud_usd_per_camera_month is not None else ""))
    lines.append("  * the endpoint's minimum: the fleet keeps less than that busy; per msg: escalations per gateway "
                 "message at that fleet size (its gateways' cameras x fps x escalated x window)")
    lines += ["", "Sources:"] + [f"  [{i + 1}] {s}" for i, s in enumerate(sources)]
    lines.append(f"Note: {p.note}")
    return "\n".join(lines)


def _backends(r: CostReport) -> list[str]:
    """Every teacher backend priced for this fleet, the chosen one marked; assumptions flagged."""
    pl = r.hybrid.plan
    w = pl.workload
    out = ["", *_batching(r), "",
           f"Teacher backends for {r.cameras:,} cameras, {w.images_per_s:.2f} images/s ({w.images_per_call:.4g} per "
           f"call, {w.images_per_invocation:.4g} per router invocation); latency objective p95 <= "
           f"{pl.objective_p95_s:g} s:",
           f"  {'':2}{'option':<16} {'$/month':>10} {'$/cam-mo':>9} {'p95 s':>7}  {'meets':<5}  note"]
    for o in sorted(pl.options, key=lambda o: o.usd_per_month):
        mark = "->" if o is pl.chosen else ""
        flag = " [assumed performance]" if o.assumed else ""
        out.append(f"  {mark:<2}{o.name:<16} {_usd(o.usd_per_month):>10} {_usd(o.usd_per_month / r.cameras):>9} "
                   f"{o.p95_s:>7.2f}  {'yes' if o.meets else 'no':<5}  {o.note}{flag}")
    c = pl.chosen
    if r.inputs.backend:
        verdict = f"as given by --backend ({'meets' if c.meets else 'MISSES'} the objective)"
    else:
        verdict = "the cheapest that meets the objective" if pl.met else "NO option meets the objective: the fastest"
    out.append(f"  chosen: {c.name} ({c.label}), {verdict}; deploy with "
               + " ".join(f"--param {k}={v}" for k, v in c.stack.items()))
    out.append(f"  {c.name} performance: {c.performance_source}")
    return out


def _batching(r: CostReport) -> list[str]:
    """How many escalations share a gateway message, a router invocation, an endpoint call, a verdict and a
    training object: derived from the fleet (costing.occupancy) unless --images-per-* gave them."""
    o, w, i = r.hybrid.occupancy, r.hybrid.plan.workload, r.inputs
    out = [f"Per-gateway batching: {o.text()}" if o else "Per-gateway batching: none"]
    given = [f"{flag} {v:g}" for flag, v in (("--images-per-call", i.images_per_endpoint_call),
                                             ("--images-per-invocation", i.images_per_router_invocation),
                                             ("--images-per-verdict", i.images_per_verdict_message)) if v is not None]
    if given:
        out.append(f"  priced as given instead: {', '.join(given)} (images per call {w.images_per_call:g}, per "
                   f"invocation {w.images_per_invocation:g})")
    if o is not None and o.window_ms > 0:
        busy, limit = in_flight(o, r.hybrid.backend.p95_s)
        how = agent_max_in_flight(o)[1]
        if busy > limit:  # with auto, only once its cap is reached (or an explicit setting below the need)
            out.append(f"  WARNING: a gateway awaits up to ~{busy:.1f} escalations at once ({o.arrivals_per_s:.3g}/s x "
                       f"({o.window_ms / 2:g} ms + the path's p95 {r.hybrid.backend.p95_s:.2f} s)), over the agent's "
                       f"escalation.max_in_flight {limit} ({how}): beyond it frames are decided at the edge "
                       "(cloud_busy); use smaller gateways (pricing.yaml gateway.max_cameras)")
        else:
            out.append(f"  in flight: a gateway awaits up to ~{busy:.1f} escalations at once, within the agent's "
                       f"escalation.max_in_flight {limit} ({how})")
    m = r.summary.total
    if m.images_per_router_invocation is not None:
        out.append(f"  measured by bench-batching on the bench's own gateway: {m.images_per_router_invocation:g} per "
                   "message (its cameras and window, not this fleet's: shown, not priced)")
    return out


def _landed_items(r: CostReport, sources: list[str]) -> list[str]:
    """Landed-video mode: the sieve in the cloud instead of a gateway, for the same footage and escalations."""
    out: list[str] = []
    for lc in r.landed:
        how = (f"{lc.workers} Fargate worker(s)" if lc.mode == "kvs"
               else f"a Lambda per {r.pricing.landed.segment_s:g} s segment" if r.pricing.landed else "")
        out += _items(f"Landed video ({lc.label}; no gateway, no IoT Core): {how}; the pipeline's "
                      f"{lc.cpu_s_per_frame * 1000:.1f} ms CPU per sampled frame ({lc.cpu_source}); the same "
                      f"{lc.escalations:,.0f} escalations/month to {r.hybrid.backend.name}", lc.items, r.cameras,
                      sources)
    return out
