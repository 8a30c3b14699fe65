"""Rollback limits of a promoted per-camera student, from its champion/challenger decision. Torch-free:
the gateway reads it without the train extra."""

from __future__ import annotations


def rollback_limits(decision: dict, escalation_margin: float = 0.05, audit_margin: float = 0.1,
                    live_escalation: float | None = None) -> dict[str, float]:
    """When a promoted student goes back: above what the champion needed (its live escalation fraction if
    known, else on the held-back records) plus a margin, or above its audit disagreement plus a margin."""
    champion = decision["champion"]["at_bands"]
    base = live_escalation if live_escalation is not None else champion["escalation_fraction"]
    return {"max_escalation": round(min(1.0, base + escalation_margin), 4),
            "max_audit_disagreement": round(min(1.0, champion.get("edge_disagreement", 0.0) + audit_margin), 4)}
