"""The specialization loop in the cloud, end to end on loopback: real vtest frames escalated through the
router (real teacher server over HTTP) land as training records in S3 on moto_server; `framesieve-cloud
specialize` syncs them, fine-tunes, decides, uploads the bundle and creates the gateway's IoT job, whose
document the gateway accepts and whose URL serves exactly the bundle the job's sha256 names."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request

import cv2
import pytest

from cloud.cli import main
from cloud.specialize import sync_records
from contracts.jobs import ModelJob
from contracts.wire import Crop
from models.paths import CENTERNET_STUDENT_MANIFEST
from models.student.defaults import DEFAULTS
from tests.cloud.conftest import CAMERA, SITE, THING, escalation_event


@pytest.fixture(scope="module")
def escalated_frames(vtest_every_2s):
    """24 real whole frames, 2 s apart, as the edge's crops."""
    return [(Crop(0, (0.0, 0.0, 768.0, 576.0), cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(),
                  (768, 576)),) for frame in vtest_every_2s[:24]]


@pytest.mark.slow
def test_cloud_loop_from_router_records_to_an_iot_job_the_gateway_accepts(stack, escalated_frames, tmp_path,
                                                                          capsys):
    for k, crops in enumerate(escalated_frames):
        outcome = stack.router.process(escalation_event(crops, created_s=1_764_400_000.0 + 2 * k))
        assert outcome.training_key, outcome
    iot = stack.client("iot")
    iot.create_thing(thingName=THING)
    # A champion with good weights and a calibration that leaves every score uncertain: it escalates all.
    champion = tmp_path / "champion"
    shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, champion)
    manifest = json.loads((champion / "manifest.json").read_text())
    manifest["calibration"] = {label: {"a": 0.01, "b": -0.3} for label in manifest["calibration"]}
    (champion / "manifest.json").write_text(json.dumps(manifest))
    bucket = stack.resources.bucket
    rules = tmp_path / "rules.json"  # 24 records cannot prove recall 0.97: the gate set for a demonstration
    rules.write_text(DEFAULTS.model_copy(update={"confidence": 0.6, "min_present": 1, "min_absent": 0,
                                                 "min_span_s": 0, "guard_detect_s": 36_000,
                                                 "guard_max_audit_fraction": 1.0}).model_dump_json())

    assert main(["specialize", "--bucket", bucket, "--rules", str(rules), "--site", SITE, "--camera", CAMERA, "--from",
                 str(champion / "manifest.json"), "--out", str(tmp_path / "work"), "--thing", THING,
                 "--epochs", "2", "--min-records", "12", "--endpoint-url", stack.moto.url]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["records"] == result["downloaded"] == 24
    assert result["promote"] is True, result["why"]
    document = json.loads(iot.get_job_document(jobId=result["job_id"])["document"])
    assert document == result["document"] and document["camera"] == CAMERA
    assert document["max_escalation"] > 0 and document["max_audit_disagreement"] > 0
    assert 0 <= document["bands"]["reject"] < document["bands"]["accept"] <= 1  # the student's own bands
    ModelJob.model_validate(document)  # what the gateway's job runner accepts
    assert iot.describe_job(jobId=result["job_id"])["job"]["targets"] == [
        iot.describe_thing(thingName=THING)["thingArn"]]
    with urllib.request.urlopen(document["url"], timeout=10) as reply:  # the presigned URL, as the gateway fetches
        assert hashlib.sha256(reply.read()).hexdigest() == document["sha256"]

    # a second sync downloads nothing new
    assert sync_records(stack.client("s3"), bucket, f"training-data/{SITE}/{CAMERA}/", tmp_path / "work" / "records") \
        == (24, 0)


def test_cloud_loop_refuses_bad_names_and_too_few_records(stack, tmp_path, capsys):
    common = ["--bucket", stack.resources.bucket, "--from", str(CENTERNET_STUDENT_MANIFEST), "--out",
              str(tmp_path / "w"), "--endpoint-url", stack.moto.url]
    assert main(["specialize", "--site", SITE, "--camera", "../etc", *common]) == 2
    assert "--camera '../etc' must be" in capsys.readouterr().err
    assert main(["specialize", "--site", SITE, "--camera", "empty-cam", *common]) == 0  # nothing to do yet
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "collect" and not result["promote"]
    assert "keep collecting: 0 records, at least 40 needed" in result["why"]
