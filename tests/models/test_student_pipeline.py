"""The distillation pipeline end to end on real footage, at smoke size (the full run is its own command)."""

import json

import numpy as np
import pytest
import torch

from models.exceptions import ModelError
from models.manifest import load_manifest
from models.runtime import load_detector
from models.student.config import load_train_config
from models.student.data import temporal_split
from models.student.targets import build_targets
from models.student.train import _batch, _seed, build_dataset, train_student

pytestmark = pytest.mark.slow  # a smoke training run is their fixture

SMOKE = dict(epochs=1, max_frames_per_clip=16, batch_size=8,
             clips=["vtest.avi", "people-detection.gif"], held_out_clips=["people-detection.gif"])


@pytest.fixture(scope="module")
def smoke_student(tmp_path_factory, teacher_manifest, vtest_path, shared_footage):
    out = tmp_path_factory.mktemp("smoke")
    cfg = load_train_config(**SMOKE)
    report = train_student(cfg, out, progress=False)
    return out, report


def test_smoke_training_writes_verified_models_and_manifests(smoke_student, vtest_frames, teacher_manifest):
    out, report = smoke_student
    assert report["shipped"] in ("fp32", "int8")
    for precision in ("fp32", "int8"):
        manifest = load_manifest(out / f"manifest-{precision}.json")
        assert manifest.precision == precision
        assert set(manifest.calibration) == {"person", "vehicle"}
        assert manifest.training["teacher_sha256"] == load_manifest(teacher_manifest).sha256
        assert "trained_scenes_held_back" in manifest.metrics and "unseen_clips" in manifest.metrics
        detector = load_detector(out / f"manifest-{precision}.json")
        assert len(detector.detect(vtest_frames[:2])) == 2
    saved = json.loads((out / "training-report.json").read_text())
    assert saved["variants"].keys() == {"fp32", "int8"}


def test_held_out_clip_and_held_back_frames_never_train(smoke_student):
    out, _ = smoke_student
    data = load_manifest(out / "manifest.json").training["data"]
    by_clip = {d["clip"]: d for d in data}
    assert by_clip["people-detection.gif"]["train"] == 0 and by_clip["people-detection.gif"]["calib"] == 0
    assert by_clip["vtest.avi"]["held_back"] > 0


def test_temporal_split_keeps_a_gap_between_parts():
    split = temporal_split(795, 10.0, 0.7, 0.1, 1.0)
    assert split.train.max() + 10 < split.calib.min()
    assert split.calib.max() + 10 < split.held.min()
    assert split.held.max() == 794
    assert len(temporal_split(50, 10.0, 0.7, 0.1, 1.0, held_out=True).held) == 50


def test_fine_tuning_starts_from_the_given_student(smoke_student, tmp_path):
    out, _ = smoke_student
    parent = torch.load(out / "student.pt", weights_only=True)
    cfg = load_train_config(epochs=1, max_frames_per_clip=8, batch_size=8, clips=["vtest.avi"],
                            held_out_clips=[], learning_rate=1e-6)
    report = train_student(cfg, tmp_path / "ft", init_from=out / "manifest.json", progress=False)
    child = torch.load(tmp_path / "ft" / "student.pt", weights_only=True)
    # A near-zero learning rate keeps the weights close to the parent's: it started from them.
    worst = max((child[k].float() - parent[k].float()).abs().max().item()
                for k in parent if parent[k].dtype.is_floating_point and "running" not in k)
    assert worst < 1e-3
    assert report["variants"]["fp32"]["metrics"]
    assert load_manifest(tmp_path / "ft" / "manifest.json").training["fine_tuned_from"].endswith("manifest.json")


def test_fine_tuning_from_a_student_without_checkpoint_is_refused(smoke_student, tmp_path):
    out, _ = smoke_student
    (out / "student.pt").rename(tmp_path / "moved.pt")
    try:
        cfg = load_train_config(**SMOKE)
        with pytest.raises(ModelError, match="checkpoint"):
            train_student(cfg, tmp_path / "ft", init_from=out / "manifest.json", progress=False)
    finally:
        (tmp_path / "moved.pt").rename(out / "student.pt")


def test_batches_are_reproducible_from_the_seed(teacher_manifest, vtest_path, shared_footage):
    cfg = load_train_config(**SMOKE)
    data = build_dataset(cfg, teacher_manifest)
    items = data.frames("train")[:6]
    x1, t1, n1 = _batch(data, items, cfg, _seed(3))
    x2, t2, n2 = _batch(data, items, cfg, _seed(3))
    assert n1 == n2 and torch.equal(x1, x2) and all(torch.equal(a, b) for a, b in zip(t1, t2, strict=True))


def test_soft_targets_peak_at_the_teacher_score():
    boxes = np.array([[0.25, 0.25, 0.35, 0.6]], np.float32)
    heat, box_t, box_w = build_targets(boxes, np.array([0.7], np.float32), np.array([0]), (320, 192))
    assert heat[0].max() == pytest.approx(0.7)
    assert heat[1].max() == 0.0
    assert box_w.max() == pytest.approx(0.7)
    assert (box_t[:, box_w > 0] > -1).all()


def test_recalibration_reuses_the_checkpoint_without_training(smoke_student):
    from models.student.train import recalibrate

    out, _ = smoke_student
    before = load_manifest(out / "manifest-fp32.json")
    report = recalibrate(out)
    after = load_manifest(out / "manifest-fp32.json")
    assert after.sha256 == before.sha256  # same weights, exported again bit for bit
    assert after.training["recalibrated"] and after.training["loss_history"] == before.training["loss_history"]
    assert report["shipped"] in ("fp32", "int8")
