"""Typed champion/challenger decisions for tests that need one without training (models/student/decision.py)."""

from __future__ import annotations

from models.student.decision import Decision, GuardPlan, LabelOutcome, ModelReport, Outcome
from models.student.evidence import Evidence, LabelEvidence


def outcome(escalation: float, disagreement: float = 0.0, accept: float = 0.5, reject: float = 0.2,
            recall: float | None = 1.0) -> Outcome:
    label = LabelOutcome(present=100, said=100, hits=100, recall=recall, recall_lower=recall, precision=1.0)
    return Outcome(accept=accept, reject=reject, escalation_fraction=escalation, edge_disagreement=disagreement,
                   labels={"person": label, "vehicle": label})


def decision(verdict: str = "promote", camera: str = "plaza", champion_escalation: float = 0.12,
             champion_disagreement: float = 0.0, own_escalation: float | None = None,
             bands: dict | None = None, guard: GuardPlan | None = None) -> Decision:
    own = outcome(own_escalation, accept=bands["accept"], reject=bands["reject"]) if bands and own_escalation \
        is not None else None
    return Decision(
        verdict=verdict, why=f"constructed for a test ({verdict})", camera=camera, records=200, frames=40,
        target_recall=0.97, confidence=0.95, compared_at={"accept": 0.5, "reject": 0.2}, bands=bands,
        evidence=Evidence(records=200, held_back=40, span_s=900.0, required=["person"], missing=[],
                          labels={"person": LabelEvidence(present=35, absent=5)}),
        champion=ModelReport(manifest="champion", at_bands=outcome(champion_escalation, champion_disagreement),
                             cheapest_for_target=None),
        challenger=ModelReport(manifest="challenger", at_bands=outcome(own_escalation or 0.0), cheapest_for_target=own),
        guard=guard)
