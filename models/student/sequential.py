"""The guard's sequential test, sized: a CUSUM over audit outcomes that notices a fall of presence recall
within a given time, with a given probability, at a given false-alarm rate. Torch-free (numpy).

What is watched: audited frames (decided at the edge, then sent to the teacher anyway) on which the teacher
sees the label. Each is a hit (the edge said the label too) or a miss. In control the miss rate is
p0 = 1 - target (0.03); after a fall it is p1 = 1 - drop_to (0.15). The CUSUM adds the log-likelihood ratio
of each outcome, scaled to integers (a miss adds `weight` = round(ln(p1/p0) / ln((1-p0)/(1-p1))) = 12, a hit
takes 1 away, never below 0), and alarms at `threshold`. Integer steps make the statistic a finite Markov
chain, so its false-alarm rate and its detection probability are computed exactly, not simulated:

- false alarms: the average run length in control, in audits, is the expected absorption time of the chain
  at p0; divided by the positive audits per frame `u` it is in frames, and it must be at least a week of
  frames divided by `false_alarms_per_week`;
- detection: the probability that the chain, starting at 0 after the fall (the worst case: in control it sits
  near 0), reaches `threshold` within `detect_s * fps` frames, when each frame is a positive audit with
  probability `u` and each positive audit a miss with probability p1.

`design()` finds the smallest `u` (and, for it, the smallest threshold meeting the false-alarm limit) whose
detection probability reaches `power`. At 0.97 -> 0.85, 10 min at 1 fps, 0.95, one a week: u = 0.226 positive
audits per frame, threshold 65 (the test suite checks both by simulation). The audit share of a camera is u
divided by the share of its frames on which the label is present and decided at the edge: a camera showing
a person in half its frames audits 45% of them. That is what noticing a fall within ten minutes costs.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.student.defaults import DEFAULTS

WEEK_S = 7 * 86_400


class GuardDesign(BaseModel):
    model_config = ConfigDict(frozen=True)

    p0: float  # miss rate in control (1 - target recall)
    p1: float  # miss rate after the fall the guard must notice
    weight: int  # what a miss adds to the statistic (a hit takes 1 away)
    threshold: int  # the statistic's alarm level
    positives_per_frame: float  # u: positive audits per sampled frame the design needs
    fps: float
    detect_s: float
    power: float
    false_alarms_per_week: float
    arl0_frames: float  # average frames between false alarms, in control
    detect_probability: float  # exact, at u and the threshold

    def audit_fraction(self, positive_share: float) -> float | None:
        """The audit share of edge-decided frames that gives `positives_per_frame`, when the label is present
        in `positive_share` of them; None when even auditing every frame is not enough."""
        if positive_share <= 0:
            return None
        share = self.positives_per_frame / positive_share
        return round(share, 4) if share <= 1 else None


def miss_weight(p0: float, p1: float) -> int:
    return max(1, round(math.log(p1 / p0) / math.log((1 - p0) / (1 - p1))))


def cusum_step(statistic, miss, weight: int):
    """One audit outcome: works on ints and on numpy arrays alike (the simulations run many at once)."""
    return np.maximum(0, statistic + np.where(miss, weight, -1))


def _arl(threshold: int, p: float, weight: int) -> float:
    """Expected audits until the statistic reaches `threshold` from 0, misses with probability p."""
    q = np.zeros((threshold, threshold))
    for s in range(threshold):
        if s + weight < threshold:
            q[s, s + weight] += p
        q[s, max(0, s - 1)] += 1 - p
    return float(np.linalg.solve(np.eye(threshold) - q, np.ones(threshold))[0])


def detect_probability(threshold: int, weight: int, p: float, u: float, frames: int) -> float:
    """P(alarm within `frames` frames from 0) when a frame is a positive audit with probability u."""
    step = np.zeros((threshold + 1, threshold + 1))
    step[threshold, threshold] = 1.0  # the alarm absorbs
    for s in range(threshold):
        step[s, s] += 1 - u
        step[s, min(s + weight, threshold)] += u * p
        step[s, max(s - 1, 0)] += u * (1 - p)
    return float(np.linalg.matrix_power(step, frames)[0, threshold])


@lru_cache(maxsize=32)
def design(target_recall: float = DEFAULTS.target_recall, drop_to: float = DEFAULTS.guard_recall_drop_to,
           detect_s: float = DEFAULTS.guard_detect_s, power: float = DEFAULTS.guard_power,
           false_alarms_per_week: float = DEFAULTS.guard_false_alarms_per_week, fps: float = 1.0) -> GuardDesign:
    p0, p1 = 1 - target_recall, 1 - drop_to
    if not 0 < p0 < p1 < 1:
        raise ValueError(f"the guard needs a fall: recall {target_recall} -> {drop_to}")
    weight = miss_weight(p0, p1)
    frames = max(1, int(detect_s * fps))
    week_frames = WEEK_S * fps / false_alarms_per_week
    arls: dict[int, float] = {}

    def arl(h: int) -> float:
        if h not in arls:
            arls[h] = _arl(h, p0, weight)
        return arls[h]

    def threshold_for(u: float) -> int | None:
        return next((h for h in range(1, 400) if arl(h) / u >= week_frames), None)

    lo, hi, best = 1e-4, 1.0, None
    for _ in range(24):
        u = (lo + hi) / 2
        h = threshold_for(u)
        if h is not None and detect_probability(h, weight, p1, u, frames) >= power:
            hi, best = u, (u, h)
        else:
            lo = u
    if best is None:
        u, h = 1.0, threshold_for(1.0)
        if h is None or detect_probability(h, weight, p1, 1.0, frames) < power:
            raise ValueError(f"no audit share can notice recall {target_recall} -> {drop_to} within {detect_s} s "
                             f"at {fps} fps with probability {power}")
        best = (u, h)
    u, h = best
    u = math.ceil(u * 1000) / 1000  # a round figure, on the safe side
    return GuardDesign(p0=p0, p1=p1, weight=weight, threshold=h, positives_per_frame=u, fps=fps, detect_s=detect_s,
                       power=power, false_alarms_per_week=false_alarms_per_week, arl0_frames=round(arl(h) / u, 1),
                       detect_probability=round(detect_probability(h, weight, p1, u, frames), 4))
