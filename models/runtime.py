"""Run a manifest-described ONNX detector: session, pre-processing, decoding, NMS, calibration.

Decoders are registered by the manifest's `output.format`, so the teacher can be any ONNX detector
with a declared output format and the rest of FrameSieve does not care which.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from contracts.detections import Detections
from contracts.labels import build_class_map
from models.exceptions import ModelError, ModelInputError
from models.manifest import Manifest, load_manifest
from models.yolo import decode_yolo, nms_per_class


def create_session(model_path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    available = ort.get_available_providers()
    chosen = [p for p in (providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]) if p in available]
    try:
        return ort.InferenceSession(str(model_path), options, providers=chosen or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
        raise ModelError(f"onnxruntime cannot load {model_path}: {exc}") from exc


def check_frame(frame: object, index: int = 0) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{type(frame).__name__} {getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}"
        raise ModelInputError(
            f"frame {index} is {desc.strip()}; a detector takes BGR uint8 images of shape (H, W, 3), "
            f"as cv2.imread / VideoCapture.read return them"
        )
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ModelInputError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]} px; at least 8x8 is needed")
    return frame


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Detector(ABC):
    """A detector over BGR frames of any size; boxes come back in each frame's own pixels."""

    def __init__(self, manifest: Manifest, threads: int | None = None, providers: Sequence[str] | None = None,
                 conf_threshold: float = 0.1):
        self.manifest = manifest
        self.conf_threshold = conf_threshold
        self.session = create_session(manifest.model_path, threads, providers)
        spec = manifest.input
        self.input_wh = (spec.width, spec.height)
        declared = self.session.get_inputs()[0]
        if declared.name != spec.name:
            raise ModelError(f"{manifest.model_path} has input {declared.name!r}, manifest says {spec.name!r}")
        self.class_to_label = build_class_map(manifest.output.class_names, manifest.label_groups)
        self._label_of = np.array([self.class_to_label.get(i, "") for i in range(len(manifest.output.class_names))])
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.label_groups)

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        frames = [check_frame(f, i) for i, f in enumerate(frames)]
        spec = self.manifest.input
        if spec.dtype == "uint8":
            batch = np.empty((len(frames), spec.height, spec.width, 3), np.uint8)
            for i, frame in enumerate(frames):
                cv2.resize(frame, self.input_wh, dst=batch[i], interpolation=cv2.INTER_LINEAR)
            return batch
        return cv2.dnn.blobFromImages(frames, spec.scale, self.input_wh, swapRB=spec.color == "RGB", crop=False)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if len(frames) == 0:
            return []
        blob = self.preprocess(frames)
        outputs = self.session.run(self.output_names, {self.manifest.input.name: blob})
        results = []
        w_in, h_in = self.input_wh
        for i, (boxes, scores, class_ids) in enumerate(self.decode(outputs)):
            labels = self._label_of[class_ids]
            calibrated = self.calibrate(scores, labels)
            # Drop what callers would never see before NMS: a box below the threshold can only ever be
            # suppressed, never suppress one above it, so the result is the same and NMS has less to do.
            sel = (labels != "") & (calibrated >= self.conf_threshold)
            boxes, scores, calibrated, labels = boxes[sel], scores[sel], calibrated[sel], labels[sel]
            keep = nms_per_class(boxes, scores, class_ids[sel], self.manifest.nms_iou)  # raw scores: no ties
            h, w = frames[i].shape[:2]
            xyxy = boxes[keep] * np.array([w / w_in, h / h_in, w / w_in, h / h_in], np.float32)
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
            results.append(Detections(xyxy, calibrated[keep], labels[keep]))
        return results

    def calibrate(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if not self.manifest.calibration or len(scores) == 0:
            return scores
        out = scores.astype(np.float32).copy()
        for label, platt in self.manifest.calibration.items():
            mask = labels == label
            if mask.any():
                out[mask] = 0.5 * (1 + np.tanh(0.5 * (platt.a * _logit(scores[mask]) + platt.b)))  # = sigmoid
        return out

    @abstractmethod
    def decode(self, outputs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Raw outputs -> per image (boxes xyxy in model-input pixels, raw scores, class ids)."""


class YoloHeadsDetector(Detector):
    def decode(self, outputs):
        return decode_yolo(outputs, self.manifest.output.heads, self.input_wh, self.conf_threshold)


class CenterNetDetector(Detector):
    """The student's format: outputs `heatmap` (N, C, h, w) in [0, 1], `peaks` (its 3x3 max-pool) and
    `boxes` (N, 4, h, w): left, top, right, bottom distances in input pixels from each cell centre."""

    def decode(self, outputs):
        named = dict(zip(self.output_names, outputs, strict=True))
        heat, peaks, ltrb = named["heatmap"], named["peaks"], named["boxes"]
        stride = self.manifest.output.stride or 8
        results = []
        for b in range(heat.shape[0]):
            cls, ys, xs = np.nonzero((heat[b] >= self.conf_threshold) & (heat[b] >= peaks[b]))
            cx = (xs.astype(np.float32) + 0.5) * stride
            cy = (ys.astype(np.float32) + 0.5) * stride
            d = ltrb[b][:, ys, xs]
            boxes = np.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], axis=1).astype(np.float32)
            results.append((boxes, heat[b][cls, ys, xs].astype(np.float32), cls.astype(np.int64)))
        return results


DECODERS: dict[str, Callable[..., Detector]] = {
    "yolo-v3-heads": YoloHeadsDetector,
    "framesieve-centernet": CenterNetDetector,
}


def load_detector(manifest_path: Path | str, threads: int | None = None,
                  providers: Sequence[str] | None = None, conf_threshold: float = 0.1) -> Detector:
    """Load a model through its manifest (sha256 verified) with the decoder its format declares."""
    manifest = load_manifest(manifest_path)
    return DECODERS[manifest.output.format](manifest, threads, providers, conf_threshold)


def presence_threshold(manifest: Manifest, label: str, default: float = 0.5) -> float:
    value = manifest.thresholds.get(label, default)
    return default if math.isnan(value) else value
