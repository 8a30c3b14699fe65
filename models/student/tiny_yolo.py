"""A student derived from the teacher's own weights: YOLOv3-tiny in PyTorch, channel-pruned.

Eight short clips cannot teach a detector what COCO taught the teacher, so this family starts from the
teacher's pretrained layers and keeps them: every convolution keeps its strongest filters (L1 norm of
the batch-norm-scaled weights, He et al. 2017's criterion) and drops the rest, the heads keep only the
COCO classes the product reports, and distillation on the teacher's own outputs (train.py) repairs
what pruning cost. The output is the teacher's format ("yolo-v3-heads"), so the runtime decodes both
with one decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.exceptions import ModelError
from models.teacher.darknet import (
    LEAKY_ALPHA,
    ConvWeights,
    _fold_bn,
    _int,
    _ints,
    _route_sources,
    load_weights,
    parse_cfg,
)

BN_EPS = 1e-6  # as the teacher's converter folds batch norm (OpenCV's Darknet importer)


@dataclass(frozen=True)
class Head:
    """One [yolo] head of the pruned student: its anchors (input pixels) and kept COCO class ids."""

    layer: int
    anchors: list[list[int]]
    class_ids: list[int]


class TinyYolo(nn.Module):
    """A YOLOv3-tiny-shaped network over [net]-less Darknet sections with per-conv widths.

    `forward` takes RGB float images in 0..1 (N, 3, H, W) and returns each head's raw outputs
    (N, A*(5+C), h, w), as the teacher's ONNX graph does.
    """

    def __init__(self, sections: list[dict[str, Any]], widths: dict[int, int], in_channels: int = 3):
        super().__init__()
        self.sections = [dict(s) for s in sections]
        self.convs = nn.ModuleDict()
        self.head_layers: list[int] = []
        channels: list[int] = []
        c = in_channels
        for i, s in enumerate(self.sections):
            kind = s["_type"]
            if kind == "convolutional":
                size = _int(s, "size", 1)
                out = widths[i]
                # Batch norm is folded into the convolution (as the teacher's ONNX graph does): a
                # distilled fine-tune at a small learning rate needs no BN, and the export is simpler.
                layers: list[nn.Module] = [nn.Conv2d(c, out, size, _int(s, "stride", 1),
                                                     size // 2 if _int(s, "pad", 0) else 0)]
                if s.get("activation") == "leaky":
                    layers.append(nn.LeakyReLU(LEAKY_ALPHA, inplace=True))
                self.convs[str(i)] = nn.Sequential(*layers)
                c = out
            elif kind == "route":
                c = sum(channels[j] for j in _route_sources([{}] + self.sections, i))
            elif kind == "yolo":
                self.head_layers.append(i - 1)
            channels.append(c)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        heads: list[torch.Tensor] = []
        for i, s in enumerate(self.sections):
            kind = s["_type"]
            if kind == "convolutional":
                x = self.convs[str(i)](x)
            elif kind == "maxpool":
                size, stride = _int(s, "size", 1), _int(s, "stride", 1)
                pad = _int(s, "padding", size - 1)
                if pad:
                    begin, end = pad // 2, pad - pad // 2
                    x = F.pad(x, (begin, end, begin, end), value=float("-inf"))
                x = F.max_pool2d(x, size, stride)
            elif kind == "upsample":
                x = F.interpolate(x, scale_factor=float(_int(s, "stride", 2)), mode="nearest")
            elif kind == "route":
                x = torch.cat([outs[j] for j in _route_sources([{}] + self.sections, i)], dim=1)
            elif kind == "yolo":
                heads.append(x)
            outs.append(x)
        return heads


@dataclass
class Pruned:
    """A pruned student, its heads, and for each convolution the teacher filters it kept (in order),
    which distillation needs to compare a student layer with its teacher layer."""

    net: TinyYolo
    heads: list[Head]
    kept: dict[int, np.ndarray]


def _assign(conv: nn.Sequential, weights: ConvWeights, out_idx: np.ndarray, in_idx: np.ndarray) -> None:
    folded, bias = _fold_bn(weights)
    conv[0].weight.data.copy_(torch.from_numpy(np.ascontiguousarray(folded[out_idx][:, in_idx])))
    conv[0].bias.data.copy_(torch.from_numpy(np.ascontiguousarray(bias[out_idx])))


def _importance(weights: ConvWeights) -> np.ndarray:
    """L1 norm of each filter as batch norm scales it (the filter's real weight in the output)."""
    l1 = np.abs(weights.weights).reshape(len(weights.weights), -1).sum(axis=1)
    if weights.scales is None:
        return l1
    return l1 * np.abs(weights.scales) / np.sqrt(weights.rolling_var + BN_EPS)


def build_pruned(cfg_path, weights_path, keep_ratio: float, class_names: list[str],
                 keep_classes: list[str], min_width: int = 8) -> Pruned:
    """The teacher's network with `keep_ratio` of every hidden convolution's filters (the strongest,
    rounded to a multiple of 8) and heads that predict only `keep_classes`; weights copied across.
    keep_ratio 1 with every class gives the teacher itself."""
    if not 0 < keep_ratio <= 1:
        raise ModelError(f"keep_ratio {keep_ratio} must be in (0, 1]")
    layers = parse_cfg(cfg_path)
    params = load_weights(weights_path, layers)
    body = layers[1:]
    index = {n: k for k, n in enumerate(class_names)}
    missing = [c for c in keep_classes if c not in index]
    if missing:
        raise ModelError(f"classes {missing} are not among the teacher's {len(class_names)} classes")
    class_ids = [index[c] for c in keep_classes]
    heads_at = {i - 1 for i, s in enumerate(body) if s["_type"] == "yolo"}

    kept_out: dict[int, np.ndarray] = {}  # conv layer -> the teacher's filters it keeps, in order
    heads: list[Head] = []
    for i, s in enumerate(body):
        if s["_type"] != "convolutional":
            continue
        w = params[i]
        assert w is not None
        if i in heads_at:
            yolo = body[i + 1]
            per, mask, anchors = 5 + _int(yolo, "classes"), _ints(yolo, "mask"), _ints(yolo, "anchors")
            kept_out[i] = np.array([a * per + k for a in range(len(mask))
                                    for k in [0, 1, 2, 3, 4, *[5 + c for c in class_ids]]])
            heads.append(Head(i, [[anchors[2 * m], anchors[2 * m + 1]] for m in mask], class_ids))
        elif keep_ratio < 1:
            k = max(min_width, int(round(len(w.weights) * keep_ratio / 8)) * 8)
            kept_out[i] = np.sort(np.argsort(-_importance(w), kind="stable")[:k])
        else:
            kept_out[i] = np.arange(len(w.weights))
    widths = {i: len(k) for i, k in kept_out.items()}
    net = TinyYolo(body, widths)
    # Copy weights: a conv's inputs are the kept channels of whatever feeds it, in order.
    feed = _teacher_feeds(layers, kept_out)
    for i, keep in kept_out.items():
        w = params[i]
        assert w is not None
        _assign(net.convs[str(i)], w, keep, feed[i])
    return Pruned(net, heads, kept_out)


def _teacher_feeds(layers: list[dict[str, Any]], kept_out: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """For each conv, the teacher's input-channel indices that survive pruning, in the student's order."""
    body = layers[1:]
    shapes_ch: list[int] = []
    surviving: list[np.ndarray] = []  # per layer: teacher channel ids of its (pruned) output
    in_ch = _int(layers[0], "channels", 3)
    current = np.arange(in_ch)
    current_width = in_ch
    feeds: dict[int, np.ndarray] = {}
    for i, s in enumerate(body):
        kind = s["_type"]
        if kind == "convolutional":
            feeds[i] = current
            current = kept_out[i]
            current_width = _int(s, "filters")
        elif kind == "route":
            offset, parts, width = 0, [], 0
            for j in _route_sources(layers, i):
                parts.append(surviving[j] + offset)
                offset += shapes_ch[j]
                width += shapes_ch[j]
            current = np.concatenate(parts)
            current_width = width
        surviving.append(current)
        shapes_ch.append(current_width)
    return feeds


@torch.no_grad()
def reconstruct(student: Pruned, teacher: TinyYolo, images: torch.Tensor, positions: int = 96,
                ridge: float = 1e-2, seed: int = 0, progress=None) -> list[float]:
    """Refit every pruned convolution, in order, by least squares so that its output on `images`
    matches the teacher's same filters given the student's own (already refitted) inputs (He et al.
    2017's reconstruction step). Closed form, a few seconds per layer; returns each layer's relative
    error after the fit."""
    gen = torch.Generator().manual_seed(seed)
    errors = []
    convs = [int(k) for k in student.net.convs]
    head_layers = {h.layer for h in student.heads}
    for i in (progress(convs) if progress else convs):
        s_conv, t_conv = student.net.convs[str(i)][0], teacher.convs[str(i)][0]
        captured: dict[str, torch.Tensor] = {}
        h1 = s_conv.register_forward_hook(lambda m, inp, out, c=captured: c.__setitem__("x", inp[0]))
        h2 = t_conv.register_forward_hook(lambda m, inp, out, c=captured: c.__setitem__("y", out))
        k, pad, stride = s_conv.kernel_size[0], s_conv.padding[0], s_conv.stride[0]
        xtx = torch.zeros(s_conv.in_channels * k * k + 1, s_conv.in_channels * k * k + 1, dtype=torch.float64)
        xty = torch.zeros(xtx.shape[0], s_conv.out_channels, dtype=torch.float64)
        yy = 0.0
        keep = torch.from_numpy(student.kept[i])
        for start in range(0, len(images), 8):
            batch = images[start:start + 8]
            student.net(batch)
            teacher(batch)
            x, y = captured["x"], captured["y"][:, keep]
            cols = F.unfold(x, k, padding=pad, stride=stride)  # (N, cin*k*k, L)
            n, d, L = cols.shape
            count = L if i in head_layers else min(positions, L)
            pick = torch.randint(0, L, (n, count), generator=gen) if count < L else torch.arange(L).expand(n, L)
            xs = torch.gather(cols, 2, pick[:, None, :].expand(n, d, pick.shape[1])).permute(0, 2, 1).reshape(-1, d)
            ys = torch.gather(y.flatten(2), 2, pick[:, None, :].expand(n, y.shape[1], pick.shape[1]))
            ys = ys.permute(0, 2, 1).reshape(-1, y.shape[1])
            xs = torch.cat([xs, torch.ones(len(xs), 1)], 1).double()
            w = torch.ones(len(xs), 1, dtype=torch.float64)
            if i in head_layers:
                # Most cells of a head are empty background; weight the few cells where the teacher sees
                # an object, or their logits would be fitted least.
                obj = ys[:, 4::ys.shape[1] // 3].max(dim=1).values
                w = 1.0 + 50.0 * torch.sigmoid(obj.double() + 2.0)[:, None]
            xtx += xs.T @ (xs * w)
            xty += xs.T @ (ys.double() * w)
            yy += float((ys.double() ** 2 * w).sum())
        h1.remove()
        h2.remove()
        scale = xtx.diagonal().mean()
        sol = torch.linalg.solve(xtx + ridge * scale * torch.eye(len(xtx), dtype=torch.float64), xty)
        residual = yy - 2 * float((sol * xty).sum()) + float((sol * (xtx @ sol)).sum())
        errors.append(max(0.0, residual) / max(yy, 1e-12))
        s_conv.weight.copy_(sol[:-1].T.reshape(s_conv.weight.shape).float())
        s_conv.bias.copy_(sol[-1].float())
    return errors
