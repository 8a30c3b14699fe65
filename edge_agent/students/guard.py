"""The live check on a camera's own student. It was promoted on a lower bound of its recall on held-back
records; live, three things send the camera back to onboarding (the agent's student, every frame with
motion to the cloud, a new round of training records):

- recall, by a sequential test over its audits (models/student/sequential.py): on audited frames where the
  teacher sees a watched label, a miss adds `recall_weight` to a CUSUM statistic and a hit takes 1 away;
  at `recall_threshold` the fall is declared. With the audit share the decision sized, a fall of recall
  from 0.97 to 0.85 is noticed within 10 minutes at 1 fps with probability >= 0.95, and a false alarm
  comes at most once a week (tests/edge_agent/test_guard_cusum.py checks both by simulation);
- its live share of frames escalated for uncertainty rises clearly above `max_escalation` (the one-sided 95%
  Wilson lower bound over its last 50 frames, 20 at least);
- its audits disagree with the teacher (any label, either way) clearly more often than `max_audit_disagreement`:
  the one-sided 95% Wilson lower bound of the share over its last 50 audits (10 at least) is above it. A
  share over a handful of audits is not evidence: 2 of 5 would have rolled back a student whose person
  recall was 23/23 (the vtest demonstration in the README).

Every camera is watched, with or without its own student, so that at a swap the champion's live
escalation fraction is known. Only escalations for uncertainty count there (audits and onboarding are
policy, not the student's doubt), including those the budget refused or the cloud could not answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from models.student.evidence import wilson_lower


@dataclass(frozen=True)
class Limits:
    max_escalation: float | None = None
    max_audit_disagreement: float | None = None
    audit_fraction: float | None = None  # the audit share the recall test was sized for
    recall_threshold: int | None = None  # the CUSUM's alarm level (None: no recall test)
    recall_weight: int | None = None  # what a miss adds (a hit takes 1 away)
    recall_labels: tuple[str, ...] = ("person",)

    def __post_init__(self) -> None:  # read back from JSON as a list
        object.__setattr__(self, "recall_labels", tuple(self.recall_labels))


@dataclass
class RecallCusum:
    """One label's CUSUM over audit outcomes on frames where the teacher saw it."""

    weight: int
    threshold: int
    statistic: int = 0
    audits: int = 0
    misses: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=200))

    def update(self, missed: bool) -> bool:
        """One positive audit; True when the fall is declared."""
        self.statistic = max(0, self.statistic + (self.weight if missed else -1))
        self.audits += 1
        self.misses += missed
        self.recent.append(missed)
        return self.statistic >= self.threshold


class StudentGuard:
    def __init__(self, window: int = 50, min_frames: int = 20, audit_window: int = 50, min_audits: int = 10):
        self.uncertain: deque[bool] = deque(maxlen=window)
        self.audits: deque[bool] = deque(maxlen=audit_window)
        self.min_frames, self.min_audits = min_frames, min_audits
        self.limits = Limits()
        self.recall: dict[str, RecallCusum] = {}
        self.fell: str | None = None  # the label whose recall fell, once declared

    def frame(self, uncertain: bool) -> None:
        """One frame the student looked at; `uncertain`: the cascade wanted the cloud for it."""
        self.uncertain.append(uncertain)

    def audit(self, disagreed: bool) -> None:
        """An audited frame: did the edge's answer differ from the teacher's?"""
        self.audits.append(disagreed)

    def audited(self, edge_labels: set[str], teacher_labels: set[str], labels: set[str] | None = None) -> None:
        """An audited frame with what the edge said and what the teacher said (labels present); `labels`: those
        the cascade reports (others are not compared)."""
        if labels is not None:
            teacher_labels = teacher_labels & labels
        self.audit(edge_labels != teacher_labels)
        for label, test in self.recall.items():
            if label in teacher_labels and test.update(label not in edge_labels) and self.fell is None:
                self.fell = label

    def escalation_fraction(self) -> float | None:
        return sum(self.uncertain) / len(self.uncertain) if len(self.uncertain) >= self.min_frames else None

    def audit_disagreement(self) -> float | None:
        return sum(self.audits) / len(self.audits) if len(self.audits) >= self.min_audits else None

    def watch(self, limits: Limits) -> None:
        """A new student starts: its own record, checked against `limits`."""
        self.limits = limits
        self.uncertain.clear()
        self.audits.clear()
        self.fell = None
        self.recall = {label: RecallCusum(limits.recall_weight, limits.recall_threshold)
                       for label in limits.recall_labels} if limits.recall_threshold and limits.recall_weight else {}

    def breach(self) -> str | None:
        """Why the watched student must go, or None."""
        if self.fell is not None:
            t = self.recall[self.fell]
            return (f"its {self.fell} recall fell: {sum(t.recent)} misses in its last {len(t.recent)} audited frames "
                    f"with a {self.fell} (CUSUM {t.statistic} >= {t.threshold})")
        fraction, limit = self.escalation_fraction(), self.limits.max_escalation
        if fraction is not None and limit is not None and \
                (low := wilson_lower(sum(self.uncertain), len(self.uncertain))) > limit:
            return (f"it escalated {fraction:.0%} of the last {len(self.uncertain)} frames for uncertainty "
                    f"(at least {low:.0%} at 95% confidence; limit {limit:.0%})")
        disagreement, limit = self.audit_disagreement(), self.limits.max_audit_disagreement
        if disagreement is not None and limit is not None and \
                (low := wilson_lower(sum(self.audits), len(self.audits))) > limit:
            return (f"{disagreement:.0%} of its last {len(self.audits)} audited decisions disagreed with the teacher "
                    f"(at least {low:.0%} at 95% confidence; limit {limit:.0%})")
        return None
