"""Distil the teacher into the student: pseudo-label, train (or fine-tune), calibrate, export, quantize.

`train_student` is the one entry point; `edge-agent models train` and `edge-agent models finetune`
call it. Every figure it writes into the manifest is measured on frames it never trained on.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from contracts.labels import PRODUCT_LABELS
from models.exceptions import ModelError
from models.manifest import load_manifest
from models.runtime import load_detector
from models.student.config import TrainConfig
from models.student.data import ClipData, Split, pseudo_label_clip, resolve_clip, temporal_split
from models.student.derived import trainable_base
from models.student.export import export_variants
from models.student.net import StudentNet
from models.student.targets import augment, build_targets
from models.teacher.build import ensure_teacher

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    clips: list[ClipData] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    held_out: list[bool] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def frames(self, part: str) -> list[tuple[int, int]]:
        """(clip index, frame index) pairs of one split part: train, calib or held."""
        return [(c, int(i)) for c, s in enumerate(self.splits) for i in getattr(s, part)]

    def describe(self) -> list[dict]:
        return [
            {"clip": c.name, "frames": len(c), "fps": round(c.fps, 2), "held_out": h,
             "train": len(s.train), "calib": len(s.calib), "held_back": len(s.held)}
            for c, s, h in zip(self.clips, self.splits, self.held_out, strict=True)
        ]


def build_dataset(cfg: TrainConfig, teacher_manifest: Path, threads: int | None = None) -> Dataset:
    teacher = load_detector(teacher_manifest, threads=threads, conf_threshold=cfg.pseudo_label_min_score)
    store_wh = (cfg.input_width * 2, cfg.input_height * 2)
    data = Dataset()
    for name in cfg.clips:
        path = resolve_clip(name)
        if path is None:
            data.skipped[name] = "not found in the fetch cache or the shared footage folder"
            log.warning("skipping clip %s: %s", name, data.skipped[name])
            continue
        clip = pseudo_label_clip(path, teacher, store_wh, cfg.pseudo_label_min_score)
        held_out = name in cfg.held_out_clips
        data.clips.append(clip)
        data.held_out.append(held_out)
        data.splits.append(temporal_split(len(clip), clip.fps, cfg.train_fraction, cfg.calib_fraction,
                                          cfg.gap_seconds, held_out))
    if not data.frames("train"):
        raise ModelError("no training frames: every configured clip is missing or held out "
                         f"(skipped: {data.skipped}); run `edge-agent models fetch` or fix `clips`")
    return data


def _seed(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _batch(data: Dataset, items: list[tuple[int, int]], cfg: TrainConfig, rng: np.random.Generator):
    in_wh = (cfg.input_width, cfg.input_height)
    images, heats, boxes_t, weights, n_boxes = [], [], [], [], 0
    for c, i in items:
        clip = data.clips[c]
        boxes, scores, labels = clip.targets(i)
        image, moved, keep = augment(clip.frames[i], boxes, in_wh, rng, cfg.zoom_probability)
        heat, box_t, box_w = build_targets(moved[keep], scores[keep], labels[keep], in_wh)
        n_boxes += int(keep.sum())
        images.append(image[:, :, ::-1])  # BGR -> RGB, as the runtime's blobFromImages(swapRB=True)
        heats.append(heat)
        boxes_t.append(box_t)
        weights.append(box_w)
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))).float() / 255.0
    targets = (torch.from_numpy(np.stack(heats)), torch.from_numpy(np.stack(boxes_t)),
               torch.from_numpy(np.stack(weights)))
    return x, targets, n_boxes


def distillation_loss(logits, log_dist, heat_t, box_t, box_w, n_boxes: int):
    """Quality focal loss on the soft heatmap (targets are teacher scores) + weighted L1 on log-boxes."""
    p = torch.sigmoid(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, heat_t, reduction="none")
    heat_loss = (bce * (p - heat_t).abs().pow(2)).sum() / max(1, n_boxes)
    box_loss = ((log_dist - box_t).abs().sum(dim=1) * box_w).sum() / box_w.sum().clamp(min=1.0)
    return heat_loss + box_loss, heat_loss.detach(), box_loss.detach()


def train_student(cfg: TrainConfig, out_dir: Path, init_from: Path | None = None, name: str = "student",
                  version: str = "1.0.0", progress: bool = True, data: Dataset | None = None,
                  extra_training: dict | None = None) -> dict:
    """Train (or fine-tune from `init_from`, a student manifest) and write the models and manifests.
    `data` replaces the config's clips (per-camera specialization trains on collected records)."""
    started = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = _seed(cfg.seed)
    teacher_manifest = ensure_teacher()
    if data is None:
        data = build_dataset(cfg, teacher_manifest)
    net = StudentNet()
    if init_from is not None:
        parent = load_manifest(trainable_base(init_from))
        checkpoint = parent.model_path.parent / parent.training.get("checkpoint", "")
        if not checkpoint.is_file():
            raise ModelError(f"cannot fine-tune from {init_from}: its checkpoint {checkpoint} is missing")
        net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    train_items = data.frames("train")
    per_clip: dict[int, list[tuple[int, int]]] = {}
    for item in train_items:
        per_clip.setdefault(item[0], []).append(item)
    steps_per_epoch = max(1, sum(min(len(v), cfg.max_frames_per_clip) for v in per_clip.values()) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, cfg.learning_rate,
                                                   total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    history = []
    bar = tqdm(range(cfg.epochs), desc="training student", unit="epoch", disable=not progress)
    for _epoch in bar:
        net.train()
        epoch_items = []
        for items in per_clip.values():
            picks = rng.permutation(len(items))[: cfg.max_frames_per_clip]
            epoch_items += [items[k] for k in picks]
        order = rng.permutation(len(epoch_items))
        totals = np.zeros(3)
        for step in range(steps_per_epoch):
            chunk = [epoch_items[k] for k in order[step * cfg.batch_size: (step + 1) * cfg.batch_size]]
            if not chunk:
                break
            x, targets, n_boxes = _batch(data, chunk, cfg, rng)
            logits, log_dist = net(x)
            loss, heat_loss, box_loss = distillation_loss(logits, log_dist, *targets, n_boxes)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            totals += [loss.item(), heat_loss.item(), box_loss.item()]
        mean = totals / steps_per_epoch
        history.append({"loss": round(mean[0], 4), "heat": round(mean[1], 4), "box": round(mean[2], 4)})
        bar.set_postfix(loss=f"{mean[0]:.3f}", heat=f"{mean[1]:.3f}", box=f"{mean[2]:.3f}")
    net.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    training = {
        "config": cfg.model_dump(),
        "teacher": load_manifest(teacher_manifest).name,
        "teacher_sha256": load_manifest(teacher_manifest).sha256,
        "data": data.describe(),
        "skipped_clips": data.skipped,
        "fine_tuned_from": str(init_from) if init_from else None,
        "loss_history": history,
        "train_seconds": round(time.time() - started, 1),
        **(extra_training or {}),
    }
    result = export_variants(net, data, cfg, out_dir, name, version, training)
    (out_dir / "training-report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def recalibrate(student_dir: Path) -> dict:
    """Re-run calibration, thresholds, export, quantization and held-back metrics for a trained student
    (its checkpoint and recorded config), without training: after a change to the reference threshold
    or to how thresholds are chosen."""
    manifest = load_manifest(student_dir / "manifest.json")
    checkpoint = manifest.model_path.parent / manifest.training.get("checkpoint", "")
    if not checkpoint.is_file():
        raise ModelError(f"cannot recalibrate {student_dir}: its checkpoint {checkpoint} is missing")
    cfg = TrainConfig.model_validate(manifest.training["config"])
    _seed(cfg.seed)
    net = StudentNet()
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    net.eval()
    data = build_dataset(cfg, ensure_teacher())
    training = {k: v for k, v in manifest.training.items() if k != "checkpoint"}
    training["recalibrated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    name = manifest.name.rsplit("-", 1)[0]
    result = export_variants(net, data, cfg, student_dir, name, manifest.version, training)
    (student_dir / "training-report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["train_student", "recalibrate", "build_dataset", "Dataset", "PRODUCT_LABELS"]
