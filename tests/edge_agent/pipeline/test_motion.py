"""The motion gate on real footage and on controlled scenes."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.pipeline.motion import MotionConfig, MotionGate
from edge_agent.pipeline.sources import VideoFileSource

WH = (768, 576)
WHOLE = [[0, 0, 768, 576]]


@pytest.fixture(scope="module")
def vtest_seconds(vtest) -> list[np.ndarray]:
    """The first 30 one-per-second samples of vtest.avi (people walking, fixed camera)."""
    source = VideoFileSource("lobby", vtest, fps=1.0)
    frames = [source.read_sampled().image for _ in range(30)]
    source.close()
    return frames


def _noisy(base: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    noise = rng.normal(0, sigma, base.shape)
    return np.clip(base.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _with_square(base: np.ndarray, x: int, y: int, size: int = 60) -> np.ndarray:
    image = base.copy()
    image[y:y + size, x:x + size] = 255
    return image


def test_people_walking_give_motion_most_seconds(vtest_seconds):
    gate = MotionGate(MotionConfig(), WH)
    results = [gate.detect(f) for f in vtest_seconds]
    assert results[0].recalibrated and results[0].boxes == WHOLE  # the first sample always runs the model
    later = results[1:]
    assert sum(r.has_motion for r in later) >= 0.8 * len(later)
    assert not any(r.recalibrated for r in later)
    for r in later:
        for x1, y1, x2, y2 in r.boxes:
            assert 0 <= x1 < x2 <= WH[0] and 0 <= y1 < y2 <= WH[1]
        assert r.changed_fraction < 0.3


def test_static_scene_with_sensor_noise_has_no_motion_after_the_first(vtest_first_frames):
    rng = np.random.default_rng(1)
    gate = MotionGate(MotionConfig(), WH)
    results = [gate.detect(_noisy(vtest_first_frames[0], rng)) for _ in range(8)]
    assert results[0].has_motion
    assert not any(r.has_motion for r in results[1:])


def test_box_is_in_source_pixels_around_the_moving_object(vtest_first_frames):
    base = vtest_first_frames[0]
    gate = MotionGate(MotionConfig(), WH)
    gate.detect(base)
    gate.detect(base)
    result = gate.detect(_with_square(base, 500, 300))
    assert len(result.boxes) == 1
    x1, y1, x2, y2 = result.boxes[0]
    # The 60x60 square at (500, 300), give or take the dilation and a small-frame pixel (4.8 px).
    assert 485 <= x1 <= 500 and 285 <= y1 <= 300
    assert 560 <= x2 <= 575 and 360 <= y2 <= 375


def test_mask_over_the_whole_frame_means_no_motion(vtest_seconds):
    config = MotionConfig(mask=[[(0, 0), (768, 0), (768, 576), (0, 576)]])
    gate = MotionGate(config, WH)
    results = [gate.detect(f) for f in vtest_seconds[:10]]
    assert all(not r.has_motion and r.changed_fraction == 0.0 for r in results[1:])


def test_masked_half_never_triggers(vtest_first_frames):
    base = vtest_first_frames[0]
    gate = MotionGate(MotionConfig(mask=[[(0, 0), (384, 0), (384, 576), (0, 576)]]), WH)
    gate.detect(base)
    assert not gate.detect(_with_square(base, 100, 200)).has_motion  # inside the mask
    assert gate.detect(_with_square(base, 600, 200)).has_motion  # outside it


def test_lights_change_recalibrates_once(vtest_first_frames):
    rng = np.random.default_rng(2)
    base = vtest_first_frames[0]
    gate = MotionGate(MotionConfig(), WH)
    for _ in range(3):
        gate.detect(_noisy(base, rng))
    dark = (base * 0.4).astype(np.uint8)
    switched = gate.detect(dark)
    assert switched.recalibrated and switched.has_motion and switched.boxes == WHOLE
    assert switched.changed_fraction > 0.6
    after = gate.detect(dark.copy())
    assert not after.recalibrated and not after.has_motion


def test_reset_makes_the_next_frame_a_first_frame(vtest_first_frames):
    gate = MotionGate(MotionConfig(), WH)
    gate.detect(vtest_first_frames[0])
    assert not gate.detect(vtest_first_frames[0]).has_motion
    gate.reset()
    assert gate.detect(vtest_first_frames[0]).recalibrated


def test_wrong_frame_size_and_bad_config_are_clear_errors(vtest_first_frames):
    gate = MotionGate(MotionConfig(), (640, 480))
    with pytest.raises(ValueError, match="768x576"):
        gate.detect(vtest_first_frames[0])
    with pytest.raises(ValidationError):
        MotionConfig(mask=[[(0, 0), (10, 10)]])  # not a polygon
    with pytest.raises(ValidationError):
        MotionConfig(treshold=30)  # a typo is rejected, not ignored
