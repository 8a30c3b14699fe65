"""The teacher-derived student: built from the pinned Darknet files, the teacher's answers at a
reduced input, calibrated on other scenes, rebuilt when its file is damaged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from models.exceptions import ModelError
from models.manifest import load_manifest
from models.paths import cache_dir
from models.runtime import load_detector
from models.student import derived
from models.student.scenes import Scene, load_scene, sample_frames

pytestmark = pytest.mark.slow  # builds students from the teacher's weights: seconds per test


@pytest.fixture(scope="module")
def vtest_scene(teacher_manifest, vtest_path):
    teacher = load_detector(teacher_manifest, threads=2)
    scene = load_scene(vtest_path, 0.5, teacher)
    return Scene(scene.name, scene.fps, scene.frames[:16], scene.refs[:16])


def test_heads_keep_only_the_product_classes(tmp_path, teacher_manifest):
    spec = derived.derive_onnx(tmp_path / "s.onnx", (320, 192))
    model = onnx.load(tmp_path / "s.onnx")
    dims = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert spec["class_names"] == ["person", "bicycle", "car", "motorbike", "bus", "truck"]
    # 3 anchors x (4 box + objectness + 6 classes) per head; grids of a 320x192 input at strides 32 and 16
    assert dims == {"head_0": [0, 33, 6, 10], "head_1": [0, 33, 12, 20]}


@pytest.mark.parametrize("wh", [(300, 192), (320, 100), (32, 32)])
def test_an_input_size_the_network_cannot_take_is_refused(tmp_path, wh):
    with pytest.raises(ModelError, match="multiples of 32"):
        derived.derive_onnx(tmp_path / "s.onnx", wh)


def test_it_finds_the_people_the_teacher_finds_without_ever_training(tmp_path, vtest_scene):
    """No calibration scene at all (identity calibration): the teacher's features at a third of its pixels."""
    manifest = derived.build_derived(tmp_path / "d", [])
    student = load_detector(manifest, threads=2)
    found = [len(d.with_label("person").with_min_score(0.25)) > 0 for d in student.detect(vtest_scene.frames)]
    present = [len(r.with_label("person").with_min_score(0.4)) > 0 for r in vtest_scene.refs]
    hits = sum(f and p for f, p in zip(found, present, strict=True))
    assert sum(present) >= 10 and hits >= 0.9 * sum(present)


def test_calibration_is_fitted_on_the_scenes_given_and_recorded(tmp_path, shared_footage, teacher_manifest):
    scene = load_scene(shared_footage / "worker-zone-detection.gif", 1.0, load_detector(teacher_manifest, threads=2))
    m = load_manifest(derived.build_derived(tmp_path / "d", [scene]))
    assert m.training["family"] == derived.FAMILY
    assert m.training["calibration_scenes"] == ["worker-zone-detection.gif"]
    assert m.training["calibration_frames"] == len(scene)
    assert set(m.thresholds) == {"person", "vehicle"}


def test_a_scene_without_a_label_leaves_its_calibration_neutral(tmp_path, shared_footage, teacher_manifest):
    """highway-overlay has no person the teacher finds: no fit on nothing, identity and the default threshold."""
    teacher = load_detector(teacher_manifest, threads=2)
    scene = load_scene(shared_footage / "highway-overlay.avi", 1.0, teacher)
    assert not any(len(r.with_label("person").with_min_score(0.4)) for r in scene.refs)
    m = load_manifest(derived.build_derived(tmp_path / "d", [scene]))
    assert (m.calibration["person"].a, m.calibration["person"].b) == (1.0, 0.0)
    assert m.thresholds["person"] == 0.5


def test_the_recipe_rebuilds_the_same_student_and_a_damaged_one_is_rebuilt(tmp_path, monkeypatch, teacher_manifest):
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path / "cache"))

    # the teacher's pinned files from the real cache, so nothing is downloaded again
    src = teacher_manifest.parent.parent.parent / "teacher-src"
    shutil.copytree(src, cache_dir() / "teacher-src")
    first = derived.ensure_derived_student()
    sha = load_manifest(first).sha256
    recipe = json.loads(derived.RECIPE.read_text())
    assert load_manifest(first).calibration["person"].a == pytest.approx(recipe["platt"]["person"]["a"])
    # the built student names the scenes and frames its recipe was calibrated on
    assert load_manifest(first).training["calibration_scenes"] == recipe["scenes"] and len(recipe["scenes"]) == 10
    assert load_manifest(first).training["calibration_frames"] == recipe["frames"] == 176
    model = load_manifest(first).model_path
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte: the sha256 check refuses it, the recipe rebuilds it
    model.write_bytes(bytes(data))
    again = derived.ensure_derived_student()
    assert load_manifest(again).sha256 == sha  # bit-for-bit the same derivation


def test_a_clip_that_cannot_be_read_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ModelError, match="broken.mp4"):
        sample_frames(bad, 1.0)


def test_frames_are_sampled_by_media_time(vtest_path):
    frames = sample_frames(vtest_path, 1.0)  # 10 fps, 795 frames
    assert len(frames) == 80 and all(f.shape == (576, 768, 3) and f.dtype == np.uint8 for f in frames)


def test_a_build_killed_part_way_leaves_the_working_student(tmp_path, monkeypatch, teacher_manifest):
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path / "cache"))
    shutil.copytree(teacher_manifest.parent.parent.parent / "teacher-src", cache_dir() / "teacher-src")
    first = derived.ensure_derived_student()
    before = load_manifest(first).sha256

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while exporting")

    monkeypatch.setattr(derived, "derive_onnx", killed)
    with pytest.raises(KeyboardInterrupt):
        derived.ensure_derived_student(force=True)
    assert load_manifest(derived.derived_dir() / "manifest.json").sha256 == before  # still the finished one
    monkeypatch.undo()
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path / "cache"))
    assert load_manifest(derived.ensure_derived_student(force=True)).sha256 == before  # and the rebuild recovers


def test_a_corrupt_stretch_mid_clip_costs_only_those_frames(tmp_path):
    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(100):
        frame = np.full((120, 160, 3), 40, np.uint8)
        cv2.rectangle(frame, (i, 30), (i + 30, 90), (200, 200, 200), -1)
        writer.write(frame)
    writer.release()
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(4000)  # a run of zeroed bytes: a few frames undecodable
    clip.write_bytes(bytes(data))
    frames = sample_frames(clip, 10.0)
    assert len(frames) >= 80 and all(f.shape == (120, 160, 3) for f in frames)
    # the clip went on past the damage: the last frame is the 100th (its box spans x 99..129)
    assert frames[-1][60, 115].mean() > 150 and frames[-1][60, 90].mean() < 100
