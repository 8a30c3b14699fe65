"""Model manifests: what a model file is, how to feed it, how to read its output, and how good it is.

A manifest sits beside its ONNX file. Loading a model goes through `load_manifest`, which refuses a
model whose sha256 differs from the manifest's: a tampered or half-copied model never runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.exceptions import ChecksumMismatch, ManifestError
from models.fetch import sha256_of


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """float32 NCHW: the runtime normalises (x * scale, channel order `color`). uint8 NHWC BGR: the
    graph normalises itself, so the edge hands it resized frames with no per-pixel work in Python."""

    name: str = "images"
    width: int = Field(gt=0, le=4096)
    height: int = Field(gt=0, le=4096)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "uint8"] = "float32"
    color: Literal["RGB", "BGR"] = "RGB"
    scale: float = Field(default=1 / 255, gt=0)


class OutputSpec(_Strict):
    """How to decode the raw outputs. `format` selects the decoder registered in models.runtime."""

    format: Literal["yolo-v3-heads", "framesieve-centernet"]
    class_names: list[str]
    heads: list[dict[str, Any]] = Field(default_factory=list)  # yolo: name, stride, anchors
    stride: int | None = None  # centernet: output stride in input pixels


class Platt(_Strict):
    """Calibrated probability = sigmoid(a * logit(raw) + b), fitted on frames held out of training."""

    a: float = 1.0
    b: float = 0.0


class Manifest(_Strict):
    name: str
    version: str
    kind: Literal["teacher", "student"]
    file: str  # ONNX file, relative to the manifest
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    precision: Literal["fp32", "int8"] = "fp32"
    input: InputSpec
    output: OutputSpec
    label_groups: dict[str, list[str]]  # product label -> model class names
    calibration: dict[str, Platt] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)  # per label: presence/box threshold
    nms_iou: float = Field(default=0.45, gt=0, le=1)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    # Set by load_manifest, not stored.
    _path: Path | None = None

    @property
    def path(self) -> Path | None:
        """The manifest file this was loaded from."""
        return self._path

    @property
    def specialized_for(self) -> str | None:
        """The camera a specialized student was fine-tuned for (None for a generic one)."""
        return (self.training.get("specialization") or {}).get("camera")

    @property
    def model_path(self) -> Path:
        base = self._path.parent if self._path else Path(".")
        return base / self.file

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_text(json.dumps(self.model_dump(), indent=2) + "\n")
        os.replace(tmp, path)
        self._path = path


def manifest_for(model_path: Path, **fields: Any) -> Manifest:
    """A manifest for a model file that exists now, with its sha256 filled in."""
    return Manifest(file=Path(model_path).name, sha256=sha256_of(Path(model_path)), **fields)


def load_manifest(path: Path | str, verify: bool = True) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(
            f"model manifest {path} does not exist; for the teacher run `edge-agent models fetch`, "
            f"for a student pass the manifest.json written by `edge-agent models train`."
        )
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ManifestError(f"model manifest {path} is not valid: {exc}") from exc
    manifest._path = path
    model = manifest.model_path
    if not model.is_file():
        raise ManifestError(f"manifest {path} names model file {model}, which does not exist")
    if verify:
        actual = sha256_of(model)
        if actual != manifest.sha256:
            raise ChecksumMismatch(
                f"model {model} has sha256 {actual} but its manifest {path} declares {manifest.sha256}: "
                f"the file was modified or truncated. Refusing to load it; restore the file or "
                f"re-export the model with its manifest."
            )
    return manifest


def intact(path: Path, what: str) -> bool:
    """Whether a cached model is there and verifies against its manifest; a damaged one is logged as about
    to be rebuilt (the caller rebuilds it)."""
    if not path.is_file():
        return False
    try:
        load_manifest(path)
        return True
    except (ManifestError, ChecksumMismatch) as exc:
        logging.getLogger(__name__).warning("rebuilding %s: %s", what, exc)
        return False
