import numpy as np
import pytest

from contracts.detections import Detections, box_iou
from contracts.labels import build_class_map


def _dets():
    return Detections(
        np.array([[0, 0, 10, 10], [5, 5, 15, 25], [20, 20, 30, 30]], np.float32),
        np.array([0.9, 0.3, 0.6]),
        np.array(["person", "vehicle", "person"]),
    )


@pytest.mark.parametrize(
    ("xyxy", "scores", "labels", "error"),
    [
        (np.zeros((2, 4)), [0.5], ["person", "person"], "disagree in length"),
        (np.zeros((1, 4)), [0.5], ["person", "vehicle"], "disagree in length"),
        (np.array([[0, 0, np.nan, 1]]), [0.5], ["person"], "NaN"),
    ],
)
def test_construction_rejects_inconsistent_arrays(xyxy, scores, labels, error):
    with pytest.raises(ValueError, match=error):
        Detections(xyxy, scores, labels)


def test_filters_and_presence():
    d = _dets()
    assert len(d.with_min_score(0.5)) == 2
    assert list(d.with_label("person").scores) == pytest.approx([0.9, 0.6])
    assert d.max_score("person") == pytest.approx(0.9)
    assert d.max_score("vehicle") == pytest.approx(0.3)
    assert Detections.empty().max_score("person") == 0.0


def test_scale_clip_and_records_round_trip():
    d = _dets().with_scale(2.0, 0.5, 1.0, 0.0).with_clip(25, 100)
    assert d.xyxy[1].tolist() == [11.0, 2.5, 25.0, 12.5]
    back = Detections.from_records(d.to_records(decimals=3))
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=1e-3)
    assert back.labels.tolist() == d.labels.tolist()
    assert Detections.concat([d, Detections.empty(), d]).xyxy.shape == (6, 4)


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou[0], [1.0, 1 / 3, 0.0], atol=1e-6)


def test_class_map_groups_coco_and_names_unknown_classes():
    names = ["person", "bicycle", "car", "dog"]
    assert build_class_map(names, {"person": ["person"], "vehicle": ["bicycle", "car"]}) == {
        0: "person", 1: "vehicle", 2: "vehicle"}
    with pytest.raises(ValueError, match="'truck'"):
        build_class_map(names, {"vehicle": ["truck"]})


def test_to_wire_and_from_wire_are_one_detection_type_on_both_sides():
    from contracts.wire import DetectionRecord

    dets = _dets()
    records = dets.to_wire()
    assert all(isinstance(r, DetectionRecord) for r in records)
    assert [r.label for r in records] == ["person", "vehicle", "person"] and records[1].box == (5.0, 5.0, 15.0, 25.0)
    back = Detections.from_wire(records)
    assert np.array_equal(back.xyxy, dets.xyxy) and np.array_equal(back.scores, dets.scores)
    assert back.labels.tolist() == dets.labels.tolist()
    assert len(Detections.from_wire(())) == 0 and Detections.empty().to_wire() == ()
