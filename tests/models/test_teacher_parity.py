"""The teacher converted by FrameSieve's own Darknet converter must compute what OpenCV's Darknet
importer computes from the same files: raw heads, and detections after decoding and per-class NMS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from models.exceptions import FetchError, ModelError
from models.fetch import fetch_teacher, fetch_vtest
from models.teacher.darknet import convert_darknet, load_weights
from models.teacher.darknet_cfg import parse_cfg
from models.yolo import decode_yolo, nms_per_class

SIZE = 416
N_FRAMES = 6
CONF, IOU = 0.25, 0.45


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        files = fetch_teacher()
        clip = fetch_vtest()
    except FetchError as exc:
        pytest.skip(f"teacher files or vtest.avi cannot be fetched: {exc}")
    onnx_path = tmp_path_factory.mktemp("teacher") / "teacher.onnx"
    spec = convert_darknet(files.cfg, files.weights, onnx_path)
    return {"files": files, "clip": clip, "onnx": onnx_path, "spec": spec}


@pytest.fixture(scope="module")
def runs(teacher: dict[str, Any]) -> dict[str, Any]:
    """Both runtimes on the same blobs: real frames spread over the whole clip."""
    cap = cv2.VideoCapture(str(teacher["clip"]))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for pos in np.linspace(0, count - 1, N_FRAMES).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(pos))
        ok, frame = cap.read()
        assert ok, f"cannot read frame {pos} of {teacher['clip']}"
        frames.append(frame)
    cap.release()
    blob = np.concatenate(
        [cv2.dnn.blobFromImage(f, 1 / 255, (SIZE, SIZE), swapRB=True, crop=False) for f in frames]
    )

    session = ort.InferenceSession(str(teacher["onnx"]), providers=["CPUExecutionProvider"])
    names = [h["name"] for h in teacher["spec"]["heads"]]
    ours = session.run(names, {"images": blob})  # the whole batch at once: exercises the symbolic dim

    # OpenCV names Darknet layers <type>_<cfg index>; the conv before each [yolo] holds its raw input.
    files = teacher["files"]
    body = parse_cfg(files.cfg)[1:]
    yolo_at = [i for i, layer in enumerate(body) if layer["_type"] == "yolo"]
    conv_names = [f"conv_{i - 1}" for i in yolo_at]
    yolo_names = [f"yolo_{i}" for i in yolo_at]
    net = cv2.dnn.readNetFromDarknet(str(files.cfg), str(files.weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    assert set(conv_names + yolo_names) <= set(net.getLayerNames())
    assert set(net.getUnconnectedOutLayersNames()) == set(yolo_names)
    ref_heads, ref_rows = [], []
    for i in range(len(frames)):
        net.setInput(blob[i : i + 1])
        out = net.forward(conv_names + yolo_names)
        ref_heads.append(out[: len(conv_names)])
        ref_rows.append(np.concatenate(out[len(conv_names) :]))
    return {"ours": ours, "ref_heads": ref_heads, "ref_rows": ref_rows, "n": len(frames)}


def test_spec_describes_yolov3_tiny(teacher: dict[str, Any]) -> None:
    spec = teacher["spec"]
    assert spec["input"] == {"name": "images", "width": SIZE, "height": SIZE, "layout": "NCHW",
                             "color": "RGB", "scale": 1 / 255}
    assert [(h["name"], h["stride"]) for h in spec["heads"]] == [("head_0", 32), ("head_1", 16)]
    assert spec["heads"][0]["anchors"] == [[81, 82], [135, 169], [344, 319]]
    assert spec["num_classes"] == 80


@pytest.mark.slow
def test_raw_heads_match_opencv(runs: dict[str, Any]) -> None:
    for h, ours in enumerate(runs["ours"]):
        refs = np.stack([r[h][0] for r in runs["ref_heads"]])
        assert ours.shape == refs.shape
        diff = float(np.abs(ours - refs).max())  # measured ~1.0e-4 (head_0) and ~1.3e-4 (head_1)
        assert diff < 1e-3, f"head_{h}: max abs diff {diff} vs OpenCV"


def _reference_detections(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's own decode: its [yolo] rows are [cx, cy, w, h, objectness, class scores...] normalized,
    where class score = objectness * sigmoid(logit), zeroed when <= the layer's thresh (0.2 unless the
    cfg sets thresh=). Zeroing below 0.2 changes neither a best class that reaches 0.25 nor which rows
    reach 0.25, so it is the same rule decode_yolo applies, without loosening anything."""
    cls = rows[:, 5:].argmax(axis=1)
    scores = rows[np.arange(len(rows)), 5 + cls]
    keep = scores >= CONF
    rows, cls, scores = rows[keep], cls[keep], scores[keep]
    xywh = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 2], rows[:, 3]], 1)
    xywh = xywh.astype(np.float64) * SIZE
    idx = np.asarray(
        cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls.tolist(), 0.0, IOU), dtype=np.int64
    ).reshape(-1)
    boxes = xywh[idx].copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes, scores[idx], cls[idx]


def test_detections_match_opencv(teacher: dict[str, Any], runs: dict[str, Any]) -> None:
    decoded = decode_yolo(runs["ours"], teacher["spec"]["heads"], (SIZE, SIZE), CONF)
    assert len(decoded) == runs["n"]
    compared = 0
    for i, (boxes, scores, class_ids) in enumerate(decoded):
        keep = nms_per_class(boxes, scores, class_ids, IOU)
        ref_boxes, ref_scores, ref_cls = _reference_detections(runs["ref_rows"][i])
        assert len(keep) == len(ref_cls), f"frame {i}: {len(keep)} detections vs OpenCV's {len(ref_cls)}"
        # Both lists are in descending score order; the scores differ by ~1e-5, far less than any gap.
        np.testing.assert_array_equal(class_ids[keep], ref_cls, err_msg=f"frame {i}")
        np.testing.assert_allclose(scores[keep], ref_scores, rtol=0, atol=1e-3, err_msg=f"frame {i}")
        np.testing.assert_allclose(boxes[keep], ref_boxes, rtol=0, atol=0.5, err_msg=f"frame {i}")
        compared += len(keep)
    assert compared >= 20, f"only {compared} detections on {runs['n']} frames: the comparison proves little"


def test_truncated_or_padded_weights_name_the_file(teacher: dict[str, Any], tmp_path: Path) -> None:
    files = teacher["files"]
    layers = parse_cfg(files.cfg)
    data = files.weights.read_bytes()
    cut = tmp_path / "cut.weights"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="expected|needs") as err:
        load_weights(cut, layers)
    assert str(cut) in str(err.value) and "edge-agent models fetch" in str(err.value)
    with pytest.raises(ModelError, match=re.escape(str(cut))):
        convert_darknet(files.cfg, cut, tmp_path / "never.onnx")
    assert not (tmp_path / "never.onnx").exists()

    padded = tmp_path / "padded.weights"
    padded.write_bytes(data + bytes(8))
    with pytest.raises(ModelError, match="larger than the cfg needs") as err:
        load_weights(padded, layers)
    assert str(padded) in str(err.value)


def test_bad_cfg_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("[net]\nwidth=416\nheight=416\n\n[shortcut]\nfrom=-3\n")
    with pytest.raises(ModelError, match=r"line 5: unknown section \[shortcut\]") as err:
        parse_cfg(cfg)
    assert str(cfg) in str(err.value)

    cfg.write_text("[net]\nwidth=416\nthis line has no equals sign\n")
    with pytest.raises(ModelError, match="line 3: malformed line"):
        parse_cfg(cfg)
