"""The live check on a camera's own student: it was promoted because it needed fewer escalations and was
no worse in recall on held-back records; if, live, it escalates more than the champion did or its
audits disagree with the teacher more than the champion's did, the camera goes back to the agent's
student.

Every camera is watched, with or without its own student, so that at a swap the champion's live
escalation fraction is known and becomes the limit. Only escalations for uncertainty count (audits are
policy, not the student's doubt), including those the budget refused or the cloud could not answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_escalation: float | None = None
    max_audit_disagreement: float | None = None


class StudentGuard:
    def __init__(self, window: int = 50, min_frames: int = 20, audit_window: int = 20, min_audits: int = 5):
        self.uncertain: deque[bool] = deque(maxlen=window)
        self.audits: deque[bool] = deque(maxlen=audit_window)
        self.min_frames, self.min_audits = min_frames, min_audits
        self.limits = Limits()

    def frame(self, uncertain: bool) -> None:
        """One frame the student looked at; `uncertain`: the cascade wanted the cloud for it."""
        self.uncertain.append(uncertain)

    def audit(self, disagreed: bool) -> None:
        """An audited frame: did the edge's answer differ from the teacher's?"""
        self.audits.append(disagreed)

    def escalation_fraction(self) -> float | None:
        return sum(self.uncertain) / len(self.uncertain) if len(self.uncertain) >= self.min_frames else None

    def audit_disagreement(self) -> float | None:
        return sum(self.audits) / len(self.audits) if len(self.audits) >= self.min_audits else None

    def watch(self, limits: Limits) -> None:
        """A new student starts: its own record, checked against `limits`."""
        self.limits = limits
        self.uncertain.clear()
        self.audits.clear()

    def breach(self) -> str | None:
        """Why the watched student must go, or None."""
        fraction, limit = self.escalation_fraction(), self.limits.max_escalation
        if fraction is not None and limit is not None and fraction > limit:
            return (f"it escalated {fraction:.0%} of the last {len(self.uncertain)} frames for uncertainty "
                    f"(limit {limit:.0%})")
        disagreement, limit = self.audit_disagreement(), self.limits.max_audit_disagreement
        if disagreement is not None and limit is not None and disagreement > limit:
            return (f"{disagreement:.0%} of its last {len(self.audits)} audited decisions disagreed with the teacher "
                    f"(limit {limit:.0%})")
        return None
