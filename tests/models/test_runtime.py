"""The runtime on real frames: the teacher and the shipped student through their manifests."""

import numpy as np
import pytest

from models.exceptions import ModelInputError
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.runtime import load_detector


@pytest.fixture(scope="module")
def teacher(teacher_manifest):
    return load_detector(teacher_manifest, threads=2)


@pytest.fixture(scope="module")
def student():
    return load_detector(CENTERNET_STUDENT_MANIFEST, threads=2)


def test_teacher_finds_people_on_vtest_in_source_pixels(teacher, vtest_frames):
    results = teacher.detect(vtest_frames)
    assert len(results) == len(vtest_frames)
    people = [d.with_label("person").with_min_score(0.4) for d in results]
    assert all(len(p) >= 1 for p in people), [len(p) for p in people]
    for dets in results:
        assert set(dets.labels) <= {"person", "vehicle"}
        assert (dets.xyxy[:, [0, 2]] <= 768).all() and (dets.xyxy[:, [1, 3]] <= 576).all()
        assert (dets.xyxy[:, 2] > dets.xyxy[:, 0]).all() and (dets.xyxy[:, 3] > dets.xyxy[:, 1]).all()


def test_batched_and_single_calls_agree_across_frame_sizes(student, vtest_frames):
    small = vtest_frames[1][::2, ::2].copy()
    batched = student.detect([vtest_frames[0], small])
    single = [student.detect([vtest_frames[0]])[0], student.detect([small])[0]]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=1e-3)
        np.testing.assert_allclose(b.scores, s.scores, atol=1e-5)
    assert (batched[1].xyxy[:, [0, 2]] <= small.shape[1]).all()


@pytest.mark.slow
def test_student_sees_people_where_the_teacher_does(student, teacher, vtest_frames):
    threshold = student.manifest.thresholds["person"]
    for frame, ref in zip(vtest_frames, teacher.detect(vtest_frames), strict=True):
        if len(ref.with_label("person").with_min_score(0.4)):
            assert student.detect([frame])[0].max_score("person") >= threshold


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not an image", "str"),
        (np.zeros((64, 64), np.uint8), "(64, 64)"),
        (np.zeros((64, 64, 3), np.float32), "float32"),
        (np.zeros((64, 64, 4), np.uint8), "(64, 64, 4)"),
        (np.zeros((4, 64, 3), np.uint8), "at least 8x8"),
    ],
)
def test_unreadable_frames_are_clear_errors(student, frame, message):
    with pytest.raises(ModelInputError, match="frame 0") as info:
        student.detect([frame])
    assert message in str(info.value)


def test_empty_batch(student):
    assert student.detect([]) == []
