"""Per-camera specialization on real footage, short form: records -> fine-tune -> champion/challenger."""

import json
import shutil
import uuid

import cv2
import numpy as np
import pytest

from contracts.training import TrainingCrop, TrainingRecord
from contracts.wire import Crop, DetectionRecord
from models.exceptions import ModelError
from models.paths import DEFAULT_STUDENT_MANIFEST
from models.runtime import load_detector
from models.student.collected import load_records, records_dataset
from models.student.specialize import cascade_outcome, decide, specialize


def write_records(folder, clip, teacher_manifest, camera="road", every=5, limit=40):
    """What the agent's collector writes: whole-frame crops the teacher answered."""
    teacher = load_detector(teacher_manifest, threads=2, conf_threshold=0.4)
    cap = cv2.VideoCapture(str(clip))
    k = written = 0
    while written < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if k % every == 0:
            h, w = frame.shape[:2]
            jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            dets = teacher.detect([frame])[0]
            teacher_records = tuple(DetectionRecord(r["label"], r["score"], tuple(r["box"])) for r in dets.to_records())
            record = TrainingRecord(str(uuid.uuid4()), camera, 1000.0 + k, k / 12.5, k, "uncertain", "teacher@1",
                                    (TrainingCrop(Crop(0, (0.0, 0.0, float(w), float(h)), jpeg, (w, h)),
                                                  teacher_records),))
            (folder / f"{record.message_id}.json").write_bytes(record.to_bytes())
            written += 1
        k += 1
    cap.release()
    return written


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory, teacher_manifest, shared_footage):
    folder = tmp_path_factory.mktemp("records")
    assert write_records(folder, shared_footage / "car-detection.mp4", teacher_manifest) == 40
    (folder / "junk.json").write_text("{not json")  # a bad file is skipped, not fatal
    return folder


@pytest.mark.slow
def test_records_load_in_time_order_and_split_without_overlap(records_dir):
    records = load_records(records_dir, "road")
    assert len(records) == 40 and [r.t_s for r in records] == sorted(r.t_s for r in records)
    assert load_records(records_dir, "other-camera") == []
    data = records_dataset(records, (640, 384))
    split = data.splits[0]
    assert split.train.max() < split.calib.min() <= split.calib.max() < split.held.min()
    assert len(split.held) == 8
    with pytest.raises(ModelError, match="at least 50"):
        records_dataset(records, (640, 384), min_records=50)


def test_cascade_outcome_known_answer():
    # 4 frames, person column: a confident hit, an uncertain one (escalated, so right), a miss, a true negative
    scores = np.array([[0.9, 0.0], [0.4, 0.0], [0.1, 0.0], [0.05, 0.0]])
    present = np.array([[True, False], [True, False], [True, False], [False, False]])
    out = cascade_outcome(scores, present, accept=0.5, reject=0.2)
    assert out["escalation_fraction"] == 0.25
    assert out["person_presence_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["person_presence_precision"] == 1.0
    assert out["vehicle_presence_recall"] == 1.0  # never present: nothing to miss
    assert out["edge_disagreement"] == pytest.approx(1 / 3, abs=1e-4)  # of 3 frames decided at the edge, 1 wrong


@pytest.mark.slow
def test_specialize_trains_decides_and_records_why(records_dir, tmp_path):
    champion_dir = tmp_path / "champion"
    shutil.copytree(DEFAULT_STUDENT_MANIFEST.parent, champion_dir)
    decision = specialize("road", records_dir, champion_dir / "manifest.json", tmp_path / "challenger", epochs=2,
                          progress=False)
    assert decision["frames"] == 8 and decision["camera"] == "road" and decision["records"] == 40
    assert isinstance(decision["promote"], bool) and decision["why"]
    for role in ("champion", "challenger"):
        assert 0 <= decision[role]["at_bands"]["escalation_fraction"] <= 1
    saved = json.loads((tmp_path / "challenger" / "decision.json").read_text())
    assert saved["promote"] == decision["promote"]
    manifest = json.loads((tmp_path / "challenger" / "manifest.json").read_text())
    assert manifest["training"]["specialization"]["camera"] == "road"
    assert manifest["training"]["fine_tuned_from"].endswith("manifest.json")


def _with_calibration(folder, a, b):
    """The shipped student (same weights, sha256 intact) with every label's Platt calibration replaced."""
    shutil.copytree(DEFAULT_STUDENT_MANIFEST.parent, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["calibration"] = {label: {"a": a, "b": b} for label in manifest["calibration"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


@pytest.mark.slow
def test_decide_refuses_a_worse_challenger_and_says_why(tmp_path, vtest_path, teacher_manifest):
    (tmp_path / "records").mkdir()
    write_records(tmp_path / "records", vtest_path, teacher_manifest, camera="plaza", every=20, limit=40)
    blind = _with_calibration(tmp_path / "blind", 0.01, -8.0)  # every score ~0: it misses every person
    data = records_dataset(load_records(tmp_path / "records", "plaza"), (640, 384))
    decision = decide(DEFAULT_STUDENT_MANIFEST, blind, data, 0.5, 0.2, 0.97, 0.4)
    assert decision["challenger"]["at_bands"]["person_presence_recall"] == 0.0
    assert decision["champion"]["at_bands"]["person_presence_recall"] > 0.5
    assert decision["challenger"]["at_bands"]["edge_disagreement"] == 1.0  # what its audits would show
    assert decision["promote"] is False and "worse recall on person" in decision["why"]
    same = decide(DEFAULT_STUDENT_MANIFEST, DEFAULT_STUDENT_MANIFEST, data, 0.5, 0.2, 0.97, 0.4)
    assert same["promote"] is False and "no fewer escalations" in same["why"]  # a tie is not a promotion


def test_rollback_limits_hold_the_student_to_the_larger_need_not_to_a_confidently_wrong_champion():
    from models.student.limits import rollback_limits

    wrong_champion = {"promote": True, "bands": {"accept": 0.3, "reject": 0.2},
                      "champion": {"at_bands": {"escalation_fraction": 0.02, "edge_disagreement": 0.9}},
                      "challenger": {"cheapest_for_target": {"escalation_fraction": 0.15},
                                     "at_bands": {"escalation_fraction": 0.6}}}
    # the champion escalated 2% by being wrong; the student needs 15% at its own bands: that is its promise
    assert rollback_limits(wrong_champion) == {"max_escalation": 0.2, "max_audit_disagreement": 1.0}
    # live, the champion escalated 30%: the student may not exceed that (+5 points) either way
    assert rollback_limits(wrong_champion, live_escalation=0.3)["max_escalation"] == 0.35
    at_camera_bands = {**wrong_champion, "bands": None}  # no bands of its own: its need at the camera's bands
    assert rollback_limits(at_camera_bands, escalation_margin=0.1)["max_escalation"] == 0.7
