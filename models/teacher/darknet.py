"""Darknet (.cfg + .weights) to ONNX, for the YOLOv3-tiny teacher.

FrameSieve converts the teacher itself (numpy + onnx.helper, no third-party converter) so that what the
cloud runs is reproducible from the pinned upstream files alone. Only the layer types YOLOv3-tiny uses
are supported; anything else is an error, never a silent approximation.

The ONNX graph takes "images" [N, 3, H, W] float32 RGB scaled to 0..1 and returns the raw outputs of the
convolutions that feed each [yolo] layer ("head_0", "head_1", ... in cfg order, before any sigmoid);
decoding and NMS live in `models.yolo`. Numerics follow OpenCV's Darknet importer (the parity
reference): batch norm folded into the convolutions in float32 with epsilon 1e-6.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.exceptions import ModelError
from models.teacher.darknet_cfg import REFETCH_HINT, int_list, int_value, parse_cfg, where

BN_EPSILON = np.float32(1e-6)  # Darknet's .000001f; OpenCV's Darknet importer uses the same 1e-6.
LEAKY_ALPHA = 0.1


@dataclass(frozen=True)
class _Shape:
    channels: int
    height: int
    width: int


def _route_sources(layers: list[dict[str, Any]], i: int) -> list[int]:
    """Absolute indices (into layers[1:]) a [route] reads; Darknet allows relative (<0) and absolute."""
    sources = [j if j >= 0 else i + j for j in int_list(layers[i + 1], "layers")]
    for j in sources:
        if not 0 <= j < i:
            raise ModelError(f"{where(layers[i + 1])}: route to layer {j} is outside 0..{i - 1}")
    if int_value(layers[i + 1], "groups", 1) != 1:
        raise ModelError(f"{where(layers[i + 1])}: grouped routes are not supported")
    return sources


def _shapes(layers: list[dict[str, Any]]) -> list[_Shape]:
    """Output shape of every layer after [net] (Darknet numbering), checking what the converter supports."""
    net = layers[0]
    shape = _Shape(int_value(net, "channels", 3), int_value(net, "height"), int_value(net, "width"))
    shapes: list[_Shape] = []
    for i, layer in enumerate(layers[1:]):
        kind = layer["_type"]
        if kind == "net":
            raise ModelError(f"{where(layer)}: only the first section may be [net]")
        if kind == "convolutional":
            size, stride = int_value(layer, "size", 1), int_value(layer, "stride", 1)
            pad = size // 2 if int_value(layer, "pad", 0) else int_value(layer, "padding", 0)
            if int_value(layer, "groups", 1) != 1 or int_value(layer, "dilation", 1) != 1:
                raise ModelError(f"{where(layer)}: grouped or dilated convolutions are not supported")
            if layer.get("activation", "logistic") not in ("leaky", "linear"):
                raise ModelError(f"{where(layer)}: activation={layer.get('activation')} is not supported")
            shape = _Shape(
                int_value(layer, "filters"),
                (shape.height + 2 * pad - size) // stride + 1,
                (shape.width + 2 * pad - size) // stride + 1,
            )
        elif kind == "maxpool":
            size = int_value(layer, "size", 1)
            stride = int_value(layer, "stride", 1)
            padding = int_value(layer, "padding", size - 1)
            shape = _Shape(
                shape.channels,
                (shape.height + padding - size) // stride + 1,
                (shape.width + padding - size) // stride + 1,
            )
        elif kind == "upsample":
            stride = int_value(layer, "stride", 2)
            if stride < 1:
                raise ModelError(f"{where(layer)}: only upsampling (stride >= 1) is supported")
            shape = _Shape(shape.channels, shape.height * stride, shape.width * stride)
        elif kind == "route":
            parts = [shapes[j] for j in _route_sources(layers, i)]
            if len({(p.height, p.width) for p in parts}) != 1:
                raise ModelError(f"{where(layer)}: routed layers differ in height/width")
            shape = _Shape(sum(p.channels for p in parts), parts[0].height, parts[0].width)
        elif kind == "yolo":
            if i == 0:
                raise ModelError(f"{where(layer)}: a [yolo] layer needs an input")
            mask, classes = int_list(layer, "mask"), int_value(layer, "classes")
            if shape.channels != len(mask) * (5 + classes):
                raise ModelError(
                    f"{where(layer)}: input has {shape.channels} channels, expected "
                    f"{len(mask)} anchors x (5 + {classes} classes) = {len(mask) * (5 + classes)}"
                )
        shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class ConvWeights:
    """One convolution's parameters as stored by Darknet; the BN arrays are None without batch_normalize."""

    weights: np.ndarray  # (filters, in_channels, size, size)
    biases: np.ndarray  # conv bias, or BN beta when batch-normalized
    scales: np.ndarray | None = None  # BN gamma
    rolling_mean: np.ndarray | None = None
    rolling_var: np.ndarray | None = None


def load_weights(path: str | os.PathLike[str], layers: list[dict[str, Any]]) -> list[ConvWeights | None]:
    """Read a Darknet .weights file for `layers` (from parse_cfg): one entry per layer after [net],
    None for layers without weights. The float count must match the cfg exactly, so a truncated or
    mismatched file fails here rather than yielding a model with garbage weights."""
    path = Path(path)
    shapes = _shapes(layers)
    data = path.read_bytes()
    if len(data) < 16:
        raise ModelError(f"weights file {path} is {len(data)} bytes, too short for a Darknet header; "
                         f"{REFETCH_HINT}")
    major, minor, _revision = (int(v) for v in np.frombuffer(data, dtype="<i4", count=3))
    header = 20 if major * 10 + minor >= 2 else 16  # `seen` is int64 from format 0.2 on
    if len(data) < header:
        raise ModelError(f"weights file {path} is {len(data)} bytes, shorter than its {header}-byte header; "
                         f"{REFETCH_HINT}")
    available = (len(data) - header) // 4
    trailing = (len(data) - header) % 4

    in_channels = [int_value(layers[0], "channels", 3)] + [s.channels for s in shapes]
    plan: list[tuple[int, int, int, int, bool]] = []  # (layer, filters, in_channels, size, batch-normalized)
    for i, layer in enumerate(layers[1:]):
        if layer["_type"] == "convolutional":
            plan.append((i, int_value(layer, "filters"), in_channels[i], int_value(layer, "size", 1),
                         bool(int_value(layer, "batch_normalize", 0))))
    expected = sum(f * (4 if bn else 1) + f * c * k * k for _, f, c, k, bn in plan)
    if available != expected or trailing:
        kind = "truncated" if available < expected else "larger than the cfg needs"
        stray = f" and {trailing} stray bytes" if trailing else ""
        raise ModelError(
            f"weights file {path}: expected {expected} floats after its {header}-byte header (what the cfg "
            f"needs), found {available}{stray}; the file is {kind} or belongs to another cfg; {REFETCH_HINT}"
        )

    floats = np.frombuffer(data, dtype="<f4", offset=header, count=expected)
    result: list[ConvWeights | None] = [None] * (len(layers) - 1)
    pos = 0

    def take(n: int) -> np.ndarray:
        nonlocal pos
        pos += n
        return floats[pos - n:pos].astype(np.float32)

    for i, f, c, k, bn in plan:
        if bn:
            biases, scales, mean, var = take(f), take(f), take(f), take(f)
            weights = take(f * c * k * k).reshape(f, c, k, k)
            result[i] = ConvWeights(weights, biases, scales, mean, var)
        else:
            biases = take(f)
            result[i] = ConvWeights(take(f * c * k * k).reshape(f, c, k, k), biases)
    return result


def _fold_bn(conv: ConvWeights) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights and bias with batch norm folded in, in float32 in the same order of operations as
    OpenCV (scale = gamma / sqrt(var + eps); bias = beta - scale * mean), so both agree to rounding."""
    if conv.scales is None:
        return conv.weights, conv.biases
    assert conv.rolling_mean is not None and conv.rolling_var is not None
    scale = conv.scales / np.sqrt(conv.rolling_var + BN_EPSILON)
    bias = conv.biases - scale * conv.rolling_mean
    return (conv.weights * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


def convert_darknet(
    cfg_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    opset: int = 17,
) -> dict[str, Any]:
    """Convert a YOLOv3-style Darknet model to ONNX at `onnx_path` (written atomically) and return the
    spec `models.yolo.decode_yolo` needs to decode its heads."""
    if opset < 13:
        raise ValueError(f"opset {opset} is too old; Resize with an empty roi needs opset >= 13")
    layers = parse_cfg(cfg_path)
    shapes = _shapes(layers)
    params = load_weights(weights_path, layers)
    net = layers[0]
    width, height, channels = int_value(net, "width"), int_value(net, "height"), int_value(net, "channels", 3)

    body = layers[1:]
    yolo_at = [i for i, layer in enumerate(body) if layer["_type"] == "yolo"]
    if not yolo_at:
        raise ModelError(f"{cfg_path}: no [yolo] layer, so the model has no detection heads")
    head_of = {i - 1: k for k, i in enumerate(yolo_at)}  # layer feeding a [yolo] -> head number

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    names: list[str] = []  # ONNX tensor holding each layer's output
    prev = "images"
    for i, layer in enumerate(body):
        kind = layer["_type"]
        out = f"head_{head_of[i]}" if i in head_of else f"{kind}_{i}"
        if kind == "convolutional":
            conv = params[i]
            assert conv is not None
            weight, bias = _fold_bn(conv)
            size, stride = int_value(layer, "size", 1), int_value(layer, "stride", 1)
            pad = size // 2 if int_value(layer, "pad", 0) else int_value(layer, "padding", 0)
            inits += [numpy_helper.from_array(weight, f"conv_{i}.weight"),
                      numpy_helper.from_array(bias, f"conv_{i}.bias")]
            leaky = layer.get("activation") == "leaky"
            conv_out = f"conv_{i}" if leaky else out
            nodes.append(helper.make_node(
                "Conv", [prev, f"conv_{i}.weight", f"conv_{i}.bias"], [conv_out], name=f"conv_{i}",
                kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4,
            ))
            if leaky:
                nodes.append(helper.make_node("LeakyRelu", [conv_out], [out], name=f"leaky_{i}",
                                              alpha=LEAKY_ALPHA))
        elif kind == "maxpool":
            # Darknet pads size-1 in total, padding//2 before and the rest after; out-of-range cells are
            # ignored, which ONNX MaxPool's implicit -inf padding reproduces.
            size, stride = int_value(layer, "size", 1), int_value(layer, "stride", 1)
            padding = int_value(layer, "padding", size - 1)
            begin, end = padding // 2, padding - padding // 2
            nodes.append(helper.make_node(
                "MaxPool", [prev], [out], name=f"maxpool_{i}",
                kernel_shape=[size, size], strides=[stride, stride], pads=[begin, begin, end, end],
            ))
        elif kind == "upsample":
            stride = float(int_value(layer, "stride", 2))
            scales = f"upsample_{i}.scales"
            inits.append(numpy_helper.from_array(np.array([1, 1, stride, stride], np.float32), scales))
            nodes.append(helper.make_node(
                "Resize", [prev, "", scales], [out], name=f"upsample_{i}", mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor",
            ))
        elif kind == "route":
            sources = [names[j] for j in _route_sources(layers, i)]
            if len(sources) == 1:
                out = sources[0]  # a single-layer route only re-reads an earlier output
            else:
                nodes.append(helper.make_node("Concat", sources, [out], name=f"route_{i}", axis=1))
        elif kind == "yolo":
            out = prev  # decoding happens outside the graph; for routing a [yolo] passes its input on
        names.append(out)
        prev = out

    heads: list[dict[str, Any]] = []
    outputs: list[onnx.ValueInfoProto] = []
    classes: set[int] = set()
    for k, i in enumerate(yolo_at):
        layer, grid = body[i], shapes[i - 1]
        anchors, mask = int_list(layer, "anchors"), int_list(layer, "mask")
        if any(not 0 <= 2 * m + 1 < len(anchors) for m in mask):
            raise ModelError(f"{where(layer)}: mask refers to an anchor that anchors= does not list")
        pairs = [[anchors[2 * m], anchors[2 * m + 1]] for m in mask]
        if width % grid.width or height % grid.height or width // grid.width != height // grid.height:
            raise ModelError(f"{where(layer)}: grid {grid.width}x{grid.height} does not evenly divide "
                             f"the {width}x{height} input")
        heads.append({"name": f"head_{k}", "stride": width // grid.width, "anchors": pairs})
        classes.add(int_value(layer, "classes"))
        outputs.append(helper.make_tensor_value_info(
            f"head_{k}", TensorProto.FLOAT, ["batch", grid.channels, grid.height, grid.width]))
    if len(classes) != 1:
        raise ModelError(f"{cfg_path}: [yolo] layers disagree on classes= ({sorted(classes)})")

    graph = helper.make_graph(
        nodes, "framesieve_teacher",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", channels, height, width])],
        outputs, initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="framesieve.darknet",
        doc_string=f"Converted from {Path(cfg_path).name} + {Path(weights_path).name} by FrameSieve",
    )
    # The oldest IR that carries this opset, so older runtimes load the file too.
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model, full_check=True)

    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    partial = onnx_path.with_name(onnx_path.name + ".part")
    onnx.save(model, partial)
    os.replace(partial, onnx_path)
    return {
        "format": "yolo-v3-heads",
        "input": {"name": "images", "width": width, "height": height, "layout": "NCHW", "color": "RGB",
                  "scale": 1 / 255},
        "heads": heads,
        "num_classes": classes.pop(),
    }
