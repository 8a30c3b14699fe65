"""Region planning: crops of the model's aspect around motion, or the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.pipeline.regions import Region, plan_regions, whole_frame_regions

FRAME = (768, 576)
MODEL = (320, 192)


def _inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


CASES = [
    # name, motion boxes, frame, expected: number of crops, or "whole", or 0 (no motion)
    ("no motion", [], FRAME, 0),
    ("one small box", [[100, 100, 130, 160]], FRAME, 1),
    ("two far boxes", [[20, 20, 60, 80], [650, 450, 700, 540]], FRAME, 2),
    ("two near boxes merge", [[100, 100, 130, 160], [140, 110, 170, 170]], FRAME, 1),
    ("box in the corner", [[740, 550, 768, 576]], FRAME, 1),
    ("box partly outside the frame", [[-20, 500, 40, 640]], FRAME, 1),
    ("tall box in a narrow frame", [[20, 20, 60, 200]], (200, 400), 1),
    ("a tall box filling a narrow frame", [[40, 20, 120, 380]], (200, 400), "whole"),
    ("a big box", [[0, 0, 700, 500]], FRAME, "whole"),
    ("more places than max_regions", [[10, 10, 30, 30], [700, 10, 720, 30], [10, 540, 30, 560],
                                      [700, 540, 720, 560], [380, 280, 400, 300]], FRAME, "whole"),
]


@pytest.mark.parametrize("name, boxes, frame, expected", CASES, ids=[c[0] for c in CASES])
def test_plan_regions(name, boxes, frame, expected):
    regions = plan_regions(boxes, frame, MODEL)
    width, height = frame
    if expected == "whole":
        assert regions == [Region((0, 0, width, height), whole_frame=True)]
        return
    assert len(regions) == expected
    for r in regions:
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height  # within the frame
        assert not r.whole_frame
        # no more than 2x zoom: at least model/2 unless the frame itself is smaller
        assert r.width >= min(MODEL[0] / 2, width) - 1 and r.height >= min(MODEL[1] / 2, height) - 1
        if r.width < width and r.height < height:  # not clipped by the frame: the model's aspect
            assert r.width / r.height == pytest.approx(MODEL[0] / MODEL[1], rel=0.02)
    for box in boxes:  # every motion box (clipped to the frame) lies in one crop
        clipped = (max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height))
        assert any(_inside(clipped, r.box) for r in regions), f"{box} not covered by {regions}"
    for i, a in enumerate(regions):  # crops that overlapped were merged
        for b in regions[i + 1:]:
            assert min(a.box[2], b.box[2]) <= max(a.box[0], b.box[0]) or \
                   min(a.box[3], b.box[3]) <= max(a.box[1], b.box[1])


def test_one_small_box_gets_a_margin_and_model_sized_crop():
    (region,) = plan_regions([[300, 200, 340, 300]], FRAME, MODEL)
    assert region.width >= 160 and region.height >= 96
    x1, y1, x2, y2 = region.box
    assert x1 <= 300 - 6 and y1 <= 200 - 15 and x2 >= 340 + 6 and y2 >= 300 + 15  # 15% margin


def test_union_share_decides_the_whole_frame():
    box = [[0, 0, 400, 400]]  # 36% of the frame
    assert not plan_regions(box, FRAME, MODEL)[0].whole_frame
    assert plan_regions(box, FRAME, MODEL, whole_frame_fraction=0.3)[0].whole_frame


def test_crop_is_a_view_and_to_source_maps_back():
    image = np.arange(576 * 768 * 3, dtype=np.uint32).reshape(576, 768, 3).astype(np.uint8)
    region = Region((100, 50, 420, 242))
    crop = region.crop(image)
    assert crop.shape == (192, 320, 3)
    assert np.shares_memory(crop, image) and np.array_equal(crop, image[50:242, 100:420])
    boxes = np.array([[10, 20, 30, 40], [0, 0, 320, 192]], np.float32)
    mapped = region.to_source(boxes)
    np.testing.assert_array_equal(mapped, [[110, 70, 130, 90], [100, 50, 420, 242]])
    assert mapped.dtype == np.float32 and boxes[0, 0] == 10  # a new array; the input is untouched
    np.testing.assert_array_equal(region.to_source([1, 2, 3, 4]), [101, 52, 103, 54])
    with pytest.raises(ValueError):
        region.to_source(np.zeros((2, 5)))


def test_a_large_frame_is_looked_at_in_overlapping_tiles_that_cover_it():
    tiles = whole_frame_regions((1280, 720), (320, 192), max_downscale=3.0)
    assert len(tiles) == 4 and all(t.whole_frame for t in tiles)
    covered = np.zeros((720, 1280), bool)
    for t in tiles:
        x1, y1, x2, y2 = t.box
        covered[y1:y2, x1:x2] = True
        # each tile is at most max_downscale times the model's input: a 20 px vehicle stays >= 6 px
        assert t.width / 320 <= 3.0 and t.height / 192 <= 3.0
    assert covered.all()
    left, right = sorted(tiles, key=lambda t: (t.box[1], t.box[0]))[:2]
    assert left.box[2] - right.box[0] >= 0.1 * 640 * 0.9  # neighbours overlap: an object on the seam is whole in one


@pytest.mark.parametrize("frame_wh", [(768, 576), (640, 360), (320, 240), (960, 576)])
def test_a_frame_within_the_downscale_limit_stays_one_region(frame_wh):
    assert [r.box for r in whole_frame_regions(frame_wh, (320, 192), 3.0)] == [(0, 0, *frame_wh)]


def test_motion_spread_over_a_large_frame_gives_the_tiles():
    spread = [(10, 10, 400, 300), (700, 50, 1270, 700), (300, 400, 900, 710)]
    regions = plan_regions(spread, (1280, 720), (320, 192))
    assert len(regions) == 4 and all(r.whole_frame for r in regions)
