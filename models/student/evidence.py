"""Promotion on evidence: a challenger leaves onboarding only when the camera's held-back records show each
promotion label present and absent often enough, over enough of the camera's time, and when a one-sided
lower confidence bound of its presence recall at its bands reaches the target. The bands themselves are
chosen by that bound, never by the point estimate. Torch-free: the agent counts evidence before it spends
minutes training.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from contracts.training import TrainingRecord
from models.metrics import wilson_interval
from models.student.defaults import DEFAULTS
from models.student.records import camera_span_s, present_labels, split_points


def wilson_lower(hits: int, n: int, confidence: float = DEFAULTS.confidence) -> float:
    """One-sided Wilson score lower bound of a proportion: the two-sided interval's lower end at 2c - 1."""
    if n <= 0:
        return 0.0
    return wilson_interval(hits, n, 2 * confidence - 1)[0]


def wilson_upper(hits: int, n: int, confidence: float = DEFAULTS.confidence) -> float:
    """One-sided Wilson score upper bound of a proportion."""
    if n <= 0:
        return 1.0
    return wilson_interval(hits, n, 2 * confidence - 1)[1]


def _tail_at_least(k: int, n: int, p: float) -> float:
    """P(X >= k), X ~ Binomial(n, p), summed in log space."""
    if p <= 0:
        return 0.0 if k > 0 else 1.0
    if p >= 1:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def clopper_pearson_lower(hits: int, n: int, confidence: float = DEFAULTS.confidence) -> float:
    """One-sided exact (Clopper-Pearson) lower bound: the p at which P(X >= hits) = 1 - confidence."""
    if n <= 0 or hits <= 0:
        return 0.0
    if hits == n:
        return (1 - confidence) ** (1 / n)
    lo, hi = 0.0, hits / n
    for _ in range(60):
        mid = (lo + hi) / 2
        if _tail_at_least(hits, n, mid) < 1 - confidence:
            lo = mid
        else:
            hi = mid
    return lo


def lower_bound(hits: int, n: int, confidence: float = DEFAULTS.confidence, method: str = DEFAULTS.bound) -> float:
    return clopper_pearson_lower(hits, n, confidence) if method == "clopper-pearson" else wilson_lower(hits, n,
                                                                                                       confidence)


class LabelEvidence(BaseModel):
    present: int
    absent: int


class Evidence(BaseModel):
    """What the held-back records (the newest, never trained on) can show."""

    records: int
    held_back: int
    span_s: float  # camera time the held-back records cover
    labels: dict[str, LabelEvidence]
    required: list[str]
    missing: list[str]  # why it is not enough yet; empty when it is

    @property
    def enough(self) -> bool:
        return not self.missing


def count_evidence(records: list[TrainingRecord], labels: tuple[str, ...] = ("person", "vehicle"),
                   required: tuple[str, ...] = DEFAULTS.promotion_labels, min_present: int = DEFAULTS.min_present,
                   min_absent: int = DEFAULTS.min_absent, min_span_s: float = DEFAULTS.min_span_s,
                   min_records: int = DEFAULTS.min_records) -> Evidence:
    """Count, per label, the held-back records where the teacher saw it and where it did not."""
    held = records[split_points(len(records))[1]:] if len(records) >= 4 else []
    seen = [present_labels(r) for r in held]
    counts = {label: LabelEvidence(present=sum(label in s for s in seen), absent=sum(label not in s for s in seen))
              for label in labels}
    span = camera_span_s(held)
    missing = []
    if len(records) < min_records:
        missing.append(f"{len(records)} records, at least {min_records} needed")
    for label in required:
        c = counts.get(label, LabelEvidence(present=0, absent=len(held)))
        if c.present < min_present:
            missing.append(f"{label} present in {c.present} held-back frames, at least {min_present} needed")
        if c.absent < min_absent:
            missing.append(f"{label} absent in {c.absent} held-back frames, at least {min_absent} needed")
    if span < min_span_s:
        missing.append(f"the held-back frames cover {span:.0f} s of the camera's time, at least {min_span_s:.0f} s "
                       "needed")
    return Evidence(records=len(records), held_back=len(held), span_s=round(span, 1), labels=counts,
                    required=list(required), missing=missing)


def positives_needed(target: float, confidence: float = DEFAULTS.confidence, method: str = DEFAULTS.bound) -> int:
    """The fewest positive frames whose bound can reach `target` at all (every one of them a hit)."""
    n = 1
    while lower_bound(n, n, confidence, method) < target:
        n += 1
    return n
