"""The generic student derived from the teacher's own weights: YOLOv3-tiny at a reduced input.

Why this family: a detector trained from scratch on eight short clips learns those clips; on twelve
scenes it never saw it missed a quarter of the people and half of the vehicles while being confident
(issue 12). The teacher's COCO features transfer. Running them at a smaller input (320x192 instead of
416x416: about a third of the pixels) with the heads cut to the classes the product reports gives a
student that needs no training at all, so every scene is one it never trained on; only the score
calibration (two numbers per label) and thresholds are fitted, on calibration scenes.

It is built with numpy + onnx from the sha256-pinned Darknet files (no PyTorch), so a gateway derives
it at install time (`edge-agent models fetch`) in seconds, and it is bit-for-bit the same on every
machine for the same recipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper

from contracts.labels import DEFAULT_COCO_GROUPS, PRODUCT_LABELS
from models.exceptions import ModelError
from models.fetch import fetch_teacher
from models.manifest import Manifest, Platt, intact, load_manifest, manifest_for
from models.paths import CENTERNET_STUDENT_MANIFEST, cache_dir
from models.quantize import quantize_int8
from models.runtime import load_detector
from models.student.evaluate import best_threshold, calibration_pairs, fit_platt
from models.student.scenes import Scene
from models.teacher.build import TEACHER_THRESHOLD
from models.teacher.darknet import convert_darknet

FAMILY = "teacher-derived"
DEFAULT_INPUT_WH = (320, 192)
KEEP_CLASSES = [c for label in PRODUCT_LABELS for c in DEFAULT_COCO_GROUPS[label]]
# The recipe's calibration as committed (fitted by `edge-agent models derive` on the footage at hand).
RECIPE = Path(__file__).resolve().parent.parent / "zoo" / "derived" / "recipe.json"


def trainable_base(manifest_path: Path) -> Path:
    """The student a fine-tune starts from: the manifest itself, or for the teacher-derived student (no
    small trainable checkpoint) the shipped CenterNet, which a camera's own student must then beat."""
    if load_manifest(manifest_path).training.get("family") == FAMILY:
        return CENTERNET_STUDENT_MANIFEST
    return Path(manifest_path)


def derived_dir() -> Path:
    return cache_dir() / "models" / "student-derived"


def _cfg_at(cfg_text: str, width: int, height: int) -> str:
    """The Darknet cfg with its [net] input size replaced (the network is fully convolutional)."""
    net, sep, rest = cfg_text.partition("\n[")
    net = re.sub(r"(?m)^\s*width\s*=.*$", f"width={width}", net)
    net = re.sub(r"(?m)^\s*height\s*=.*$", f"height={height}", net)
    return net + sep + rest


def derive_onnx(out_path: Path, input_wh: tuple[int, int] = DEFAULT_INPUT_WH,
                keep_classes: Sequence[str] = KEEP_CLASSES) -> dict:
    """Write the teacher's network at `input_wh` with heads cut to `keep_classes`; returns the output
    spec (heads with anchors, class names) for the manifest."""
    width, height = input_wh
    if width % 32 or height % 32 or width < 64 or height < 64:
        raise ModelError(f"input {width}x{height}: width and height must be multiples of 32, at least 64")
    files = fetch_teacher()
    names = [n.strip() for n in files.names.read_text().splitlines() if n.strip()]
    unknown = [c for c in keep_classes if c not in names]
    if unknown:
        raise ModelError(f"classes {unknown} are not among the teacher's classes ({files.names})")
    class_ids = [names.index(c) for c in keep_classes]
    with tempfile.TemporaryDirectory(prefix="framesieve-derive-") as tmp:
        cfg = Path(tmp) / "net.cfg"
        cfg.write_text(_cfg_at(files.cfg.read_text(), width, height))
        full = Path(tmp) / "full.onnx"
        spec = convert_darknet(cfg, files.weights, full)
        model = onnx.load(full)
    per = 5 + spec["num_classes"]
    inits = {t.name: t for t in model.graph.initializer}
    outputs = {o.name: o for o in model.graph.output}
    for node in model.graph.node:
        head = node.output[0]
        if node.op_type != "Conv" or head not in outputs:
            continue
        anchors = len(next(h for h in spec["heads"] if h["name"] == head)["anchors"])
        keep = [a * per + k for a in range(anchors) for k in [0, 1, 2, 3, 4, *[5 + c for c in class_ids]]]
        for name in node.input[1:]:
            array = numpy_helper.to_array(inits[name])
            inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array[keep]), name))
        outputs[head].type.tensor_type.shape.dim[1].dim_value = len(keep)
    onnx.checker.check_model(model, full_check=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".part")
    onnx.save(model, partial)
    os.replace(partial, out_path)
    return {"format": "yolo-v3-heads", "class_names": list(keep_classes), "heads": spec["heads"]}


def _base_manifest(spec: dict, input_wh: tuple[int, int], precision: str, training: dict) -> dict:
    return dict(
        name=f"student-derived-{precision}", version="2.0.0", kind="student", precision=precision,
        input={"name": "images", "width": input_wh[0], "height": input_wh[1], "layout": "NCHW",
               "dtype": "float32", "color": "RGB", "scale": 1 / 255},
        output=spec, label_groups={label: list(DEFAULT_COCO_GROUPS[label]) for label in PRODUCT_LABELS},
        nms_iou=0.45, training={"family": FAMILY, **training},
    )


def calibrate(manifest_path: Path, scenes: Sequence[Scene]) -> tuple[dict[str, Platt], dict[str, float]]:
    """Platt scaling per label and box-F1 thresholds, fitted on `scenes` (never the scene measured)."""
    frames = [f for s in scenes for f in s.frames]
    refs = [r for s in scenes for r in s.refs]
    raw = load_detector(manifest_path, threads=2, conf_threshold=0.02)
    preds = [d for start in range(0, len(frames), 8) for d in raw.detect(frames[start:start + 8])]
    calibration = {}
    for label in PRODUCT_LABELS:
        a, b = fit_platt(*calibration_pairs(preds, refs, label, TEACHER_THRESHOLD))
        calibration[label] = Platt(a=a, b=b)
    manifest = load_manifest(manifest_path)
    manifest.calibration = calibration
    manifest.save(manifest_path)
    calibrated = load_detector(manifest_path, threads=2, conf_threshold=0.02)
    preds = [d for start in range(0, len(frames), 8) for d in calibrated.detect(frames[start:start + 8])]
    thresholds = {label: best_threshold(preds, refs, label, TEACHER_THRESHOLD) for label in PRODUCT_LABELS}
    return calibration, thresholds


def build_derived(out_dir: Path, scenes: Sequence[Scene], input_wh: tuple[int, int] = DEFAULT_INPUT_WH,
                  int8: bool = False, calibration: dict | None = None) -> Path:
    """Derive, calibrate on `scenes` (or apply a recorded `calibration`), write `manifest.json`: the
    INT8 variant when `int8` (static QDQ, calibrated on the scenes' frames), else fp32."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / "student-derived-fp32.onnx"
    spec = derive_onnx(fp32, input_wh)
    if calibration is None:
        training = {"input": list(input_wh), "calibration_scenes": [s.name for s in scenes],
                    "calibration_frames": sum(len(s) for s in scenes)}
    else:  # the recipe's calibration: the manifest names the scenes it was fitted on, not the empty list here
        training = {"input": list(input_wh), "calibration_scenes": calibration["scenes"],
                    "calibration_frames": calibration.get("frames")}
    variants = [("fp32", fp32)]
    if int8:
        path = out_dir / "student-derived-int8.onnx"
        # this graph takes float NCHW RGB in 0..1, as the runtime's blobFromImage makes it
        frames = [f for s in scenes for f in s.frames][:64]
        quantize_int8(fp32, path, (cv2.dnn.blobFromImage(f, 1 / 255, input_wh, swapRB=True, crop=False)
                                   for f in frames))
        variants.append(("int8", path))
    for precision, path in variants:
        manifest_path = out_dir / f"manifest-{precision}.json"
        base = _base_manifest(spec, input_wh, precision, training)
        manifest_for(path, **base).save(manifest_path)
        if calibration is None:
            platt, thresholds = calibrate(manifest_path, scenes)
        else:
            platt = {k: Platt(**v) for k, v in calibration["platt"].items()}
            thresholds = calibration["thresholds"]
        manifest: Manifest = manifest_for(path, **base, calibration=platt, thresholds=thresholds)
        manifest.save(manifest_path)
    chosen = out_dir / f"manifest-{'int8' if int8 else 'fp32'}.json"
    (out_dir / "manifest.json").write_text(chosen.read_text())
    return out_dir / "manifest.json"


def write_recipe(manifest_path: Path, path: Path = RECIPE) -> None:
    """Record a calibration so every gateway derives the same student without the footage."""
    m = load_manifest(manifest_path)
    recipe = {"family": FAMILY, "input": [m.input.width, m.input.height],
              "scenes": m.training.get("calibration_scenes", []),
              "frames": m.training.get("calibration_frames"),
              "platt": {k: v.model_dump() for k, v in m.calibration.items()}, "thresholds": m.thresholds}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recipe, indent=2) + "\n")


def ensure_derived_student(force: bool = False) -> Path:
    """The derived student in the cache, built from the committed recipe when missing."""
    manifest = derived_dir() / "manifest.json"
    if not force and intact(manifest, "the derived student"):
        return manifest
    if not RECIPE.is_file():
        raise ModelError(f"the derived student's recipe {RECIPE} is missing; reinstall FrameSieve or run "
                         f"`edge-agent models derive` to fit one")
    recipe = json.loads(RECIPE.read_text())
    # Built beside the live one and swapped in only once it loads and verifies: a build killed part way
    # leaves the previous student (or none) in place, never a half-written one.
    final = derived_dir()
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    load_manifest(build_derived(partial, [], tuple(recipe["input"]), calibration=recipe))
    retired = final.with_name(final.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if final.exists():
        final.rename(retired)
    partial.rename(final)
    shutil.rmtree(retired, ignore_errors=True)
    return manifest
