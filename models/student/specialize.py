"""Per-camera specialization: fine-tune a student on one camera's collected teacher answers, then decide
champion/challenger on the camera's newest records, which neither model trained on.

1. evidence first (models/student/evidence.py): too few held-back frames with and without each promotion
   label, or too little of the camera's time, and nothing is trained: the verdict is "collect";
2. train (through `train_student`, whatever student family the champion's manifest declares);
3. decide: the cascade is simulated at the presence level frame by frame (a label's best score at or above
   `accept` decides "present", at or below `reject` "absent", anything between is escalated and answered
   by the teacher, so right). The challenger's bands are the cheapest whose one-sided lower confidence
   bound of presence recall reaches the target for every promotion label (and for any other label seen
   often enough; a rare one needs its point recall at the target). It is promoted only when such bands
   exist, when it then needs fewer escalations than a champion of the camera's own (a generic champion is
   not running: the camera is onboarding), and when the guard can watch it at an audit share we accept.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contracts.jobs import Bands
from contracts.labels import PRODUCT_LABELS
from models.exceptions import ModelError
from models.manifest import load_manifest
from models.runtime import load_detector
from models.student.config import TrainConfig
from models.student.decision import Decision, GuardPlan, LabelOutcome, ModelReport, Outcome
from models.student.defaults import DEFAULTS, SpecializationDefaults
from models.student.derived import trainable_base
from models.student.evaluate import run_on
from models.student.evidence import Evidence, count_evidence, lower_bound
from models.student.records import load_records
from models.student.sequential import design

if TYPE_CHECKING:  # training needs torch (the train extra); judging and deciding do not
    from models.student.train import Dataset

GRID = [(a, r) for a in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) for r in (0.05, 0.1, 0.2, 0.3) if r < a]


def frame_scores(manifest: Path, data: Dataset, items, ref_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(frames, labels) best calibrated scores of the model, and the teacher's presence."""
    preds, refs = run_on(load_detector(manifest, threads=2, conf_threshold=0.01), data, items)
    scores = np.array([[p.max_score(label) for label in PRODUCT_LABELS] for p in preds])
    scores = scores.reshape(-1, len(PRODUCT_LABELS))
    present = np.array([[len(r.with_label(label).with_min_score(ref_threshold)) > 0 for label in PRODUCT_LABELS]
                        for r in refs]).reshape(-1, len(PRODUCT_LABELS))
    return scores, present


def cascade_outcome(scores: np.ndarray, present: np.ndarray, accept: float, reject: float,
                    rules: SpecializationDefaults = DEFAULTS) -> Outcome:
    """Frame-level presence cascade over every label: escalated when any label's best score is between
    the bands (the teacher then answers, so the frame is right), else each label decided by `accept`."""
    uncertain = ((scores > reject) & (scores < accept)).any(axis=1)
    said = np.where(uncertain[:, None], present, scores >= accept)
    decided = ~uncertain
    wrong = (said != present).any(axis=1) & decided
    labels = {}
    for k, label in enumerate(PRODUCT_LABELS):
        truth, says = present[:, k], said[:, k]
        n, hits, n_said = int(truth.sum()), int((says & truth).sum()), int(says.sum())
        labels[label] = LabelOutcome(
            present=n, said=n_said, hits=hits, recall=round(hits / n, 4) if n else None,
            recall_lower=round(lower_bound(hits, n, rules.confidence, rules.bound), 4) if n else None,
            precision=round(hits / n_said, 4) if n_said else None)
    return Outcome(accept=accept, reject=reject, escalation_fraction=round(float(uncertain.mean()), 4),
                   edge_disagreement=round(float(wrong.sum() / decided.sum()), 4) if decided.any() else 0.0,
                   labels=labels)


def reaches_target(outcome: Outcome, rules: SpecializationDefaults = DEFAULTS) -> bool:
    """Every promotion label, and every label present often enough, has its recall bound at the target; a
    label seen rarely needs its point recall there (one miss among a few is too many)."""
    for label, lo in outcome.labels.items():
        if label in rules.promotion_labels or lo.present >= rules.min_present:
            if lo.recall_lower is None or lo.recall_lower < rules.target_recall:
                return False
        elif lo.recall is not None and lo.recall < rules.target_recall:
            return False
    return True


def cheapest_by_bound(scores: np.ndarray, present: np.ndarray,
                      rules: SpecializationDefaults = DEFAULTS) -> Outcome | None:
    """The cheapest (accept, reject) that reaches the target by the bound, or None; of equally cheap ones
    the most conservative (highest accept, then highest reject)."""
    ok = [o for o in (cascade_outcome(scores, present, a, r, rules) for a, r in GRID) if reaches_target(o, rules)]
    return min(ok, key=lambda o: (o.escalation_fraction, -o.accept, -o.reject)) if ok else None


def guard_plan(scores: np.ndarray, present: np.ndarray, bands: Outcome, span_s: float,
               rules: SpecializationDefaults = DEFAULTS) -> GuardPlan:
    """The audit share that lets the guard notice the fall it is sized for (models/student/sequential.py),
    from how often the held-back frames show the watched label where the student decides alone."""
    try:
        g = design(rules.target_recall, rules.guard_recall_drop_to, rules.guard_detect_s, rules.guard_power,
                   rules.guard_false_alarms_per_week, 1.0)  # per second of camera time
    except ValueError:  # no audit share can notice that fall in that time: nothing to promote it with
        return GuardPlan(positive_share=0.0, audit_fraction=None, threshold=0, weight=0,
                         labels=list(rules.promotion_labels))
    uncertain = ((scores > bands.reject) & (scores < bands.accept)).any(axis=1)
    columns = [PRODUCT_LABELS.index(label) for label in rules.promotion_labels]
    decided_present = (~uncertain[:, None] & present[:, columns]).mean(axis=0) if len(scores) else np.zeros(1)
    per_second = len(scores) / span_s if span_s > 0 else 0.0  # frames the student looks at per camera second
    share = float(decided_present.min()) * per_second
    return GuardPlan(positive_share=round(share, 4), audit_fraction=g.audit_fraction(share), threshold=g.threshold,
                     weight=g.weight, labels=list(rules.promotion_labels))


def decide(champion: Path, challenger: Path, data: Dataset, compared_at: Bands, rules: SpecializationDefaults,
           ref_threshold: float, evidence: Evidence, camera: str = "", champion_is_own: bool = False) -> Decision:
    items = data.frames("held")
    if not items:
        raise ModelError("no held-back frames to compare the models on; collect more records")
    reports, raw = {}, {}
    for role, manifest in (("champion", champion), ("challenger", challenger)):
        scores, present = frame_scores(manifest, data, items, ref_threshold)
        raw[role] = (scores, present)
        reports[role] = ModelReport(manifest=str(manifest),
                                    at_bands=cascade_outcome(scores, present, compared_at.accept, compared_at.reject,
                                                             rules),
                                    cheapest_for_target=cheapest_by_bound(scores, present, rules))
    ch, cc = reports["champion"], reports["challenger"]
    own = cc.cheapest_for_target
    plan = guard_plan(*raw["challenger"], own, evidence.span_s, rules) if own else None
    person = cc.at_bands.labels["person"]
    at_bands = (f"at the camera's bands {compared_at.accept}/{compared_at.reject}: challenger person recall "
                f"{_fmt(person.recall)} (bound {_fmt(person.recall_lower)}) vs champion "
                f"{_fmt(ch.at_bands.labels['person'].recall)}")
    head = f"{len(items)} held-back frames; {at_bands}; "
    if own is None:
        verdict, why = "keep", (head + f"no bands bring the challenger's recall bound (confidence "
                                       f"{rules.confidence}) to {rules.target_recall} on "
                                       f"{', '.join(rules.promotion_labels)} -> keep onboarding")
    elif champion_is_own and ch.cheapest_for_target is not None \
            and own.escalation_fraction >= ch.cheapest_for_target.escalation_fraction:
        verdict, why = "keep", (head + f"at its own bands the challenger escalates {own.escalation_fraction:.1%}, "
                                       f"the champion {ch.cheapest_for_target.escalation_fraction:.1%} -> keep "
                                       "the champion")
    elif plan is None or plan.audit_fraction is None or plan.audit_fraction > rules.guard_max_audit_fraction:
        need = "more than every frame" if plan is None or plan.audit_fraction is None \
            else f"{plan.audit_fraction:.0%} of its frames"
        verdict, why = "keep", (head + f"its guard would have to audit {need} to notice a fall to "
                                       f"{rules.guard_recall_drop_to} within {rules.guard_detect_s:.0f} s (limit "
                                       f"{rules.guard_max_audit_fraction:.0%}) -> keep onboarding")
    else:
        lows = ", ".join(f"{label} {_fmt(own.labels[label].recall)} (bound {_fmt(own.labels[label].recall_lower)})"
                         for label in rules.promotion_labels)
        verdict, why = "promote", (head + f"at its own bands {own.accept}/{own.reject}: recall {lows}, escalating "
                                          f"{own.escalation_fraction:.1%}, audited {plan.audit_fraction:.1%} "
                                          "-> promote")
    return Decision(verdict=verdict, why=why, camera=camera, records=evidence.records, frames=len(items),
                    target_recall=rules.target_recall, confidence=rules.confidence, compared_at=compared_at,
                    bands=Bands(accept=own.accept, reject=own.reject) if verdict == "promote" and own else None,
                    evidence=evidence, champion=ch, challenger=cc, guard=plan)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def collect_verdict(camera: str, evidence: Evidence, rules: SpecializationDefaults, compared_at: Bands,
                    records_dir: Path | None = None) -> Decision:
    why = "too little evidence, keep collecting: " + "; ".join(evidence.missing)
    return Decision(verdict="collect", why=why, camera=camera, records=evidence.records,
                    records_dir=str(records_dir) if records_dir else None, target_recall=rules.target_recall,
                    confidence=rules.confidence, compared_at=compared_at, evidence=evidence)


def specialize(camera: str, records_dir: Path, champion: Path, out_dir: Path,
               rules: SpecializationDefaults = DEFAULTS, accept: float | None = None, reject: float | None = None,
               config: TrainConfig | None = None, progress: bool = True, **overrides) -> Decision:
    """One step of the loop: evidence -> train -> decide. Writes `decision.json` (and, when trained, the
    challenger) to `out_dir`; rolling out is the caller's (a model job, or `--install` into the agent config).
    `overrides`: any field of the rules (epochs=, target_recall=, min_records=, ...)."""
    rules = rules.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    compared_at = Bands(accept=rules.accept if accept is None else accept,
                        reject=rules.reject if reject is None else reject)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    records = load_records(records_dir, camera, skipped)
    evidence = count_evidence(records, PRODUCT_LABELS, rules.promotion_labels, rules.min_present, rules.min_absent,
                              rules.min_span_s, rules.min_records)
    if not evidence.enough:
        decision = collect_verdict(camera, evidence, rules, compared_at, records_dir)
        decision.save(out_dir / "decision.json")
        return decision
    champion_manifest = load_manifest(champion)
    base = config or TrainConfig.model_validate(load_manifest(trainable_base(champion)).training["config"])
    cfg = base.model_copy(update={"epochs": rules.epochs, "learning_rate": min(base.learning_rate, 0.002)})
    from models.student.collected import records_dataset
    from models.student.train import train_student

    data = records_dataset(records, (cfg.input_width * 2, cfg.input_height * 2), min_records=rules.min_records)
    window = {"camera": camera, "records": len(records), "from_t_s": records[0].t_s, "to_t_s": records[-1].t_s,
              "records_dir": str(records_dir)}
    train_student(cfg, out_dir, init_from=champion, name=f"student-{camera}", version=f"{champion_manifest.version}+"
                  f"{camera}.{int(time.time())}", progress=progress, data=data,
                  extra_training={"specialization": window})
    decision = decide(champion, out_dir / "manifest.json", data, compared_at, rules, cfg.reference_threshold,
                      evidence, camera, champion_is_own=champion_manifest.specialized_for == camera)
    decision = decision.model_copy(update={k: v for k, v in window.items() if k != "camera"})
    decision.save(out_dir / "decision.json")
    return decision

