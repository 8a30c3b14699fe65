"""`framesieve-cloud ab report`: the endpoint's production variants compared, from the results store only.

Every row the router stored names the variant that answered it (`variant`), the call's time at the router
(`endpoint_ms`), the labels the edge reported for the frame (`edge_labels`) and, for a shadowed escalation, the
other variant's answer (`shadow`). From them, per variant:
- escalations answered, and its share of all answered (the weights at work);
- agreement with audited edge decisions: rows of reason `audit` are frames the edge decided on its own with
  confidence and sent anyway to measure drift; per label, whether the variant sees the label where the edge did
  and did not (presence agreement), and of the frames where the edge saw it, the share the variant confirms.
  A shadow answer on an audit row counts for the shadow's variant too;
- latency p50/p95 of its served calls (router round trip, retries included), with a binomial order-statistic
  95% interval (distribution-free: the ranks a Wilson-like bound puts around n*q);
- cost per image: the instance's price per hour (config/pricing.yaml, by the variant's instance type) times
  the instance-seconds each image kept it busy (the call's time / its images): the cost at batch 1, an upper
  bound where the server batches concurrent calls.
Between the variants, on shadowed pairs (the same crops answered by both): per label presence agreement and
count agreement, and all labels agreeing. Every proportion has its counts and a 95% Wilson interval; "n/a"
where the denominator is zero (or, for confirmation of the edge, where the edge saw no such label).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cloud.stores import ResultRecord
from models.metrics import wilson_interval

Z95 = 1.959963984540054


def proportion(k: int, n: int) -> dict[str, Any]:
    """k of n with its Wilson 95% interval; value and interval None where n is 0."""
    if n <= 0:
        return {"k": k, "n": n, "value": None, "ci95": None}
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "value": round(k / n, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def quantile(values: list[float], q: float) -> dict[str, Any]:
    """Nearest-rank q-quantile with the order-statistic 95% interval: ranks n*q -/+ 1.96*sqrt(n*q*(1-q))."""
    n = len(values)
    if n == 0:
        return {"n": 0, "value": None, "ci95": None}
    xs = sorted(values)
    spread = Z95 * math.sqrt(n * q * (1 - q))
    lo = max(1, math.floor(n * q - spread))
    hi = min(n, math.ceil(n * q + spread))
    return {"n": n, "value": round(xs[max(1, math.ceil(n * q)) - 1], 2),
            "ci95": [round(xs[lo - 1], 2), round(xs[hi - 1], 2)]}


def mean_interval(values: list[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"n": 0, "value": None, "ci95": None}
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return {"n": n, "value": mean, "ci95": [max(0.0, mean - half), mean + half]}


def _labels_of(record: ResultRecord) -> Counter[str]:
    return Counter(d.label for d in record.detections)


@dataclass
class _Tally:
    """Running counts, so rows are read one page at a time and never held together."""

    labels: set[str] = field(default_factory=set)
    answered: Counter[str] = field(default_factory=Counter)
    models: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    busy_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    shadow_answers: Counter[str] = field(default_factory=Counter)
    shadow_errors: Counter[str] = field(default_factory=Counter)
    # audit[variant][label] = [presence agree, n, edge positives, confirmed]
    audit: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: [0] * 4)))
    audit_all: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    # pairs[label] = [presence agree, count agree]; pairs_n, pairs_all_agree, by direction
    pairs: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    pairs_n: int = 0
    pairs_all: int = 0
    directions: Counter[str] = field(default_factory=Counter)
    rows: int = 0

    def add(self, r: ResultRecord, labels: tuple[str, ...]) -> None:
        self.rows += 1
        served = _labels_of(r)
        self.labels |= set(served) | set(r.edge_labels)
        self.answered[r.variant] += 1
        self.models[r.variant][r.model] += 1
        self.latency[r.variant].append(r.endpoint_ms)
        # the call's time shared by the images it answered (a batch's call answers several escalations)
        self.busy_s[r.variant].append(r.endpoint_ms / 1000 / max(1, r.call_images or r.crops))
        answers = [(r.variant, set(served))]
        if r.shadow is not None:
            if r.shadow.error:
                self.shadow_errors[r.shadow.variant] += 1
            else:
                self.shadow_answers[r.shadow.variant] += 1
                shadow = Counter(r.shadow.counts)
                self.labels |= set(shadow)
                answers.append((r.shadow.variant, set(shadow)))
                self._pair(served, shadow, labels)
                self.directions[f"{r.variant}>{r.shadow.variant}"] += 1
        if r.reason == "audit":
            edge = set(r.edge_labels)
            for variant, seen in answers:
                every = self.audit_all[variant]
                every[1] += 1
                every[0] += all((lb in seen) == (lb in edge) for lb in labels)
                for lb in labels:
                    cell = self.audit[variant][lb]
                    cell[0] += (lb in seen) == (lb in edge)
                    cell[1] += 1
                    cell[2] += lb in edge
                    cell[3] += lb in edge and lb in seen

    def _pair(self, served: Counter[str], shadow: Counter[str], labels: tuple[str, ...]) -> None:
        self.pairs_n += 1
        agree_all = True
        for lb in labels:
            presence = (served[lb] > 0) == (shadow[lb] > 0)
            cell = self.pairs[lb]
            cell[0] += presence
            cell[1] += served[lb] == shadow[lb]
            agree_all &= presence
        self.pairs_all += agree_all


def build_report(rows: Iterable[ResultRecord], *, prices: dict[str, tuple[str, float]] | None = None,
                 labels: tuple[str, ...] = ("person", "vehicle"), window: tuple[float, float] | None = None,
                 ) -> dict[str, Any]:
    """The comparison as a dict (the --json output). `prices`: variant -> (instance type, USD per instance-hour);
    a variant without one has cost "n/a". `labels` fixes the labels compared (presence of each is judged on
    every pair, so a label no answer names still counts as agreement on its absence)."""
    tally = _Tally()
    for r in rows:
        if r.variant:
            tally.add(r, labels)
    total = sum(tally.answered.values())
    prices = prices or {}
    variants: dict[str, Any] = {}
    for name in sorted(set(tally.answered) | set(tally.shadow_answers) | set(tally.shadow_errors)):
        busy = mean_interval(tally.busy_s.get(name, []))
        cost: dict[str, Any] = {"n": busy["n"], "instance_type": None, "usd_per_hour": None, "value": None,
                                "ci95": None, "per_million": None}
        if name in prices and busy["n"]:
            itype, usd_h = prices[name]
            scale = usd_h / 3600
            cost.update(instance_type=itype, usd_per_hour=usd_h, value=busy["value"] * scale,
                        ci95=[busy["ci95"][0] * scale, busy["ci95"][1] * scale],
                        per_million=round(busy["value"] * scale * 1e6, 2))
        elif name in prices:
            cost.update(instance_type=prices[name][0], usd_per_hour=prices[name][1])
        cells = tally.audit.get(name, {})
        audit = {lb: {"presence_agreement": proportion(c[0], c[1]), "edge_confirmed": proportion(c[3], c[2])}
                 for lb in labels for c in [cells.get(lb, [0, 0, 0, 0])]}
        every = tally.audit_all.get(name, [0, 0])
        variants[name] = {
            "models": dict(tally.models.get(name, {})),  # the model names its answers carried, with counts
            "answered": tally.answered.get(name, 0),
            "share": proportion(tally.answered.get(name, 0), total),
            "shadow_answers": tally.shadow_answers.get(name, 0),
            "shadow_errors": tally.shadow_errors.get(name, 0),
            "latency_ms": {"p50": quantile(tally.latency.get(name, []), 0.5),
                           "p95": quantile(tally.latency.get(name, []), 0.95)},
            "busy_s_per_image": busy,
            "cost_per_image_usd": cost,
            "audit": {"rows": every[1], "all_labels_agree": proportion(every[0], every[1]), "labels": audit},
        }
    pairs = {"n": tally.pairs_n, "by_direction": dict(sorted(tally.directions.items())),
             "all_labels_agree": proportion(tally.pairs_all, tally.pairs_n),
             "labels": {lb: {"presence_agreement": proportion(c[0], tally.pairs_n),
                             "count_agreement": proportion(c[1], tally.pairs_n)}
                        for lb in labels for c in [tally.pairs.get(lb, [0, 0])]}}
    out: dict[str, Any] = {"rows": tally.rows, "answered": total, "labels": list(labels), "variants": variants,
                           "shadow_pairs": pairs}
    if window:
        out["window"] = {"from": _iso(window[0]), "to": _iso(window[1])}
    return out


def _iso(t_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_s))


def _p(cell: dict[str, Any]) -> str:
    if cell["value"] is None:
        return f"n/a ({cell['k']}/{cell['n']})"
    lo, hi = cell["ci95"]
    return f"{cell['value']:.1%} ({cell['k']}/{cell['n']}, 95% CI {lo:.1%}-{hi:.1%})"


def _q(cell: dict[str, Any]) -> str:
    if cell["value"] is None:
        return "n/a (0 calls)"
    return f"{cell['value']:.1f} ms (n={cell['n']}, 95% CI {cell['ci95'][0]:.1f}-{cell['ci95'][1]:.1f})"


def _cost(cell: dict[str, Any]) -> str:
    if cell["value"] is None:
        why = "no answered calls" if not cell["n"] else "instance type unknown: pass --instance VARIANT=ml.TYPE"
        return f"n/a ({why})"
    lo, hi = cell["ci95"]
    return (f"${cell['per_million']:.2f} per million images (n={cell['n']}, 95% CI ${lo * 1e6:.2f}-${hi * 1e6:.2f}; "
            f"{cell['instance_type']} at ${cell['usd_per_hour']:g}/h, busy time at batch 1)")


def render(report: dict[str, Any]) -> str:
    lines = []
    if "window" in report:
        lines.append(f"window {report['window']['from']} .. {report['window']['to']}")
    lines.append(f"escalations answered by a named variant: {report['answered']}")
    for name, v in report["variants"].items():
        models = ", ".join(v["models"]) or "no served answers"
        lines.append(f"variant {name} ({models})")
        lines.append(f"  answered             {v['answered']} = {_p(v['share'])} of all; shadow answers "
                     f"{v['shadow_answers']}, shadow failures {v['shadow_errors']}")
        lines.append(f"  latency p50          {_q(v['latency_ms']['p50'])}")
        lines.append(f"  latency p95          {_q(v['latency_ms']['p95'])}")
        lines.append(f"  cost per image       {_cost(v['cost_per_image_usd'])}")
        audit = v["audit"]
        lines.append(f"  vs audited edge      {audit['rows']} audit rows; all labels agree "
                     f"{_p(audit['all_labels_agree'])}")
        for lb, cell in audit["labels"].items():
            lines.append(f"    {lb:<18} presence agrees {_p(cell['presence_agreement'])}; edge's {lb} confirmed "
                         f"{_p(cell['edge_confirmed'])}")
    pairs = report["shadow_pairs"]
    directions = ", ".join(f"{k} {n}" for k, n in pairs["by_direction"].items()) or "none"
    lines.append(f"shadowed pairs (served>shadow): {pairs['n']} ({directions})")
    lines.append(f"  all labels agree     {_p(pairs['all_labels_agree'])}")
    for lb, cell in pairs["labels"].items():
        lines.append(f"  {lb:<20} presence {_p(cell['presence_agreement'])}; count {_p(cell['count_agreement'])}")
    return "\n".join(lines)
