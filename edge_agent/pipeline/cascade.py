"""The cascade: decide at the edge what the student is sure of, escalate what it is not.

Per label and detection: score >= accept -> the edge keeps it; score <= reject -> dropped; in between
-> uncertain. A detection on a track the cloud already labelled is never uncertain: the cloud's label
(or its "nothing here") is reused. At the presence level a frame is escalated only when a label has
uncertain detections and no confident one (is anybody there?); at the boxes level any uncertain
detection escalates the frame. Audit sampling escalates a small random share of confident frames,
and a per-camera hourly budget caps escalations; what it refuses is decided at the edge and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from contracts.detections import Detections
from contracts.jobs import Bands
from edge_agent.pipeline.onboarding import Onboarding
from edge_agent.pipeline.tracker import NOTHING, IouTracker


@dataclass
class Decision:
    escalate: bool
    reason: Literal["uncertain", "audit", "onboarding"] | None
    # What the edge reports by itself: confident detections, cloud-confirmed tracks, and uncertain
    # detections at or above the student's calibrated threshold (its best guess without the cloud).
    edge: Detections
    budget_refused: bool = False
    uncertain: bool = False  # the student's doubt, whatever was done about it (onboarding sends every frame)
    # Where the student is unsure (xyxy, source pixels): a lean escalation sends crops around these only.
    doubt: tuple[tuple[int, int, int, int], ...] = ()


class EscalationBudget:
    """A token bucket per camera: `per_hour` escalations an hour, refilled continuously on the
    frames' own clock (media time for files, so a replay at full speed is budgeted like real time)."""

    def __init__(self, per_hour: float):
        self.per_hour = per_hour
        self.tokens = per_hour
        self.last_s: float | None = None

    def resize(self, per_hour: float) -> None:
        """A new hourly budget; what is left this hour never grows by it (no burst of escalations)."""
        self.per_hour = per_hour
        self.tokens = min(self.tokens, float(per_hour))

    def take(self, now_s: float) -> bool:
        if self.per_hour <= 0:
            return False
        if self.last_s is not None:
            self.tokens = min(self.per_hour, self.tokens + (now_s - self.last_s) * self.per_hour / 3600)
        self.last_s = now_s
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Cascade:
    def __init__(self, bands: dict[str, Bands], student_thresholds: dict[str, float],
                 level: Literal["presence", "boxes"] = "presence", audit_fraction: float = 0.0,
                 budget_per_hour: float = 3600.0, seed: int = 0, nothing_ttl_s: float = 10.0,
                 nothing_rise: float = 0.15):
        self.bands = bands
        self.student_thresholds = student_thresholds
        self.level = level
        self.audit_fraction = audit_fraction
        self.budget = EscalationBudget(budget_per_hour)
        self.rng = np.random.default_rng(seed)
        self.nothing_ttl_s = nothing_ttl_s
        self.nothing_rise = nothing_rise
        # A new camera's warm-up (specialization): audit at least this share while its data is collected.
        self.warmup_audit_fraction = 0.0
        # A camera without a proven student: every frame the student looks at goes to the cloud.
        self.onboarding = Onboarding()

    def decide(self, dets: Detections, tracker: IouTracker, pts_s: float) -> Decision:
        """`dets` carry track ids from `tracker`."""
        keep = np.zeros(len(dets), bool)
        labels = dets.labels.copy()
        scores = dets.scores.copy()
        uncertain = np.zeros(len(dets), bool)
        for i in range(len(dets)):
            track = tracker.get(dets.track_ids[i]) if len(dets.track_ids) else None
            label, score = str(dets.labels[i]), dets.scores[i]
            if track is not None and track.answer_holds(float(dets.scores[i]), pts_s, self.nothing_ttl_s,
                                                        self.nothing_rise):
                keep[i] = track.cloud_label != NOTHING
                if keep[i]:
                    labels[i] = track.cloud_label
                    scores[i] = max(scores[i], track.cloud_score)
                continue
            band = self.bands.get(label)
            if band is None:
                continue
            # Compare in float32, the scores' own precision, so a threshold of 0.2 means the score 0.2.
            if score >= np.float32(band.accept):
                keep[i] = True
            elif score > np.float32(band.reject):
                uncertain[i] = True
                keep[i] = score >= self.student_thresholds.get(label, band.accept)
        edge = Detections(dets.xyxy[keep], scores[keep], labels[keep],
                          dets.track_ids[keep] if len(dets.track_ids) else dets.track_ids)
        if self.level == "boxes":
            needs_cloud = bool(uncertain.any())
        else:
            confident = {str(lbl) for lbl, k, u in zip(labels, keep, uncertain, strict=True) if k and not u}
            needs_cloud = any(uncertain[i] and str(dets.labels[i]) not in confident for i in range(len(dets)))
        reason: Literal["uncertain", "audit", "onboarding"] | None = None
        if needs_cloud:
            reason = "uncertain"
        elif (audit := max(self.audit_fraction, self.warmup_audit_fraction)) and self.rng.random() < audit:
            reason = "audit"
        doubt = tuple(tuple(int(round(float(v))) for v in box) for box in dets.xyxy[uncertain]) if needs_cloud else ()
        if self.onboarding.active:  # not budgeted: onboarding is bounded by the camera's motion, and priced
            return Decision(True, "onboarding", edge, uncertain=needs_cloud)
        if reason is None:
            return Decision(False, None, edge)
        if not self.budget.take(pts_s):
            return Decision(False, reason, edge, budget_refused=True)  # the reason says what was refused
        return Decision(True, reason, edge, doubt=doubt)  # type: ignore[arg-type]
