"""Export the trained student to ONNX (fp32 and static INT8), calibrate each, measure, and ship one."""

from __future__ import annotations

import logging
import shutil
import statistics
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from contracts.labels import PRODUCT_LABELS
from models.manifest import Manifest, Platt, manifest_for
from models.quantize import quantize_int8
from models.runtime import load_detector
from models.student.evaluate import (
    best_threshold,
    calibration_pairs,
    fit_platt,
    held_back_metrics,
    run_on,
)
from models.student.net import STRIDE, ExportWrapper

log = logging.getLogger(__name__)
OUTPUT_NAMES = ["heatmap", "peaks", "boxes"]


def export_onnx(net: torch.nn.Module, path: Path, in_wh: tuple[int, int]) -> None:
    dummy = torch.zeros(1, in_wh[1], in_wh[0], 3, dtype=torch.uint8)
    axes = {name: {0: "batch"} for name in ["images", *OUTPUT_NAMES]}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but deterministic and dependency-free for this graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(ExportWrapper(net).eval(), (dummy,), str(path), input_names=["images"],
                          output_names=OUTPUT_NAMES, dynamic_axes=axes, opset_version=17, dynamo=False)


def median_latency_ms(manifest_path: Path, frame: np.ndarray, runs: int = 30) -> float:
    detector = load_detector(manifest_path, threads=1)
    detector.detect([frame])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        detector.detect([frame])
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def export_variants(net, data, cfg, out_dir: Path, name: str, version: str, training: dict) -> dict:
    in_wh = (cfg.input_width, cfg.input_height)
    checkpoint = out_dir / "student.pt"
    torch.save(net.state_dict(), checkpoint)
    fp32 = out_dir / "student-fp32.onnx"
    export_onnx(net, fp32, in_wh)
    calib_items = data.frames("calib")
    # A camera's first records give only a few calibration frames (specialization): too few to fit scores
    # on, so the newest training frames join them. A generic training run has hundreds and is unchanged.
    calib_source = calib_items if len(calib_items) >= 16 else calib_items + data.frames("train")[-64:]
    rng = np.random.default_rng(cfg.seed)
    quant_items = [calib_source[k] for k in rng.permutation(len(calib_source))[:64]]
    int8 = out_dir / "student-int8.onnx"
    # the student's graph takes uint8 NHWC frames at its input size
    quantize_int8(fp32, int8, (cv2.resize(data.clips[c].frames[i], in_wh, interpolation=cv2.INTER_LINEAR)[None]
                               for c, i in quant_items))

    report: dict = {"variants": {}}
    probe_frame = data.clips[0].frames[0]
    for precision, path in (("fp32", fp32), ("int8", int8)):
        base = dict(
            name=f"{name}-{precision}", version=version, kind="student", precision=precision,
            input={"name": "images", "width": in_wh[0], "height": in_wh[1], "layout": "NHWC", "dtype": "uint8",
                   "color": "BGR", "scale": 1.0},
            output={"format": "framesieve-centernet", "class_names": list(PRODUCT_LABELS), "stride": STRIDE},
            label_groups={label: [label] for label in PRODUCT_LABELS}, nms_iou=0.45,
            training={**training, "checkpoint": checkpoint.name},
        )
        manifest_path = out_dir / f"manifest-{precision}.json"
        manifest_for(path, **base).save(manifest_path)
        raw_detector = load_detector(manifest_path, threads=2, conf_threshold=0.05)
        preds, refs = run_on(raw_detector, data, calib_source)
        calibration, thresholds = {}, {}
        for label in PRODUCT_LABELS:
            raw, hit = calibration_pairs(preds, refs, label, cfg.reference_threshold)
            a, b = fit_platt(raw, hit)
            calibration[label] = Platt(a=a, b=b)
        manifest: Manifest = manifest_for(path, **base, calibration=calibration)
        manifest.save(manifest_path)
        calibrated = load_detector(manifest_path, threads=2, conf_threshold=0.05)
        preds, _ = run_on(calibrated, data, calib_source)
        for label in PRODUCT_LABELS:
            thresholds[label] = best_threshold(preds, refs, label, cfg.reference_threshold)
        manifest.thresholds = thresholds
        manifest.save(manifest_path)
        detector = load_detector(manifest_path, threads=2)
        metrics = held_back_metrics(detector, data, thresholds, cfg.reference_threshold)
        metrics["latency_ms_1_thread"] = round(median_latency_ms(manifest_path, probe_frame), 3)
        metrics["parameters"] = sum(p.numel() for p in net.parameters())
        metrics["file_bytes"] = path.stat().st_size
        manifest.metrics = metrics
        manifest.save(manifest_path)
        report["variants"][precision] = {"manifest": manifest_path.name, "metrics": metrics,
                                         "thresholds": thresholds}
        log.info("%s: %s", precision, metrics.get("trained_scenes_held_back"))

    chosen = choose_variant(report["variants"])
    shutil.copyfile(out_dir / f"manifest-{chosen}.json", out_dir / "manifest.json")
    report["shipped"] = chosen
    return report


def _person(metrics: dict, key: str) -> float:
    return metrics.get("trained_scenes_held_back", {}).get("labels", {}).get("person", {}).get(key) or 0.0


def choose_variant(variants: dict) -> str:
    """INT8 only when it is faster and costs no more than 0.01 of person recall or precision."""
    fp, q = variants["fp32"]["metrics"], variants["int8"]["metrics"]
    faster = q["latency_ms_1_thread"] < 0.9 * fp["latency_ms_1_thread"]
    same = all(_person(q, k) >= _person(fp, k) - 0.01 for k in ("presence_recall", "presence_precision"))
    return "int8" if faster and same else "fp32"
