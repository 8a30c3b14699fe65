"""Rollback limits of a promoted per-camera student, from its champion/challenger decision. Torch-free:
the gateway reads it without the train extra."""

from __future__ import annotations


def rollback_limits(decision: dict, escalation_margin: float = 0.05, audit_margin: float = 0.1,
                    live_escalation: float | None = None) -> dict[str, float]:
    """When a promoted student goes back: when it escalates more than both what the champion needed (its
    live escalation fraction if known, else on the held-back records) and what the student itself needed
    there at its own bands, plus a margin; or when its audits disagree more than the champion's did, plus
    a margin. (A champion that was confidently wrong escalated little: the student is not held to that.)"""
    champion = decision["champion"]["at_bands"]
    challenger = decision.get("challenger", {})
    own = challenger.get("cheapest_for_target") if decision.get("bands") else challenger.get("at_bands")
    base = max(live_escalation if live_escalation is not None else champion["escalation_fraction"],
               (own or {}).get("escalation_fraction", 0.0))
    return {"max_escalation": round(min(1.0, base + escalation_margin), 4),
            "max_audit_disagreement": round(min(1.0, champion.get("edge_disagreement", 0.0) + audit_margin), 4)}
