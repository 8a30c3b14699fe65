"""A student quantised to INT8 on a camera's own frames, and the check that it still decides as its fp32 does.

Static INT8 needs calibration frames (the activations' ranges). A gateway that derives its student from the
recipe has none of the recipe's scenes, but it has its own cameras: their sampled frames, no labels needed.
`quantize_student` quantises an fp32 student on such frames and writes an INT8 manifest that keeps the fp32's
score calibration (Platt) and thresholds, since no label exists to refit them. `compare` runs both on frames
held out of that set and measures what the cascade would decide with each, at its bands, per frame and
label: the same decision (accept / escalate / reject), presences the fp32 keeps that INT8 would drop, the
differences of the frame-level scores, and the frames each would escalate. `gate_reason` judges those figures
against a gate.

Run as `python -m models.student.self_int8 FP32_MANIFEST FRAMES.npz OUT_DIR BANDS_JSON`, it does both and
writes OUT_DIR/manifest.json and OUT_DIR/check.json: the agent runs it niced in a child process, so the
quantiser's Python never holds the decision loop's GIL and its CPU is counted exactly.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from contracts.detections import Detections
from models.manifest import load_manifest, manifest_for
from models.metrics import paired_difference_lower
from models.quantize import quantize_int8
from models.runtime import Detector, load_detector
from models.student.evidence import wilson_lower, wilson_upper

INT8_FILE = "student-int8.onnx"
Bands = dict[str, tuple[float, float]]  # label -> (accept, reject)


def to_input_size(frame: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """A frame at the student's input size (what is kept of it: 184 KB at 320x192, whatever the camera)."""
    return cv2.resize(frame, input_wh, interpolation=cv2.INTER_AREA)


def quantize_student(fp32_manifest: Path, frames: Sequence[np.ndarray], out_dir: Path,
                     note: dict | None = None) -> Path:
    """Write OUT_DIR/manifest.json: `fp32_manifest`'s student in static INT8, activations calibrated on `frames`
    (BGR, any size); score calibration, thresholds and labels as the fp32's. Returns the manifest path."""
    if not frames:
        raise ValueError("quantising needs at least one calibration frame")
    fp32 = load_detector(fp32_manifest, threads=1)
    m = fp32.manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / INT8_FILE
    quantize_int8(m.model_path, model, (fp32.preprocess([f]) for f in frames), input_name=m.input.name)
    fields = m.model_dump(exclude={"file", "sha256", "created", "precision", "name", "version", "metrics", "training"})
    training = {**m.training, "quantized_from": {"name": m.name, "version": m.version, "sha256": m.sha256},
                "int8_calibration": {"frames": len(frames), **(note or {})}}
    # the version says it too: telemetry and the agent's status carry the version, not the name
    manifest = manifest_for(model, **fields, name=f"{m.name.removesuffix('-fp32')}-int8-self", precision="int8",
                            version=f"{m.version}+int8", training=training)
    manifest.save(out_dir / "manifest.json")
    return out_dir / "manifest.json"


def _top(dets: Detections, label: str) -> float:
    mine = dets.with_label(label)
    return float(mine.scores.max()) if len(mine) else 0.0


def _decision(score: float, accept: float, reject: float) -> str:
    return "accept" if score >= accept else "reject" if score <= reject else "escalate"


def compare(fp32: Detector, int8: Detector, frames: Sequence[np.ndarray], bands: Bands) -> dict:
    """What the cascade would decide on `frames` with each student (whole frames, each label's best score)."""
    a = [d for s in range(0, len(frames), 8) for d in fp32.detect(frames[s:s + 8])]
    b = [d for s in range(0, len(frames), 8) for d in int8.detect(frames[s:s + 8])]
    pairs = same = kept = lost = 0
    diffs: list[float] = []
    per_label: dict[str, dict] = {}
    asks = np.zeros((2, len(frames)), bool)  # frames each student would escalate (any label in its band)
    for label, (accept, reject) in bands.items():
        lab = {"pairs": 0, "same": 0, "fp32_kept": 0, "lost": 0, "gained": 0}
        for k, (da, db) in enumerate(zip(a, b, strict=True)):
            sa, sb = _top(da, label), _top(db, label)
            ca, cb = _decision(sa, accept, reject), _decision(sb, accept, reject)
            asks[0, k] |= ca == "escalate"
            asks[1, k] |= cb == "escalate"
            diffs.append(abs(sa - sb))
            lab["pairs"] += 1
            lab["same"] += ca == cb
            lab["fp32_kept"] += ca != "reject"
            lab["lost"] += ca != "reject" and cb == "reject"  # a presence INT8 would drop unasked
            lab["gained"] += ca == "reject" and cb != "reject"
        per_label[label] = lab
        pairs, same, kept, lost = pairs + lab["pairs"], same + lab["same"], kept + lab["fp32_kept"], lost + lab["lost"]
    # A label's presences INT8 drops, less those it keeps that the fp32 drops: flips at the reject threshold go both
    # ways, and only an excess is a loss of recall. Per label, so a vehicle kept never pays for a person dropped.
    net_lost = sum(max(0, lab["lost"] - lab["gained"]) for lab in per_label.values())
    return {"frames": len(frames), "pairs": pairs, "agreement": round(same / pairs, 4) if pairs else None,
            "same": same, "fp32_kept": kept, "lost": lost, "lost_share": round(lost / kept, 4) if kept else 0.0,
            "net_lost": net_lost, "net_lost_share": round(net_lost / kept, 4) if kept else 0.0,
            "score_diff_mean": round(float(np.mean(diffs)), 4) if diffs else None,
            "score_diff_max": round(float(np.max(diffs)), 4) if diffs else None, "labels": per_label,
            "escalated_fp32": int(asks[0].sum()), "escalated_int8": int(asks[1].sum()),
            "escalated_both": int((asks[0] & asks[1]).sum()), "escalated_int8_only": int((asks[1] & ~asks[0]).sum()),
            "escalated_fp32_only": int((asks[0] & ~asks[1]).sum()),
            "extra_escalation": round(float(asks[1].sum() - asks[0].sum()) / len(frames), 4) if len(frames) else 0.0,
            "bands": {k: list(v) for k, v in bands.items()}}


def extra_escalation_lower(check: dict, confidence: float = 0.95) -> float:
    """One-sided lower bound of the share of frames INT8 escalates beyond the fp32, paired frame by frame; a
    check without the paired counts (written before they were kept) falls back to the unpaired Wilson bound."""
    if "escalated_both" not in check:
        extra = max(0, check.get("escalated_int8", 0) - check.get("escalated_fp32", 0))
        return wilson_lower(extra, check["frames"], confidence)
    both, int8_only, fp32_only = check["escalated_both"], check["escalated_int8_only"], check["escalated_fp32_only"]
    neither = check["frames"] - both - int8_only - fp32_only
    return paired_difference_lower(both, int8_only, fp32_only, neither, confidence)


def gate_reason(check: dict, min_agreement: float, max_lost_share: float, max_score_diff_mean: float,
                max_extra_escalation: float = 1.0) -> str | None:
    """Why these figures fail the gate, or None when they pass."""
    if not check.get("pairs"):
        return "no held-out frame to check the INT8 student on"
    problems = []
    # Agreement on 15 held-out frames is a coin flip near 85% (the same gateway passed or failed with the frames
    # it happened to keep): it fails on evidence, when even the one-sided 95% upper bound is under the gate.
    same = check.get("same", round(check["agreement"] * check["pairs"]))
    if check["agreement"] < min_agreement and (high := wilson_upper(same, check["pairs"])) < min_agreement:
        problems.append(f"it decided {check['agreement']:.1%} of {check['pairs']} frame-labels as the fp32 does (at "
                        f"most {high:.1%} at 95% confidence; gate: at least {min_agreement:.1%})")
    # Recall is judged on the counts as they are, but net of the opposite flips (a check written before they were
    # kept: the drops alone).
    net, share = check.get("net_lost", check["lost"]), check.get("net_lost_share", check["lost_share"])
    if share > max_lost_share:
        problems.append(f"it would drop {check['lost']} of the {check['fp32_kept']} presences the fp32 keeps or "
                        f"asks about, {net} more than it keeps of those the fp32 drops ({share:.1%}; gate: at most "
                        f"{max_lost_share:.1%})")
    # Cost, not recall: one frame more of 15 held out is no evidence. It fails when even the one-sided 95% lower
    # bound of the extra share is above the limit (recall above is judged on the counts as they are). The bound
    # is paired: near-threshold frames flip both ways, and only a one-sided excess is evidence of a cost.
    extra = max(0, check.get("escalated_int8", 0) - check.get("escalated_fp32", 0))
    if extra and (low := extra_escalation_lower(check)) > max_extra_escalation:
        problems.append(f"it would escalate {check['escalated_int8']} of the {check['frames']} frames against the "
                        f"fp32's {check['escalated_fp32']} (+{check['extra_escalation']:.1%}, at least +{low:.1%} at "
                        f"95% confidence; gate: at most +{max_extra_escalation:.1%})")
    if check["score_diff_mean"] > max_score_diff_mean:
        problems.append(f"its scores differ from the fp32's by {check['score_diff_mean']:.3f} on average (gate: at "
                        f"most {max_score_diff_mean:.3f})")
    return "; ".join(problems) or None


def build_and_check(fp32_manifest: Path, calibration: Sequence[np.ndarray], held_out: Sequence[np.ndarray],
                    out_dir: Path, bands: Bands, note: dict | None = None) -> dict:
    """Quantise on `calibration`, compare on `held_out`; writes OUT_DIR/manifest.json and check.json."""
    started = time.process_time()
    manifest = quantize_student(fp32_manifest, calibration, out_dir, note)
    quantize_s = time.process_time() - started
    fp32 = load_detector(fp32_manifest, threads=1, conf_threshold=0.01)
    int8 = load_detector(manifest, threads=1, conf_threshold=0.01)
    check = compare(fp32, int8, held_out, bands)
    check.update(calibration_frames=len(calibration), quantize_cpu_s=round(quantize_s, 2),
                 cpu_s=round(time.process_time() - started, 2), int8_sha256=load_manifest(manifest).sha256,
                 fp32_sha256=fp32.manifest.sha256)
    (out_dir / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    return check


def main(argv: list[str]) -> int:
    fp32, frames, out, bands = Path(argv[0]), Path(argv[1]), Path(argv[2]), json.loads(argv[3])
    with np.load(frames) as z:
        calibration, held_out, note = list(z["calibration"]), list(z["held_out"]), json.loads(str(z["note"]))
    try:
        build_and_check(fp32, calibration, held_out, out, {k: tuple(v) for k, v in bands.items()}, note)
    except Exception as exc:
        shutil.rmtree(out, ignore_errors=True)
        print(f"quantising failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
