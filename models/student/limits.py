"""Rollback limits of a promoted per-camera student, from its champion/challenger decision. Torch-free:
the gateway reads it without the train extra."""

from __future__ import annotations

from models.student.decision import Decision
from models.student.defaults import DEFAULTS


def rollback_limits(decision: Decision, escalation_margin: float = DEFAULTS.escalation_margin,
                    audit_margin: float = DEFAULTS.audit_margin,
                    live_escalation: float | None = None) -> dict[str, float]:
    """See Decision.rollback_limits."""
    return decision.rollback_limits(escalation_margin, audit_margin, live_escalation)
