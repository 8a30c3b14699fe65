"""Model updates as IoT jobs, over a real broker with a responder that speaks the Jobs MQTT API, and the
bundles served over HTTP on loopback: download, verify, swap, health check on live frames, probation,
roll back; a tampered model never runs; SUCCEEDED / FAILED with a reason."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
from pathlib import Path

import pytest

from edge_agent.app import Agent
from edge_agent.fleet import jobs as jobs_module
from edge_agent.students.store import ModelStore, load_student
from models.bundle import pack_bundle
from models.paths import CENTERNET_STUDENT_MANIFEST
from tests.decisions import decision
from tests.edge_agent.aws_side import CloudResponder, JobsService, PacedSource, wait_until
from tests.edge_agent.conftest import agent_config, default_student_version

NEW = "1.0.1-test"


def _student(root: Path, version: str, tamper_model: bool = False, camera: str | None = None) -> Path:
    """A copy of the shipped student as another version (same weights: its sha256 still matches),
    optionally marked as specialized for one camera."""
    folder = root / version
    folder.mkdir(parents=True)
    manifest = json.loads(CENTERNET_STUDENT_MANIFEST.read_text())
    manifest["version"] = version
    if camera is not None:
        manifest["training"]["specialization"] = {"camera": camera}
    shutil.copy(CENTERNET_STUDENT_MANIFEST.parent / manifest["file"], folder / manifest["file"])
    if tamper_model:  # the model no longer matches the sha256 its manifest declares
        with open(folder / manifest["file"], "ab") as f:
            f.write(b"\0")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Bundles served over HTTP on loopback: name -> (url, sha256 the job document states)."""
    root = tmp_path_factory.mktemp("bundles")
    served = root / "www"
    served.mkdir()
    out = {}
    good_sha = pack_bundle(_student(root / "src", NEW), served / "good.tar.gz")
    out["good"] = ("good.tar.gz", good_sha)
    data = bytearray((served / "good.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF  # flipped in transit or on the server: the job's sha256 no longer matches
    (served / "tampered.tar.gz").write_bytes(bytes(data))
    out["tampered"] = ("tampered.tar.gz", good_sha)
    out["lying"] = ("lying.tar.gz", pack_bundle(_student(root / "src2", "1.0.2-test", tamper_model=True),
                                                served / "lying.tar.gz"))
    out["for-cam"] = ("for-cam.tar.gz", pack_bundle(_student(root / "src3", "1.0.0+cam.1", camera="cam"),
                                                    served / "for-cam.tar.gz"))
    out["for-door"] = ("for-door.tar.gz", pack_bundle(_student(root / "src4", "1.0.0+door.1", camera="door"),
                                                      served / "for-door.tar.gz"))
    escape = io.BytesIO()
    with tarfile.open(fileobj=escape, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (served / "escape.tar.gz").write_bytes(escape.getvalue())
    out["escape"] = ("escape.tar.gz", hashlib.sha256(escape.getvalue()).hexdigest())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    yield {k: (base + name, sha) for k, (name, sha) in out.items()}
    server.shutdown()


def _doc(bundles, name, version=NEW):
    url, sha = bundles[name]
    return {"operation": "model-update", "version": version, "url": url, "sha256": sha}


@pytest.fixture()
def running(broker, vtest_frames, tmp_path):
    """An agent with jobs on, its cloud, and the jobs service; yields (agent, service, config)."""
    made = []

    def start(thing: str, **fleet):
        config = agent_config(tmp_path, broker.port, thing=thing, fleet={"shadow": False, **fleet})
        service = JobsService(broker.port, thing)
        cloud = CloudResponder(broker.port, client_id=f"cloud-{thing}")
        agent = Agent(config, sources=[PacedSource("cam", vtest_frames, 10_000, 0.05)])
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        made.append((agent, thread, service, cloud))
        return agent, service, config

    yield start
    for agent, thread, service, cloud in made:
        agent.stop()
        thread.join(30)
        service.close()
        cloud.close()
        assert agent.errors == 0


@pytest.mark.slow
def test_bad_jobs_fail_with_a_reason_and_a_good_one_succeeds(running, bundles, tmp_path):
    agent, service, config = running("gw-jobs")
    jobs = [("no-doc", {"operation": "reboot"}, "jobDocument.operation"),
            ("bad-sha", {**_doc(bundles, "good"), "sha256": "abc"}, "jobDocument.sha256"),
            ("tampered", _doc(bundles, "tampered"), "sha256"),
            ("lying", _doc(bundles, "lying", "1.0.2-test"), "refused"),
            ("escape", _doc(bundles, "escape", "9.9.9"), "plain files only"),
            ("not-there", {**_doc(bundles, "good"), "url": bundles["good"][0] + ".missing"}, "404"),
            ("good", _doc(bundles, "good"), "passed its health check")]
    for job_id, document, _ in jobs:
        service.add(job_id, document)
    wait_until(lambda: all(service.final(j) for j, _, _ in jobs), 60, "every job to finish")
    for job_id, _, reason in jobs:
        status, details = service.final(job_id)
        assert status == ("SUCCEEDED" if job_id == "good" else "FAILED"), (job_id, details)
        assert reason in details["reason"], (job_id, details)
    assert ("IN_PROGRESS", {"step": "downloading", "version": NEW}) in service.statuses["good"]
    assert agent.model_info()["version"] == NEW
    store = ModelStore(config.fleet.models_dir)
    assert store.installed() == [NEW]  # nothing of the failed ones stays on disk
    assert not (tmp_path / "outside.txt").exists() and not (Path(config.fleet.models_dir) / "outside.txt").exists()
    assert load_student(config).manifest.version == NEW  # a restart runs the update
    service.add("again", _doc(bundles, "good"))
    wait_until(lambda: service.final("again"), 10, "the repeated job")
    assert "already running" in service.final("again")[1]["reason"]


def test_installed_model_tampered_on_disk_never_runs(bundles, tmp_path):
    config = agent_config(tmp_path, 1)
    store = ModelStore(config.fleet.models_dir)
    manifest = _student(tmp_path / "src", NEW)
    target = store.versions / NEW
    shutil.copytree(manifest.parent, target)
    store.activate(target / "manifest.json")
    assert load_student(config).manifest.version == NEW
    onnx = next(target.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-10])  # damaged after install
    # the configured student, not the damaged one
    assert load_student(config).manifest.version == default_student_version()


def test_failed_health_check_or_probation_keeps_or_restores_the_running_model(running, bundles, monkeypatch):
    agent, service, config = running("gw-rollback", health_max_latency_ms=0.001)
    service.add("too-slow", _doc(bundles, "good"))
    wait_until(lambda: service.final("too-slow"), 30, "the slow model's job")
    assert "health check on live frames failed" in service.final("too-slow")[1]["reason"]
    assert agent.model_info()["version"] == default_student_version()

    config.fleet.health_max_latency_ms = 10_000.0
    real_load = jobs_module.load_detector

    def load_breaking_after_health_check(*args, **kwargs):
        detector = real_load(*args, **kwargs)
        calls = {"n": 0}
        detect = detector.detect

        def flaky(frames):
            calls["n"] += 1
            if calls["n"] > 2:  # fine in the health check (2 calls), broken on the first live batch
                raise RuntimeError("onnxruntime: out of memory")
            return detect(frames)

        detector.detect = flaky
        return detector

    monkeypatch.setattr(jobs_module, "load_detector", load_breaking_after_health_check)
    service.add("breaks-live", _doc(bundles, "good"))
    wait_until(lambda: service.final("breaks-live"), 30, "the probation job")
    status, details = service.final("breaks-live")
    assert status == "FAILED" and "rolled back" in details["reason"]
    assert agent.model_info()["version"] == default_student_version()
    assert ModelStore(config.fleet.models_dir).active_manifest() is None
    sampled = agent.summary()["total"]["sampled"]
    wait_until(lambda: agent.summary()["total"]["sampled"] > sampled + 3, 10, "frames after the roll-back")


@pytest.mark.slow
def test_a_camera_job_gives_that_camera_its_own_student_and_refuses_a_mismatch(running, bundles, tmp_path):
    agent, service, config = running("gw-camera")
    jobs = [("wrong-camera", {**_doc(bundles, "for-door", "1.0.0+door.1"), "camera": "cam"}, "not 'cam'"),
            ("no-such-camera", {**_doc(bundles, "for-door", "1.0.0+door.1"), "camera": "door"}, "not on this gateway"),
            ("tampered", {**_doc(bundles, "tampered"), "camera": "cam"}, "sha256"),
            ("bad-bands", {**_doc(bundles, "for-cam", "1.0.0+cam.1"), "camera": "cam",
                           "bands": {"accept": 0.2, "reject": 0.3}}, "jobDocument.bands"),
            ("cam", {**_doc(bundles, "for-cam", "1.0.0+cam.1"), "camera": "cam", "max_escalation": 0.3,
                     "bands": {"accept": 0.4, "reject": 0.1}}, "runs for camera cam")]
    for job_id, document, _ in jobs:
        service.add(job_id, document)
    wait_until(lambda: all(service.final(j) for j, _, _ in jobs), 60, "every camera job to finish")
    for job_id, _, reason in jobs:
        status, details = service.final(job_id)
        assert status == ("SUCCEEDED" if job_id == "cam" else "FAILED"), (job_id, details)
        assert reason in details["reason"], (job_id, details)
    own = agent.cameras["cam"].own_student
    assert own is not None and own.detector.manifest.version == "1.0.0+cam.1"
    assert agent.cameras["cam"].guard.limits.max_escalation == 0.3
    assert (agent.cameras["cam"].cascade.bands["person"].accept, agent.cameras["cam"].cascade.bands["person"].reject) \
        == (0.4, 0.1)  # the student's own bands, from the job
    assert agent.model_info()["version"] == default_student_version()  # the agent's own student is untouched
    restarted = Agent(config, sources=[])
    try:  # the camera's student survives a restart, with its limits
        assert restarted.cameras["cam"].own_student.detector.manifest.version == "1.0.0+cam.1"
        assert restarted.cameras["cam"].guard.limits.max_escalation == 0.3
        assert restarted.cameras["cam"].cascade.bands["person"].accept == 0.4
    finally:
        restarted.close()


def test_models_pack_prints_a_camera_job_document_with_the_decisions_limits(tmp_path, capsys):
    from edge_agent.cli import main

    manifest = _student(tmp_path, "1.0.0+cam.2", camera="cam")
    decision("promote", camera="cam", champion_escalation=0.4, champion_disagreement=0.05, own_escalation=0.1,
             bands={"accept": 0.4, "reject": 0.2}).save(manifest.parent / "decision.json")
    assert main(["models", "pack", str(manifest), "--out", str(tmp_path / "b.tar.gz"), "--camera", "door"]) == 2
    assert "specialized for camera 'cam', not 'door'" in capsys.readouterr().err
    assert main(["models", "pack", str(manifest), "--out", str(tmp_path / "b.tar.gz"), "--camera", "cam",
                 "--url", "https://bucket.s3.amazonaws.com/b.tar.gz"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["camera"] == "cam" and document["version"] == "1.0.0+cam.2"
    assert document["max_escalation"] == 0.45 and document["max_audit_disagreement"] == 0.15
    assert document["bands"] == {"accept": 0.4, "reject": 0.2}
    assert document["sha256"] == hashlib.sha256((tmp_path / "b.tar.gz").read_bytes()).hexdigest()
    jobs_module.ModelJob.model_validate(document)  # what the agent accepts
