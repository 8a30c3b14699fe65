"""The inference server over real HTTP on 127.0.0.1: the real teacher, real vtest.avi frames, plain
http.client and boto3's unchanged sagemaker-runtime client."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time

import boto3
import cv2
import numpy as np
import pytest
from botocore.config import Config

from cloud.inference.server import DynamicBatcher, start_in_thread
from contracts.detections import Detections
from contracts.wire import DetectionRecord, InvocationRequest, InvocationResponse
from models.exceptions import ModelError
from models.runtime import load_detector, presence_threshold

W, H = 768, 576


@pytest.fixture(scope="module")
def served(teacher_manifest):
    """The server on a free port, loading the teacher from its manifest as `serve` does."""
    server, port = start_in_thread(teacher_manifest, threads=2)
    yield server, port
    server.stop()


@pytest.fixture(scope="module")
def port(served) -> int:
    return served[1]


@pytest.fixture(scope="module")
def jpegs(vtest_frames) -> list[bytes]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in vtest_frames]


@pytest.fixture(scope="module")
def expected(teacher_manifest, jpegs) -> list[Detections]:
    """The detector called directly on the decoded JPEGs, at the manifest's per-label thresholds."""
    detector = load_detector(teacher_manifest, threads=2)
    decoded = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    out = []
    for dets in detector.detect(decoded):
        keep = np.array([s >= presence_threshold(detector.manifest, str(lbl))
                         for s, lbl in zip(dets.scores, dets.labels, strict=True)], bool)
        out.append(dets[keep])
    return out


@pytest.fixture(scope="module")
def runtime(port):
    return _client(port)


def _client(port: int):
    return boto3.client("sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60))


def _post(port: int, body: bytes, content_type: str | None = "image/jpeg", path: str = "/invocations",
          headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        hdrs = {"Content-Type": content_type} if content_type else {}
        conn.request("POST", path, body=body, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        assert resp.getheader("Content-Type") == "application/json"
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _get(port: int, path: str = "/ping") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _assert_same(got: tuple[DetectionRecord, ...], want: Detections) -> None:
    """Same detections: labels equal, boxes within 0.5 px, scores within 1e-3 (order-free)."""
    got_sorted = sorted(got, key=lambda d: (d.label, d.box))
    want_sorted = sorted(want.to_records(decimals=3), key=lambda r: (r["label"], tuple(r["box"])))
    assert len(got_sorted) == len(want_sorted), (got_sorted, want_sorted)
    for g, w in zip(got_sorted, want_sorted, strict=True):
        assert g.label == w["label"]
        assert abs(g.score - w["score"]) <= 1e-3
        np.testing.assert_allclose(g.box, w["box"], atol=0.5)


def test_ping_names_the_model(port):
    assert _get(port) == (200, {"status": "ok", "model": "yolov3-tiny-coco@1.0.0"})


@pytest.mark.slow
def test_jpeg_body_gets_the_detectors_people_in_frame_pixels(port, jpegs, expected):
    for jpeg, want in zip(jpegs, expected, strict=True):
        status, payload = _post(port, jpeg)
        assert status == 200, payload
        response = InvocationResponse.from_payload(payload)
        assert response.model == "yolov3-tiny-coco@1.0.0"
        [(image_id, dets)] = response.predictions
        assert image_id == "0"
        assert any(d.label == "person" for d in dets)
        for d in dets:
            assert 0 <= d.box[0] < d.box[2] <= W and 0 <= d.box[1] < d.box[3] <= H
            assert d.score >= 0.4
        _assert_same(dets, want)


@pytest.mark.slow
def test_boto3_sagemaker_runtime_works_unchanged(runtime, jpegs, expected):
    reply = runtime.invoke_endpoint(EndpointName="framesieve-teacher", Body=jpegs[0],
                                    ContentType="image/jpeg", Accept="application/json")
    assert reply["ContentType"] == "application/json"
    [(image_id, dets)] = InvocationResponse.from_payload(json.loads(reply["Body"].read())).predictions
    assert image_id == "0"
    _assert_same(dets, expected[0])

    order = [("cam-7/f300", 2), ("a", 5), ("0", 1)]
    request = InvocationRequest(tuple((i, jpegs[k]) for i, k in order))
    reply = runtime.invoke_endpoint(EndpointName="framesieve-teacher", Body=request.to_bytes(),
                                    ContentType="application/json")
    response = InvocationResponse.from_payload(json.loads(reply["Body"].read()))
    assert [i for i, _ in response.predictions] == [i for i, _ in order]
    for (_, dets), (_, k) in zip(response.predictions, order, strict=True):
        _assert_same(dets, expected[k])


@pytest.mark.slow
def test_concurrent_requests_get_their_own_answers(port, jpegs, expected):
    barrier, results, errors = threading.Barrier(8), {}, []

    def client(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for r in range(2):
                k = (n + r) % len(jpegs)
                status, payload = _post(port, jpegs[k])
                assert status == 200, payload
                results[(n, r)] = (k, InvocationResponse.from_payload(payload).predictions[0][1])
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == 16
    for k, dets in results.values():
        _assert_same(dets, expected[k])


def test_batcher_gathers_concurrent_requests_without_splitting_any():
    sizes: list[int] = []

    def run(frames):
        sizes.append(len(frames))
        time.sleep(0.02)
        return [int(f[0, 0, 0]) for f in frames]

    batcher = DynamicBatcher(run, max_batch=3, max_wait_ms=50)
    barrier, results = threading.Barrier(8), {}

    def submit(n: int) -> None:
        barrier.wait(timeout=10)
        results[n] = batcher.submit([np.full((8, 8, 3), n, np.uint8)])

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == {n: [n] for n in range(8)}
    assert max(sizes) <= 3 and len(sizes) < 8, sizes
    assert batcher.submit([np.full((8, 8, 3), k, np.uint8) for k in range(5)]) == [0, 1, 2, 3, 4]
    assert sizes[-1] == 5  # a request larger than max_batch runs whole, alone
    batcher.close()


def _json(instances) -> bytes:
    return json.dumps({"instances": instances}).encode()


BAD_INPUTS = [
    ("empty body", b"", "image/jpeg", {}, 400, "body is empty"),
    ("text/plain", b"a person", "text/plain", {}, 415, "Content-Type 'text/plain' is not accepted"),
    ("garbage as a jpeg", b"\xff\xd8not really a jpeg" * 10, "image/jpeg", {}, 400, "not a decodable image"),
    ("malformed json", b'{"instances": [', "application/json", {}, 400, "not valid JSON"),
    ("bad base64", _json([{"id": "x", "jpeg_b64": "***"}]), "application/json", {}, 400, "not valid base64"),
    ("no instances", b'{"images": []}', "application/json", {}, 400, "missing field 'instances'"),
    ("not an image in a batch", _json([{"id": "x", "jpeg_b64": base64.b64encode(b"hello").decode()}]),
     "application/json", {}, 415, "instance 'x' is neither JPEG nor PNG"),
    ("too many images", _json([{"id": str(i), "jpeg_b64": "AAAA"} for i in range(33)]), "application/json",
     {}, 413, "33 images, over the limit of 32"),
    ("oversized body", b"\0" * (6 * 1024 * 1024 + 1), "image/jpeg", {}, 413, "over the 6291456-byte limit"),
    ("csv wanted", b"x", "image/jpeg", {"Accept": "text/csv"}, 406, "replies are application/json"),
]


@pytest.mark.parametrize(("body", "content_type", "headers", "status", "message"),
                         [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_refused_with_a_reason_and_the_server_keeps_serving(port, body, content_type, headers,
                                                                          status, message):
    got, payload = _post(port, body, content_type, headers=headers)
    assert got == status, payload
    assert message in payload["error"], payload
    assert _get(port)[0] == 200


def test_unknown_routes_answer_404_and_405(port):
    assert _post(port, b"x", path="/predict")[0] == 404
    assert _get(port, "/invocations")[0] == 405


def test_declared_oversized_body_is_refused_before_it_is_read(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"Connection: close" in head


def test_boto3_sees_a_refused_request_as_sagemaker_reports_it(runtime):
    with pytest.raises(runtime.exceptions.ModelError) as info:
        runtime.invoke_endpoint(EndpointName="framesieve-teacher", Body=b"not an image",
                                ContentType="image/jpeg")
    assert info.value.response["OriginalStatusCode"] == 415  # only JPEG and PNG are decoded
    assert "neither JPEG nor PNG" in info.value.response["Error"]["Message"]


class FailingDetector:
    """The teacher's manifest, but every model call fails, as a broken GPU or model file would."""

    def __init__(self, manifest):
        self.manifest = manifest

    def detect(self, frames):
        raise ModelError("simulated: CUDA error: an illegal memory access was encountered")


@pytest.mark.slow
def test_model_failure_is_424_and_boto3_raises_model_error(served, jpegs):
    server, port = start_in_thread(FailingDetector(served[0].detector.manifest))
    try:
        status, payload = _post(port, jpegs[0])
        assert status == 424
        assert "the model failed" in payload["error"] and "illegal memory access" in payload["error"]
        client = _client(port)
        with pytest.raises(client.exceptions.ModelError) as info:
            client.invoke_endpoint(EndpointName="framesieve-teacher", Body=jpegs[0], ContentType="image/jpeg")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert info.value.response["OriginalStatusCode"] == 424
        assert _get(port)[0] == 200
    finally:
        server.stop()


def test_boto3_reads_the_variant_that_answered_and_a_wrong_target_variant_is_refused(runtime, jpegs):
    # this server is one production variant, named by --variant-name (default AllTraffic, the template's name)
    reply = runtime.invoke_endpoint(EndpointName="framesieve-teacher", Body=jpegs[0], ContentType="image/jpeg")
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    reply = runtime.invoke_endpoint(EndpointName="framesieve-teacher", Body=jpegs[0], ContentType="image/jpeg",
                                    TargetVariant="AllTraffic")
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    with pytest.raises(runtime.exceptions.ValidationError) as info:
        runtime.invoke_endpoint(EndpointName="framesieve-teacher", Body=jpegs[0], ContentType="image/jpeg",
                                TargetVariant="challenger")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "'challenger' is not a variant" in info.value.response["Error"]["Message"]
