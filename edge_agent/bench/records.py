"""What the router would keep of the bench's escalations (item 4 of issue 14, measured for the cost model):
a transport that wraps the bench's own and counts, per answered escalation, whether it is a training record
(contracts.training.informative, the router's rule) and whether it makes a result row under
FRAMESIEVE_STORE_WRITES=change (the labels differ from the camera's last row; alerts, rare under their
cooldown, are not counted here)."""

from __future__ import annotations

from contracts.training import informative
from contracts.wire import EscalationRequest, Verdict
from edge_agent.escalation.base import Transport


class RecordTally(Transport):
    name = "tally"

    def __init__(self, inner: Transport):
        self.inner = inner
        self.answered = 0
        self.kept = 0
        self.rows = 0
        self.tiers: dict[str, int] = {}
        self._last: dict[str, set[str]] = {}

    def escalate(self, request: EscalationRequest) -> Verdict:
        verdict = self.inner.escalate(request)
        if not verdict.error:
            self.answered += 1
            tier = informative(request.reason, request.student, verdict.detections())
            if tier:
                self.kept += 1
                self.tiers[tier] = self.tiers.get(tier, 0) + 1
            labels = {d.label for d in verdict.detections()}
            if self._last.get(request.camera) != labels:
                self.rows += 1
                self._last[request.camera] = labels
        return verdict

    def figures(self) -> dict:
        n = self.answered
        return {"answered": n, "training_kept": self.kept, "training_tiers": dict(sorted(self.tiers.items())),
                "rows_written_change": self.rows}

    def stats(self) -> dict[str, int]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def pooled(figures: list[dict]) -> dict:
    """training_share and rows_per_escalation (the cost model's keys) over every clip's escalations."""
    n = sum(f["answered"] for f in figures)
    kept = sum(f["training_kept"] for f in figures)
    rows = sum(f["rows_written_change"] for f in figures)
    return {"training_share": round(kept / n, 4) if n else None,
            "rows_per_escalation": round(rows / n, 4) if n else None,
            "rows_policy": "change", "records_answered": n}
