"""Per-camera specialization on real footage, short form: records -> fine-tune -> champion/challenger."""

import json
import shutil
import uuid

import cv2
import numpy as np
import pytest

from contracts.jobs import Bands
from contracts.training import TrainingCrop, TrainingRecord
from contracts.wire import Crop, DetectionRecord
from models.exceptions import ModelError
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.runtime import load_detector
from models.student.collected import load_records, records_dataset
from models.student.decision import Decision
from models.student.defaults import DEFAULTS
from models.student.evidence import count_evidence
from models.student.specialize import cascade_outcome, decide, specialize
from tests.decisions import decision as make_decision


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


@pytest.fixture(scope="module")
def plaza_records(tmp_path_factory, teacher_manifest, vtest_path, shared_footage):
    """Frames with people (vtest) and without (a road), interleaved in time: both kinds are held back."""
    folder = tmp_path_factory.mktemp("plaza-records")
    write_records(folder, vtest_path, teacher_manifest, camera="plaza", every=5, limit=20)
    write_records(folder, shared_footage / "car-detection.mp4", teacher_manifest, camera="plaza", every=5, limit=20)
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
    assert out.escalation_fraction == 0.25
    person = out.labels["person"]
    assert person.recall == pytest.approx(2 / 3, abs=1e-4) and person.precision == 1.0
    assert person.recall_lower < person.recall  # the bound is below the point estimate
    assert out.labels["vehicle"].recall is None  # never present: "n/a", not 1.000
    assert out.edge_disagreement == pytest.approx(1 / 3, abs=1e-4)  # of 3 frames decided at the edge, 1 wrong


def test_too_little_evidence_trains_nothing_and_says_keep_collecting(records_dir, tmp_path):
    decision = specialize("road", records_dir, CENTERNET_STUDENT_MANIFEST, tmp_path / "challenger", progress=False)
    assert decision.verdict == "collect" and not decision.promote
    assert "too little evidence, keep collecting" in decision.why
    assert any("at least 30 needed" in m for m in decision.evidence.missing)
    assert not (tmp_path / "challenger" / "manifest.json").exists()  # no minutes spent training
    saved = json.loads((tmp_path / "challenger" / "decision.json").read_text())
    assert saved["verdict"] == "collect" and saved["evidence"]["missing"]


@pytest.mark.slow
def test_specialize_trains_decides_and_records_why(plaza_records, tmp_path):
    champion_dir = tmp_path / "champion"
    shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, champion_dir)
    # the evidence gate lowered so that 40 records train (the bound still decides)
    decision = specialize("plaza", plaza_records, champion_dir / "manifest.json", tmp_path / "challenger", epochs=2,
                          min_present=1, min_absent=1, min_span_s=0, progress=False)
    assert decision.frames == 8 and decision.camera == "plaza" and decision.records == 40
    assert decision.verdict in ("promote", "keep") and decision.why
    for report in (decision.champion, decision.challenger):
        assert 0 <= report.at_bands.escalation_fraction <= 1
    # 8 held-back frames can never prove recall 0.97: the bound keeps the camera onboarding
    assert decision.verdict == "keep" and decision.bands is None
    saved = Decision.load(tmp_path / "challenger" / "decision.json")
    assert saved.verdict == decision.verdict
    manifest = json.loads((tmp_path / "challenger" / "manifest.json").read_text())
    assert manifest["training"]["specialization"]["camera"] == "plaza"
    assert manifest["training"]["fine_tuned_from"].endswith("manifest.json")


def _with_calibration(folder, a, b):
    """The shipped student (same weights, sha256 intact) with every label's Platt calibration replaced."""
    shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["calibration"] = {label: {"a": a, "b": b} for label in manifest["calibration"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


@pytest.mark.slow
def test_decide_refuses_a_blind_challenger_and_says_why(tmp_path, plaza_records):
    blind = _with_calibration(tmp_path / "blind", 0.01, -8.0)  # every score ~0: it misses every person
    records = load_records(plaza_records, "plaza")
    data = records_dataset(records, (640, 384))
    evidence = count_evidence(records)
    decision = decide(CENTERNET_STUDENT_MANIFEST, blind, data, Bands(accept=0.5, reject=0.2), DEFAULTS, 0.4, evidence)
    assert decision.challenger.at_bands.labels["person"].recall == 0.0
    assert decision.champion.at_bands.labels["person"].recall > 0.5
    assert decision.challenger.at_bands.edge_disagreement >= 0.5  # what its audits would show: every frame with someone
    assert decision.verdict == "keep" and "no bands bring the challenger's recall bound" in decision.why


def test_rollback_limits_hold_the_student_to_the_larger_need_not_to_a_confidently_wrong_champion():
    from models.student.limits import rollback_limits

    wrong_champion = make_decision(champion_escalation=0.02, champion_disagreement=0.9, own_escalation=0.15,
                                   bands={"accept": 0.3, "reject": 0.2})
    # the champion escalated 2% by being wrong; the student needs 15% at its own bands: that is its promise
    assert rollback_limits(wrong_champion) == {"max_escalation": 0.2, "max_audit_disagreement": 1.0}
    # live, the champion escalated 30%: the student may not exceed that (+5 points) either way
    assert rollback_limits(wrong_champion, live_escalation=0.3)["max_escalation"] == 0.35
