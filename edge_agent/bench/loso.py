"""Leave one scene out: for every scene, a student that never saw it (built or calibrated on the others),
then the real edge pipeline on that scene against the teacher on every sampled frame.

Reported per scene, pooled and for the worst scene, each figure with the frame counts behind it and a
95% Wilson interval; a presence figure with no positives (or no negatives) behind it is n/a. Models
are chosen by the worst scene, not the mean.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from edge_agent.bench.loso_bands import judged_out_of_sample
from edge_agent.bench.metrics import clip_summary
from edge_agent.bench.runner import agent_config, local_inference_server, run_baseline, run_hybrid
from edge_agent.bench.sweep import sweep
from edge_agent.config import Int8Gate
from models.manifest import load_manifest
from models.metrics import match_boxes, wilson_interval
from models.runtime import load_detector
from models.student.data import resolve_clip
from models.student.defaults import DEFAULTS
from models.student.scenes import Scene, load_scene
from models.student.self_int8 import build_and_check, gate_reason
from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

log = logging.getLogger(__name__)
SCHEMA = "framesieve.loso/1"
TARGET_RECALL = DEFAULTS.target_recall  # the product's promise, defined once
# Reference box height in source pixels: small objects are what a whole-frame pass at a reduced
# input loses first, so recall is reported per size.
SIZE_BUCKETS = (("small", 0, 32), ("medium", 32, 96), ("large", 96, 1e9))

StudentBuilder = Callable[[Path, list[Scene]], Path]  # (fold dir, other scenes) -> manifest


def _rate(k: int, n: int) -> dict:
    """A proportion with its counts and 95% interval; None where nothing stands behind it."""
    if n == 0:
        return {"value": None, "k": 0, "n": 0, "ci95": None}
    lo, hi = wilson_interval(k, n)
    return {"value": round(k / n, 4), "k": k, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}


def size_recall(lines: list[dict], refs: dict[int, Detections], label: str) -> dict:
    """Reference boxes of `label` matched by the hybrid's final boxes (IoU >= 0.5), by box height."""
    out = {}
    for bucket, lo, hi in SIZE_BUCKETS:
        tp = n = 0
        for ln in lines:
            ref = refs[ln["frame_index"]].with_label(label).with_min_score(TEACHER_THRESHOLD)
            heights = ref.xyxy[:, 3] - ref.xyxy[:, 1]
            ref = ref[(heights >= lo) & (heights < hi)]
            if not len(ref):
                continue
            pred = Detections.from_records([d for d in ln["detections"] if d["label"] == label])
            tp += match_boxes(pred.xyxy, pred.scores, ref.xyxy)
            n += len(ref)
        out[bucket] = _rate(tp, n)
    return out


def calibration_error(manifest: Path, scene: Scene, bins: int = 10) -> dict[str, dict]:
    """Expected calibration error of the student's frame-level presence score (its best box of a label)
    against the teacher's presence, on the left-out scene, whole frames."""
    detector = load_detector(manifest, threads=2, conf_threshold=0.01)
    preds = [d for s in range(0, len(scene), 8) for d in detector.detect(scene.frames[s:s + 8])]
    out = {}
    for label in PRODUCT_LABELS:
        p = np.array([float(d.with_label(label).scores.max()) if len(d.with_label(label)) else 0.0 for d in preds])
        y = np.array([len(r.with_label(label).with_min_score(TEACHER_THRESHOLD)) > 0 for r in scene.refs], float)
        edges = np.linspace(0, 1, bins + 1)
        idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        ece = sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).sum()
                  for b in range(bins) if (idx == b).any())
        # A score near 0 on a frame the teacher finds the label in: the cascade drops it at the edge.
        confident_miss = int(((p <= 0.1) & (y == 1)).sum())
        out[label] = {"ece": round(float(ece / max(1, len(p))), 4), "frames": len(p),
                      "confident_misses": confident_miss, "positives": int(y.sum())}
    return out


def fraction_for_recall(points: list[dict], label: str, target: float = TARGET_RECALL) -> float | None:
    ok = [p["escalation_fraction"] for p in points if (p[f"{label}_presence_recall"] or 0.0) >= target]
    return min(ok) if ok else None


def trained_on(manifest: Path, scene: str) -> bool:
    """Whether the student's manifest lists the scene among the clips it trained on."""
    training = load_manifest(manifest).training
    return any(d.get("clip") == scene and not d.get("held_out") for d in training.get("data", []))


def _scene_row(name: str, summary: dict, lines: list[dict], refs: dict[int, Detections], ece: dict) -> dict:
    frames = summary["sampled_frames"]
    row: dict = {"scene": name, "frames": frames,
                 "escalated": _rate(round(summary["escalation_fraction"] * frames), frames), "labels": {}}
    for label in PRODUCT_LABELS:
        a = summary["labels"][label]
        row["labels"][label] = {
            "reference_frames": a["ref_present"],
            "presence_recall": _rate(a["both_present"], a["ref_present"]),
            "presence_precision": _rate(a["both_present"], a["pred_present"]),
            # Frames without the label where the hybrid reported it anyway.
            "false_presence": _rate(a["pred_present"] - a["both_present"], frames - a["ref_present"]),
            "box_f1_iou50": a["box_f1_iou50"] if a["box_ref"] + a["box_pred"] else None,
            "escalation_for_recall_97": fraction_for_recall(summary.get("sweep", []), label)
            if a["ref_present"] else None,
            "recall_by_size": size_recall(lines, refs, label),
            "calibration": ece[label],
        }
    return row


def pool(rows: list[dict]) -> dict:
    """Counts summed over scenes; and the worst scene per label (lowest recall with positives)."""
    frames = sum(r["frames"] for r in rows)
    out: dict = {"frames": frames,
                 "escalated": _rate(sum(r["escalated"]["k"] for r in rows), frames), "labels": {}, "worst": {}}
    for label in PRODUCT_LABELS:
        parts = [r["labels"][label] for r in rows]
        rec = [p["presence_recall"] for p in parts]
        prec = [p["presence_precision"] for p in parts]
        fp = [p["false_presence"] for p in parts]
        out["labels"][label] = {
            "presence_recall": _rate(sum(x["k"] for x in rec), sum(x["n"] for x in rec)),
            "presence_precision": _rate(sum(x["k"] for x in prec), sum(x["n"] for x in prec)),
            "false_presence": _rate(sum(x["k"] for x in fp), sum(x["n"] for x in fp)),
            "recall_by_size": {b: _rate(sum(p["recall_by_size"][b]["k"] for p in parts),
                                        sum(p["recall_by_size"][b]["n"] for p in parts))
                               for b, _, _ in SIZE_BUCKETS},
        }
        scored = [(r["labels"][label]["presence_recall"]["value"], r) for r in rows
                  if r["labels"][label]["presence_recall"]["n"]]
        if scored:
            value, worst = min(scored, key=lambda t: (t[0], -t[1]["labels"][label]["presence_recall"]["n"]))
            out["worst"][label] = {"scene": worst["scene"], **worst["labels"][label]["presence_recall"]}
        else:
            out["worst"][label] = None
    worst_esc = max(rows, key=lambda r: r["escalated"]["value"] or 0)
    out["worst"]["escalated"] = {"scene": worst_esc["scene"], **worst_esc["escalated"]}
    return out


def first_frames(path: Path, share: float, at_most: int = 64) -> tuple[list[np.ndarray], float]:
    """Up to `at_most` frames spread evenly over the clip's first `share` of its duration (every decoded frame
    there is a candidate: what a camera shows before the judged part), and that share's end in seconds."""
    cap = cv2.VideoCapture(str(path))
    native = cap.get(cv2.CAP_PROP_FPS) or 0.0
    native = native if 0 < native < 240 else 10.0
    frames = []
    try:
        while cap.grab():
            ok, frame = cap.retrieve()
            if ok and frame is not None and frame.ndim == 3:
                frames.append(frame)
    finally:
        cap.release()
    cutoff_s = share * len(frames) / native
    early = frames[:max(1, int(share * len(frames)))]
    keep = np.unique(np.linspace(0, len(early) - 1, min(at_most, len(early))).round().astype(int))
    return [early[k] for k in keep], cutoff_s


def run_loso(scene_names: list[str], build: StudentBuilder, family: str, out_dir: Path, fps: float = 1.0,
             cascade: dict | None = None, with_sweep: bool = True, keep_students: bool = False,
             regions: dict | None = None, judge: list[str] | None = None, judge_after: float | None = None,
             self_int8: bool = False, gated: bool = True) -> dict:
    """One fold per scene (or per scene in `judge`; the rest only serve the folds). `build(fold_dir,
    other_scenes)` makes the fold's student from the other scenes only (sampled at `fps`, with the
    teacher's detections).

    `judge_after` (a share of each scene's duration): only the sampled frames after it are judged. With
    `self_int8` the fold's student is then quantised to INT8 on the scene's own frames before that point
    (unlabelled, up to 64, as a gateway calibrates on its cameras: models/student/self_int8.py), checked against
    the fp32 on every 4th of them by the agent's default gate, and judged where it passed (`gated`, as
    `student.precision: auto` runs) or everywhere."""
    if self_int8 and not judge_after:
        raise ValueError("self_int8 calibrates on a scene's first frames: give judge_after (a share, e.g. 0.33)")
    out_dir.mkdir(parents=True, exist_ok=True)
    teacher = load_detector(ensure_teacher(), threads=2)
    paths, skipped = {}, {}
    for name in scene_names:
        path = resolve_clip(name)
        if path is None:
            skipped[name] = "not found (fetch cache or shared footage folder)"
            continue
        paths[name] = path
    if len(paths) < 2:
        raise RuntimeError(f"leave-one-scene-out needs at least two scenes; found {sorted(paths)} "
                           f"(skipped: {skipped})")
    scenes = {name: load_scene(path, fps, teacher) for name, path in paths.items()}
    rows = []
    students = out_dir / "students"
    with local_inference_server() as url:
        for name in tqdm([n for n in paths if not judge or n in judge], desc=f"leave one scene out ({family})",
                         unit="scene"):
            fold = students / Path(name).stem
            if fold.exists():
                shutil.rmtree(fold)
            manifest = build(fold, [s for n, s in scenes.items() if n != name])
            path = paths[name]
            cutoff_s = 0.0
            if judge_after:
                early, cutoff_s = first_frames(path, judge_after)
                if self_int8:  # as the agent does: every 4th frame held out to check INT8 against fp32 on
                    calib, held = [f for k, f in enumerate(early) if k % 4 != 3], early[3::4] or early[-1:]
                    bands = agent_config("c", path, fps, "http://x", cascade).cameras[0].cascade.labels
                    check = build_and_check(manifest, calib, held, fold / "int8-self",
                                            {k: (b.accept, b.reject) for k, b in bands.items()},
                                            {"scene": name, "before_s": round(cutoff_s, 2)})
                    gate = Int8Gate()
                    check["gate_failed"] = gate_reason(check, gate.min_agreement, gate.max_lost_share,
                                                       gate.max_score_diff_mean, gate.max_extra_escalation)
                    if not (gated and check["gate_failed"]):  # as `auto`: fp32 stays where the gate fails
                        manifest = fold / "int8-self" / "manifest.json"
            baseline = run_baseline(path, fps, keep_frames=with_sweep)
            config = agent_config(path.stem, path, fps, url, cascade, regions=regions)
            config = config.model_copy(update={"student": str(manifest)})
            with tempfile.TemporaryDirectory(prefix="framesieve-loso-") as tmp:
                hybrid = run_hybrid(config, Path(tmp), path.stem)
            if judge_after:  # the same later frames for every arm, whatever it calibrated on
                hybrid = dataclasses.replace(hybrid, lines=[ln for ln in hybrid.lines if ln["pts_s"] >= cutoff_s])
            summary = clip_summary(hybrid, baseline, None)
            if with_sweep:
                summary["sweep"] = sweep(baseline, path, path.stem, student=manifest, regions=regions)
            (out_dir / f"{path.stem}.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in hybrid.lines))
            row = _scene_row(name, summary, hybrid.lines, baseline.detections,
                             calibration_error(manifest, scenes[name]))
            row["student_trained_on_scene"] = trained_on(manifest, name)
            row["judged_from_s"] = round(cutoff_s, 2)
            if self_int8:  # the agent's gate on the held-out early frames: INT8 would run only where it passed
                row["int8_check"] = check
                row["precision_judged"] = load_manifest(manifest).precision
            row["sweep"] = summary.get("sweep", [])
            rows.append(row)
            if not keep_students:
                shutil.rmtree(fold, ignore_errors=True)
    result = {
        "schema": SCHEMA, "family": family, "fps": fps, "target_recall": TARGET_RECALL,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cascade": agent_config("c", Path("x"), fps, "http://x", cascade).cameras[0].cascade.model_dump(),
        "regions": agent_config("c", Path("x"), fps, "http://x", None, regions=regions).cameras[0].regions.model_dump(),
        "judge_after": judge_after, "self_int8": self_int8, "int8_gated": gated if self_int8 else None,
        "scenes": rows, "pooled": pool(rows), "skipped": skipped,
        "bands": judged_out_of_sample(rows) if with_sweep else None,
    }
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
