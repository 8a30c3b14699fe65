"""What the router would keep of the bench's escalations (item 4 of issue 14, measured for the cost model):
a transport that wraps the bench's own and counts, per answered escalation, whether it is a training record
(contracts.training.informative, the router's rule) and whether it makes a result row under
FRAMESIEVE_STORE_WRITES=change (the labels differ from the camera's last row; alerts, rare under their
cooldown, are not counted here)."""

from __future__ import annotations

from contracts.training import TrainingCrop, TrainingRecord, encode_object, informative
from contracts.wire import EscalationRequest, Verdict
from edge_agent.escalation.base import Transport
from models.metrics import wilson_interval


class RecordTally(Transport):
    name = "tally"

    def __init__(self, inner: Transport):
        self.inner = inner
        self.answered = 0
        self.kept = 0
        self.rows = 0
        self.tiers: dict[str, int] = {}
        self.reasons: dict[str, list[int]] = {}  # the edge's reason: [answered, kept]
        self.kept_bytes = 0  # the training objects' bytes, as the router stores them (gzip-encoded)
        self.kept_json_bytes = 0  # the same records as plain JSON (what was stored before the gzip encoding)
        self.tier_bytes: dict[str, int] = {}
        self._last: dict[str, set[str]] = {}

    def escalate(self, request: EscalationRequest) -> Verdict:
        verdict = self.inner.escalate(request)
        if not verdict.error:
            self.answered += 1
            tier = informative(request.reason, request.student, verdict.detections())
            counts = self.reasons.setdefault(request.reason, [0, 0])
            counts[0] += 1
            if tier:
                self.kept += 1
                counts[1] += 1
                self.tiers[tier] = self.tiers.get(tier, 0) + 1
                plain = record_bytes(request, verdict)
                size = len(encode_object(plain))
                self.kept_json_bytes += len(plain)
                self.kept_bytes += size
                self.tier_bytes[tier] = self.tier_bytes.get(tier, 0) + size
            labels = {d.label for d in verdict.detections()}
            if self._last.get(request.camera) != labels:
                self.rows += 1
                self._last[request.camera] = labels
        return verdict

    def figures(self) -> dict:
        n = self.answered
        return {"answered": n, "training_kept": self.kept, "training_tiers": dict(sorted(self.tiers.items())),
                "training_by_reason": {r: {"answered": a, "kept": k} for r, (a, k) in sorted(self.reasons.items())},
                "training_share_ci95": [round(x, 4) for x in wilson_interval(self.kept, n)] if n else None,
                "training_bytes": self.kept_bytes, "training_json_bytes": self.kept_json_bytes,
                "training_tier_bytes": dict(sorted(self.tier_bytes.items())),
                "rows_written_change": self.rows}

    def stats(self) -> dict[str, int]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def record_bytes(request: EscalationRequest, verdict: Verdict) -> bytes:
    """The training object the router would write for this answer (contracts.training, its serialiser and its
    gzip encoding): the message's own crops (JPEG, base64) with the teacher's boxes and the student's; a gateway
    batch's object adds only its small envelope."""
    teacher = {c.crop_id: c.detections for c in verdict.crops}
    crops = tuple(TrainingCrop(c, teacher.get(c.crop_id, ())) for c in request.crops)
    return TrainingRecord(request.message_id, request.camera, request.created_s, request.pts_s, request.frame_index,
                          request.reason, verdict.model, crops, request.site, "",
                          request.student).to_bytes()


def stored_bytes(request: EscalationRequest, verdict: Verdict) -> bytes:
    return encode_object(record_bytes(request, verdict))


def _sum(figures: list[dict], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in figures:
        for k, v in f.get(key, {}).items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def pooled(figures: list[dict]) -> dict:
    """training_share and rows_per_escalation (the cost model's keys) over every clip's escalations, pooled by
    counts, with the share's 95% Wilson interval, the kept records per tier and per edge reason, and the
    measured bytes of a kept record (for the storage line: what the router writes, not the message)."""
    n = sum(f["answered"] for f in figures)
    kept = sum(f["training_kept"] for f in figures)
    rows = sum(f["rows_written_change"] for f in figures)
    nbytes = sum(f.get("training_bytes", 0) for f in figures)
    json_bytes = sum(f.get("training_json_bytes", 0) for f in figures)
    reasons: dict[str, dict[str, int]] = {}
    for f in figures:
        for r, c in f.get("training_by_reason", {}).items():
            into = reasons.setdefault(r, {"answered": 0, "kept": 0})
            into["answered"] += c["answered"]
            into["kept"] += c["kept"]
    tier_bytes = _sum(figures, "training_tier_bytes")
    tiers = _sum(figures, "training_tiers")
    return {"training_share": round(kept / n, 4) if n else None,
            "training_share_ci95": [round(x, 4) for x in wilson_interval(kept, n)] if n else None,
            "training_kept": kept, "training_tiers": tiers, "training_by_reason": dict(sorted(reasons.items())),
            "training_bytes_per_record": round(nbytes / kept, 1) if kept and nbytes else None,
            "training_json_bytes_per_record": round(json_bytes / kept, 1) if kept and json_bytes else None,
            "training_bytes_by_tier": {t: round(b / tiers[t], 1) for t, b in tier_bytes.items() if tiers.get(t)},
            "rows_per_escalation": round(rows / n, 4) if n else None,
            "rows_policy": "change", "records_answered": n}
