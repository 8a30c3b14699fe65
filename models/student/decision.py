"""The champion/challenger decision, one typed model: what `models specialize` writes to decision.json and
what the gateway loop, the cloud loop, `models pack`, `models status` and the bench read. Torch-free.

verdict: "promote" (the challenger goes out, at `bands`, watched by `guard`), "keep" (the champion stays),
"collect" (too little evidence: keep onboarding and collecting; nothing was trained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.jobs import Bands, ModelJob
from models.exceptions import ModelError
from models.student.evidence import Evidence


class LabelOutcome(BaseModel):
    present: int  # held-back frames where the teacher saw the label
    said: int  # frames where the cascade (escalations answered by the teacher) reported it
    hits: int
    recall: float | None  # None: the label was never present, there is nothing to recall ("n/a")
    recall_lower: float | None  # the one-sided lower confidence bound of the recall
    precision: float | None


class Outcome(BaseModel):
    """A frame-level presence cascade at one pair of bands over the held-back frames."""

    accept: float
    reject: float
    escalation_fraction: float
    edge_disagreement: float  # among frames decided at the edge, the share some label's answer was wrong
    labels: dict[str, LabelOutcome]


class ModelReport(BaseModel):
    manifest: str
    at_bands: Outcome  # at the bands compared (the camera's)
    cheapest_for_target: Outcome | None  # the cheapest bands whose bound reaches the target, if any


class GuardPlan(BaseModel):
    """The audit share the promoted student runs with, sized by models/student/sequential.py."""

    positive_share: float  # share of edge-decided frames with the watched label present (held-back records)
    audit_fraction: float | None  # None: even auditing every frame would not notice the fall in time
    threshold: int
    weight: int
    labels: list[str]


class Decision(BaseModel):
    model_config = ConfigDict(extra="ignore")

    verdict: Literal["promote", "keep", "collect"]
    why: str
    camera: str
    records: int
    from_t_s: float | None = None
    to_t_s: float | None = None
    records_dir: str | None = None
    frames: int = 0  # held-back frames compared
    target_recall: float
    confidence: float
    compared_at: Bands  # the camera's bands, both models judged there too
    bands: Bands | None = None  # the promoted student's own bands
    evidence: Evidence
    champion: ModelReport | None = None
    challenger: ModelReport | None = None
    guard: GuardPlan | None = None

    @property
    def promote(self) -> bool:
        return self.verdict == "promote"

    def save(self, path: Path) -> None:
        payload = self.model_dump(mode="json")
        payload["promote"] = self.promote  # for readers of the file, not read back
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Decision:
        try:
            return cls.model_validate_json(Path(path).read_bytes())
        except (OSError, ValidationError) as exc:
            raise ModelError(f"decision {path} cannot be read: {exc}") from exc

    def camera_job(self, version: str, url: str, sha256: str, escalation_margin: float | None = None,
                   audit_margin: float | None = None) -> ModelJob:
        """The model-update job document that rolls this promoted challenger out to its camera, with its
        bands, its rollback limits and its guard, as the gateway's own loop would install it."""
        from models.student.defaults import DEFAULTS

        limits = self.rollback_limits(DEFAULTS.escalation_margin if escalation_margin is None else escalation_margin,
                                      DEFAULTS.audit_margin if audit_margin is None else audit_margin)
        guard = self.guard
        return ModelJob.model_validate({
            "operation": "model-update", "version": version, "url": url, "sha256": sha256, "camera": self.camera,
            "bands": self.bands.model_dump() if self.bands else None, **limits,
            "audit_fraction": guard.audit_fraction if guard else None,
            "recall_threshold": guard.threshold if guard else None, "recall_weight": guard.weight if guard else None,
            "recall_labels": guard.labels if guard else None})

    def rollback_limits(self, escalation_margin: float, audit_margin: float,
                        live_escalation: float | None = None) -> dict[str, float]:
        """When a promoted student goes back: when it escalates more than both what the champion needed (its
        live escalation fraction if known, else on the held-back records) and what the student itself needed
        there at its own bands, plus a margin; or when its audits disagree more than the champion's did, plus
        a margin. (A champion that was confidently wrong escalated little: the student is not held to that.)"""
        if self.champion is None or self.challenger is None:
            raise ModelError(f"the decision for camera {self.camera} compared no models ({self.verdict})")
        champion = self.champion.at_bands
        own = self.challenger.cheapest_for_target if self.bands else self.challenger.at_bands
        base = max(live_escalation if live_escalation is not None else champion.escalation_fraction,
                   own.escalation_fraction if own else 0.0)
        return {"max_escalation": round(min(1.0, base + escalation_margin), 4),
                "max_audit_disagreement": round(min(1.0, champion.edge_disagreement + audit_margin), 4)}
