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
                })
    return points


def pick_operating_point(points: list[dict], target_recall: float, labels=("person",)) -> dict | None:
    """The point meeting `target_recall` (frame presence) on every given label with the fewest
    escalations; ties go to the higher precision. None when no point meets the target."""
    ok = [p for p in points if all(p[f"{label}_presence_recall"] >= target_recall for label in labels)]
    if not ok:
        return None
    return min(ok, key=lambda p: (p["escalation_fraction"],
                                  -sum(p[f"{label}_presence_precision"] for label in labels)))
