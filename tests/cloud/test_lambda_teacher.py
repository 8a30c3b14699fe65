"""The teacher inside the router Lambda: the real teacher on onnxruntime answering what the router asks, and the
handler run by awslambdaric as a real runtime process against the loopback Runtime API."""

import base64
import json
import struct
import uuid
import zlib

import pytest

from cloud.exceptions import EndpointError
from cloud.inference.server import resolve_model
from cloud.lambda_teacher.bench import THING, escalation_messages, register_bench_gateway, rule_event
from cloud.lambda_teacher.emulator import LambdaError, LambdaProcess
from cloud.lambda_teacher.teacher import InProcessRuntime, response_json
from cloud.router.endpoint import invoke
from contracts.wire import InvocationRequest


@pytest.fixture(scope="module")
def teacher():
    return InProcessRuntime.from_manifest(str(resolve_model(None)), threads=1)


@pytest.fixture(scope="module")
def events():
    """Two escalations of whole vtest frames, from the bench's registered gateway."""
    return escalation_messages(2)


def test_in_process_teacher_answers_a_real_frame(teacher, events):
    jpeg = base64.b64decode(events[0]["crops"][0]["jpeg_b64"])
    doc = response_json(teacher, InvocationRequest((("0", jpeg), ("1", jpeg))).to_bytes())
    assert doc["model"].startswith("yolov3-tiny")
    assert [p["id"] for p in doc["predictions"]] == ["0", "1"]
    people = [d for d in doc["predictions"][0]["detections"] if d["label"] == "person"]
    assert len(people) >= 3  # a vtest frame shows several pedestrians
    assert doc["predictions"][0]["detections"] == doc["predictions"][1]["detections"]


def test_a_bad_image_is_a_refusal_the_router_does_not_retry(teacher):
    calls = []
    with pytest.raises(EndpointError) as err:
        invoke(teacher, "in-process", InvocationRequest((("0", b"not a jpeg"),)), attempts=3,
               sleep=calls.append)
    assert err.value.kind == "refused" and "instance '0'" in str(err.value) and "HTTP 415" in str(err.value)
    assert calls == []  # not retried
    # a pixel bomb is refused from its header, before any decoding
    ihdr = struct.pack(">II", 20000, 20000) + b"\x08\x02\x00\x00\x00"
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(EndpointError, match=r"HTTP 413.*20000x20000"):
        invoke(teacher, "in-process", InvocationRequest((("0", png),)), attempts=1)


@pytest.mark.slow
def test_awslambdaric_runs_the_handler_end_to_end(tmp_path, events):
    store = f"sqlite:///{tmp_path / 'r.sqlite'}"
    register_bench_gateway(store)
    env = {"FRAMESIEVE_STORE": store, "FRAMESIEVE_VERDICT_TOPIC": "", "FRAMESIEVE_TRAINING_BUCKET": "",
           "FRAMESIEVE_ALERT_TOPIC_ARN": "", "FRAMESIEVE_TEACHER_MANIFEST": str(resolve_model(None)),
           "FRAMESIEVE_TEACHER_THREADS": "1"}
    fn = LambdaProcess("cloud.lambda_teacher.handler.handler", env)
    try:
        first = fn.invoke(rule_event(events[0]))
        assert first["status"] == "stored" and first["detections"] >= 3
        assert first["calls"].get("endpoint_calls", 0) == 0  # no SageMaker call: the teacher is in-process
        assert fn.invoke(rule_event(events[0]))["status"] == "duplicate"  # at-least-once: the same id again
        # a JPEG header over garbage passes the wire check; the teacher refuses it, and only it is dead-lettered
        garbage = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 64).decode()
        bad = {**events[1], "message_id": str(uuid.uuid4()), "crops": [{**events[1]["crops"][0],
                                                                         "jpeg_b64": garbage}]}
        out = fn.invoke(rule_event(bad))
        assert out["status"] == "dead_letter" and out["reason"].startswith("endpoint: refused"), out
        assert fn.invoke(rule_event({**events[1], "message_id": str(uuid.uuid4())}))["status"] == "stored"
        # the router's own rules hold inside the Lambda: a thing with no registry entry is refused unpaid
        stranger = fn.invoke(rule_event({**events[1], "message_id": str(uuid.uuid4())}, thing=THING + "-x"))
        assert stranger["status"] == "dead_letter" and "unauthorized" in stranger["reason"]
        assert fn.peak_rss_mb() > 50 and fn.cpu_s() > 0
    finally:
        fn.stop()


@pytest.mark.slow
def test_a_missing_model_fails_the_init_not_each_event(tmp_path, events):
    env = {"FRAMESIEVE_STORE": f"sqlite:///{tmp_path / 'r.sqlite'}",
           "FRAMESIEVE_TEACHER_MANIFEST": str(tmp_path / "absent" / "manifest.json")}
    fn = LambdaProcess("cloud.lambda_teacher.handler.handler", env)
    try:
        with pytest.raises(LambdaError, match=r"failed its init.*absent"):
            fn.invoke(rule_event(events[0]), timeout_s=60)
    finally:
        fn.stop()
    assert json.dumps(fn.log)  # the process's output was drained, not left to block it


@pytest.mark.slow
def test_bench_lambda_measures_what_the_planner_reads():
    from cloud.lambda_teacher.bench import bench_lambda

    r = bench_lambda(invocations=3, memory_mb=1769)
    assert 0 < r.warm_p50_s <= r.warm_p95_s < 5 and r.cold_start_s > r.warm_p50_s
    assert r.gb_s_per_image == pytest.approx(r.warm_mean_s * 1769 / 1024)
    assert 0 < r.cpu_s_per_image < 5 and r.peak_rss_mb > 50
    text = r.report()
    assert "lambda-teacher:" in text and f"s_per_image: {r.warm_mean_s:.4f}" in text


@pytest.mark.parametrize("argv", [["--invocations", "0"], ["--memory-mb", "64"], ["--threads", "0"]])
def test_bench_lambda_refuses_bad_arguments(capsys, argv):
    from cloud.cli import main

    assert main(["bench-lambda", *argv]) == 2
    assert "--invocations must be >= 1, --memory-mb in [128, 10240]" in capsys.readouterr().err
