"""The accuracy/escalation trade-off across cascade thresholds, and picking an operating point.

Each point is a real run of the edge pipeline over frames decoded once (ReplaySource), with
escalations answered by the baseline's own detections (OracleTransport): the same answers the
endpoint gives, at a fraction of the time, so a grid of thresholds costs seconds per clip.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from contracts.labels import PRODUCT_LABELS
from edge_agent.bench.metrics import escalation_fraction, label_agreement
from edge_agent.bench.runner import Baseline, OracleTransport, agent_config, replay, run_hybrid

ACCEPTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
REJECTS = (0.05, 0.1, 0.2, 0.3)


def sweep(baseline: Baseline, clip: Path, camera: str, level: str = "presence", accepts=ACCEPTS,
          rejects=REJECTS, held_from_s: float | None = None, student: Path | None = None,
          regions: dict | None = None) -> list[dict]:
    points = []
    with tempfile.TemporaryDirectory(prefix="framesieve-sweep-") as tmp:
        for accept in accepts:
            for reject in rejects:
                if reject >= accept:
                    continue
                bands = {label: {"accept": accept, "reject": reject} for label in PRODUCT_LABELS}
                cascade = {"level": level, "labels": bands, "audit_fraction": 0.0}
                config = agent_config(camera, clip, baseline.fps, "http://127.0.0.1:9/unused", cascade,
                                      regions=regions)
                if student is not None:
                    config = config.model_copy(update={"student": str(student)})
                run = run_hybrid(config, Path(tmp), "sweep", transport=OracleTransport(baseline),
                                 sources=replay(baseline, camera))
                lines = run.lines
                if held_from_s is not None:
                    lines = [ln for ln in lines if ln["pts_s"] >= held_from_s] or lines
                labels = label_agreement(lines, baseline)
                points.append({
                    "accept": accept, "reject": reject, "level": level,
                    "escalation_fraction": round(escalation_fraction(lines), 4),
                    **{f"{label}_{k}": labels[label][k] for label in PRODUCT_LABELS
                       for k in ("presence_recall", "presence_precision", "box_f1_iou50")},
                    # the counts behind them, so clips pool by counts and thin evidence is refused
                    **{f"{label}_{k}": labels[label][src] for label in PRODUCT_LABELS
                       for k, src in (("positives", "ref_present"), ("hits", "both_present"),
                                      ("said", "pred_present"), ("frames", "frames"))},
                })
    return points


# Below these, a threshold chosen to meet a recall target is a guess: refuse rather than write it.
MIN_POSITIVES = 30  # frames where the reference sees the label
MIN_NEGATIVES = 10  # frames where it does not (else "always yes" meets any recall target)


def evidence_refusal(points: list[dict], labels=("person",), min_positives: int = MIN_POSITIVES,
                     min_negatives: int = MIN_NEGATIVES) -> str | None:
    """Why these sweep points are too thin to choose an operating point from, or None when they are not."""
    if not points:
        return "no threshold sweep ran"
    p = points[0]
    for label in labels:
        pos, frames = p.get(f"{label}_positives"), p.get(f"{label}_frames")
        if pos is None or frames is None:
            continue  # a summary from before counts were kept
        if pos < min_positives or frames - pos < min_negatives:
            return (f"{label}: {pos} of {frames} frames have it in the reference, {frames - pos} do not; an operating "
                    f"point needs at least {min_positives} with and {min_negatives} without (calibrate on more "
                    "footage, or footage where the label comes and goes)")
    return None


def pick_operating_point(points: list[dict], target_recall: float, labels=("person",)) -> dict | None:
    """The point meeting `target_recall` (frame presence) on every given label with the fewest
    escalations; ties go to the higher precision. None when no point meets the target (a label the
    reference never sees has no recall, and no point can be shown to meet it)."""
    def recall(p: dict, label: str) -> float:
        value = p[f"{label}_presence_recall"]
        return -1.0 if value is None else value

    ok = [p for p in points if all(recall(p, label) >= target_recall for label in labels)]
    if not ok:
        return None
    return min(ok, key=lambda p: (p["escalation_fraction"],
                                  -sum(p[f"{label}_presence_precision"] or 0.0 for label in labels)))


def pool_points(per_clip: list[tuple[int, dict]]) -> dict:
    """One sweep point over several clips: rates from the summed counts, escalation frame-weighted."""
    total = sum(n for n, _ in per_clip)
    first = per_clip[0][1]
    out = {"accept": first["accept"], "reject": first["reject"], "level": first.get("level"),
           "escalation_fraction": round(sum(n * p["escalation_fraction"] for n, p in per_clip) / max(1, total), 4)}
    for label in PRODUCT_LABELS:
        counts = {k: sum(p.get(f"{label}_{k}", 0) for _, p in per_clip)
                  for k in ("positives", "hits", "said", "frames")}
        out.update({f"{label}_{k}": v for k, v in counts.items()})
        hits, positives, said = counts["hits"], counts["positives"], counts["said"]
        out[f"{label}_presence_recall"] = round(hits / positives, 4) if positives else None
        out[f"{label}_presence_precision"] = round(hits / said, 4) if said else None
        f1 = [(n, p[f"{label}_box_f1_iou50"]) for n, p in per_clip if p.get(f"{label}_box_f1_iou50") is not None]
        out[f"{label}_box_f1_iou50"] = round(sum(n * v for n, v in f1) / sum(n for n, _ in f1), 4) if f1 else None
    return out
