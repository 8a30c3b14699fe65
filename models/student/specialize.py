"""Per-camera specialization: fine-tune a student on one camera's collected teacher answers, then let
it replace the camera's current student (the champion) only if it is no worse in recall and needs
fewer escalations, on the camera's newest frames, which neither model trained on.

The decision simulates the cascade at the presence level frame by frame: a label's best score at or
above `accept` decides "present", at or below `reject` decides "absent", anything between is escalated
(and then answered by the teacher, so it is right).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from contracts.labels import PRODUCT_LABELS
from models.exceptions import ModelError
from models.manifest import load_manifest
from models.runtime import load_detector
from models.student.collected import load_records, records_dataset
from models.student.config import TrainConfig
from models.student.derived import trainable_base
from models.student.evaluate import run_on
from models.student.train import Dataset, train_student

GRID = [(a, r) for a in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) for r in (0.05, 0.1, 0.2, 0.3) if r < a]


def frame_scores(manifest: Path, data: Dataset, items, ref_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(frames, labels) best calibrated scores of the model, and the teacher's presence."""
    preds, refs = run_on(load_detector(manifest, threads=2, conf_threshold=0.01), data, items)
    scores = np.array([[p.max_score(label) for label in PRODUCT_LABELS] for p in preds])
    scores = scores.reshape(-1, len(PRODUCT_LABELS))
    present = np.array([[len(r.with_label(label).with_min_score(ref_threshold)) > 0 for label in PRODUCT_LABELS]
                        for r in refs]).reshape(-1, len(PRODUCT_LABELS))
    return scores, present


def cascade_outcome(scores: np.ndarray, present: np.ndarray, accept: float, reject: float) -> dict:
    """Frame-level presence cascade over every label: escalated when any label's best score is between
    the bands (the teacher then answers, so the frame is right), else each label decided by `accept`."""
    uncertain = ((scores > reject) & (scores < accept)).any(axis=1)
    said = np.where(uncertain[:, None], present, scores >= accept)
    out = {"accept": accept, "reject": reject, "escalation_fraction": round(float(uncertain.mean()), 4)}
    # What a live audit would see: among frames decided at the edge, the share where some label's answer
    # differs from the teacher's. The agent rolls a student back when its audits disagree more than this.
    decided = ~uncertain
    wrong = (said != present).any(axis=1) & decided
    out["edge_disagreement"] = round(float(wrong.sum() / decided.sum()), 4) if decided.any() else 0.0
    for k, label in enumerate(PRODUCT_LABELS):
        truth = present[:, k]
        hit = (said[:, k] & truth).sum()
        out[f"{label}_presence_recall"] = round(float(hit / truth.sum()), 4) if truth.any() else 1.0
        out[f"{label}_presence_precision"] = round(float(hit / said[:, k].sum()), 4) if said[:, k].any() else 1.0
    return out


def _recall_ok(outcome: dict, target: float) -> bool:
    return all(outcome[f"{label}_presence_recall"] >= target for label in PRODUCT_LABELS)


def needed_escalation(scores: np.ndarray, present: np.ndarray, target_recall: float) -> dict | None:
    """The cheapest (accept, reject) reaching the target recall on every label, or None; of equally cheap
    ones the most conservative (highest accept, then highest reject), as few frames decide it."""
    ok = [o for o in (cascade_outcome(scores, present, a, r) for a, r in GRID) if _recall_ok(o, target_recall)]
    return min(ok, key=lambda o: (o["escalation_fraction"], -o["accept"], -o["reject"])) if ok else None


def decide(champion: Path, challenger: Path, data: Dataset, accept: float, reject: float, target_recall: float,
           ref_threshold: float) -> dict:
    items = data.frames("held")
    if not items:
        raise ModelError("no held-back frames to compare the models on; collect more records")
    out = {"frames": len(items), "bands": {"accept": accept, "reject": reject}, "target_recall": target_recall}
    for role, manifest in (("champion", champion), ("challenger", challenger)):
        scores, present = frame_scores(manifest, data, items, ref_threshold)
        out[role] = {"manifest": str(manifest), "at_bands": cascade_outcome(scores, present, accept, reject),
                     "cheapest_for_target": needed_escalation(scores, present, target_recall)}
    ch, cc = out["champion"]["at_bands"], out["challenger"]["at_bands"]
    worse = [label for label in PRODUCT_LABELS
             if cc[f"{label}_presence_recall"] < ch[f"{label}_presence_recall"]]
    need_ch = (out["champion"]["cheapest_for_target"] or {}).get("escalation_fraction", 1.01)
    need_cc = (out["challenger"]["cheapest_for_target"] or {}).get("escalation_fraction", 1.01)
    fewer = cc["escalation_fraction"] < ch["escalation_fraction"] or need_cc < need_ch
    out["promote"] = bool(not worse and fewer)
    # The promoted student's own operating point: its calibrated scores are its own, so are its bands.
    cheapest = out["challenger"]["cheapest_for_target"]
    out["bands"] = {"accept": cheapest["accept"], "reject": cheapest["reject"]} if out["promote"] and cheapest \
        else None
    recalls = ", ".join(f"{label} recall {cc[f'{label}_presence_recall']:.3f} vs {ch[f'{label}_presence_recall']:.3f}"
                        for label in PRODUCT_LABELS)
    out["why"] = (
        f"challenger vs champion on {len(items)} held-back frames at accept {accept}/reject {reject}: {recalls}; "
        f"escalating {cc['escalation_fraction']:.1%} vs {ch['escalation_fraction']:.1%}; "
        f"for recall >= {target_recall}: "
        f"{'n/a' if need_cc > 1 else f'{need_cc:.1%}'} vs {'n/a' if need_ch > 1 else f'{need_ch:.1%}'}"
        + (" -> promote" if out["promote"] else " -> keep the champion"
           + (f" (worse recall on {', '.join(worse)})" if worse else " (no fewer escalations)")))
    return out


def specialize(camera: str, records_dir: Path, champion: Path, out_dir: Path, epochs: int = 60,
               accept: float = 0.5, reject: float = 0.2, target_recall: float = 0.97, min_records: int = 8,
               config: TrainConfig | None = None, progress: bool = True) -> dict:
    """One step of the loop: collect -> train -> decide. Writes the challenger and `decision.json` to
    `out_dir`; rolling out is the caller's (a model job, or `--install` into the agent config)."""
    champion_manifest = load_manifest(champion)
    base = config or TrainConfig.model_validate(load_manifest(trainable_base(champion)).training["config"])
    cfg = base.model_copy(update={"epochs": epochs, "learning_rate": min(base.learning_rate, 0.002)})
    records = load_records(records_dir, camera)
    data = records_dataset(records, (cfg.input_width * 2, cfg.input_height * 2), min_records=min_records)
    window = {"camera": camera, "records": len(records), "from_t_s": records[0].t_s, "to_t_s": records[-1].t_s,
              "records_dir": str(records_dir)}
    train_student(cfg, out_dir, init_from=champion, name=f"student-{camera}", version=f"{champion_manifest.version}+"
                  f"{camera}.{int(time.time())}", progress=progress, data=data,
                  extra_training={"specialization": window})
    decision = decide(champion, out_dir / "manifest.json", data, accept, reject, target_recall,
                      cfg.reference_threshold)
    decision.update(window)
    (out_dir / "decision.json").write_text(json.dumps(decision, indent=2) + "\n")
    return decision

