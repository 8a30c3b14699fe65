"""`edge-agent models bench`: teacher vs student (fp32, INT8) speed and agreement, side by side, one run.

Latency is the median wall time of `Detector.detect` on one full-size frame with one intra-op thread,
pre- and post-processing included. Agreement is measured on held-back frames only, rebuilt from the
split recorded in the student's own manifest, so no figure comes from a frame it trained on.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from contracts.labels import PRODUCT_LABELS
from models.manifest import load_manifest
from models.runtime import load_detector
from models.student.config import TrainConfig
from models.student.data import iter_video
from models.student.evaluate import held_back_metrics
from models.student.train import build_dataset
from models.teacher.build import ensure_teacher


def _latency(manifest: Path, frames: list[np.ndarray], repeats: int) -> float:
    detector = load_detector(manifest, threads=1)
    detector.detect(frames[:1])  # first call allocates
    times = []
    for _ in range(repeats):
        for frame in frames:
            t = time.perf_counter()
            detector.detect([frame])
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run_models_bench(student_dir: Path, clip: Path, frames: int = 20, repeats: int = 3,
                     derived_dir: Path | None = None) -> dict:
    """`derived_dir`: the teacher-derived student's variants join the latency table (its accuracy is
    judged by `edge-agent models loso`, on scenes it was never calibrated on)."""
    teacher = ensure_teacher()
    variants = {"teacher": teacher}
    for precision in ("fp32", "int8"):
        path = student_dir / f"manifest-{precision}.json"
        if path.is_file():
            variants[f"student-{precision}"] = path
    for precision in ("fp32", "int8"):
        if derived_dir is not None and (derived_dir / f"manifest-{precision}.json").is_file():
            variants[f"derived-{precision}"] = derived_dir / f"manifest-{precision}.json"
    sample = [f for k, f in enumerate(iter_video(clip)) if k % 10 == 0][:frames]
    latency = {name: _latency(path, sample, repeats) for name, path in variants.items()}
    base = next(p for n, p in variants.items() if n.startswith("student"))
    cfg = TrainConfig.model_validate(load_manifest(base).training["config"])
    data = build_dataset(cfg, teacher)
    agreement = {}
    for name, path in variants.items():
        if name == "teacher" or name.startswith("derived"):
            continue
        manifest = load_manifest(path)
        metrics = held_back_metrics(load_detector(path, threads=2), data, manifest.thresholds,
                                    cfg.reference_threshold)
        agreement[name] = {"thresholds": manifest.thresholds, **metrics}
    return {
        "clip": clip.name,
        "frame_size": list(sample[0].shape[1::-1]),
        "latency_ms_median_1_thread": {k: round(v, 3) for k, v in latency.items()},
        "ratio_to_teacher": {k: round(v / latency["teacher"], 4) for k, v in latency.items()},
        "agreement": agreement,
        "shipped": load_manifest(student_dir / "manifest.json").precision
        if (student_dir / "manifest.json").is_file() else None,
    }


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_bench(result: dict) -> str:
    lines = [f"Latency per frame ({result['clip']}, {result['frame_size'][0]}x{result['frame_size'][1]}, "
             "1 intra-op thread, pre/post-processing included):"]
    for name, ms in result["latency_ms_median_1_thread"].items():
        lines.append(f"  {name:<14} {ms:8.2f} ms   x{result['ratio_to_teacher'][name]:.3f} of the teacher")
    for name, agr in result["agreement"].items():
        lines.append(f"\nAgreement with the teacher, {name} (thresholds {agr['thresholds']}):")
        lines.append(f"  {'frames':<28} {'label':<8} {'frames':>6} {'recall':>7} {'precision':>9} {'box F1':>7}")
        for group in ("trained_scenes_held_back", "unseen_clips"):
            if group not in agr:
                continue
            for label in PRODUCT_LABELS:
                m = agr[group]["labels"][label]
                lines.append(f"  {group:<28} {label:<8} {agr[group]['frames']:>6} {_num(m['presence_recall']):>7} "
                             f"{_num(m['presence_precision']):>9} {_num(m['box_f1_iou50']):>7}"
                             + (f"  n/a: {m['presence_note']}" if m.get("presence_note") else ""))
    if result.get("shipped"):
        lines.append(f"\nShipped variant: {result['shipped']}")
    return "\n".join(lines)
