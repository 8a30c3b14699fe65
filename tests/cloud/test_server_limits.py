"""The limits of cloud/httpserve.py and cloud/inference/images.py on a real `framesieve-cloud serve` process on
loopback (issue 15): pixel bombs refused from their header with the server's peak memory read from /proc,
non-JPEG/PNG refused, a trickling client cut off on a whole-request clock, connections capped, and SIGTERM
draining: the request in flight answered, a new one 503, exit 0."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import pytest

from cloud.devaws import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S, MAX_CONNECTIONS = 2.0, 6


def png_bomb(side: int = 20000) -> bytes:
    """A valid RGB PNG of side x side black pixels: ~1.2 MB on the wire, 1.2 GB decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate, rows = zlib.compressobj(9), bytes(1 + 3 * side) * 200  # 200 rows at a time, filter byte 0
    idat = b"".join(deflate.compress(rows) for _ in range(side // 200)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bomb(side: int = 20000) -> bytes:
    """A real 16x16 JPEG whose frame header says side x side: libjpeg allocates and decodes all of it."""
    data = bytearray(cv2.imencode(".jpg", cv2.UMat(16, 16, cv2.CV_8UC3).get() * 0)[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


class Served:
    def __init__(self, model: Path, *extra: str):
        self.port = free_port()
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cloud.cli", "serve", "--model", str(model), "--threads", "1", "--port",
             str(self.port), "--max-connections", str(MAX_CONNECTIONS), "--request-deadline-s", str(DEADLINE_S),
             *extra], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.request("GET", "/ping")[0] != 200:
            assert self.proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "image/jpeg",
                timeout: float = 60) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        except OSError:
            return 0, {}
        finally:
            conn.close()

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def served(teacher_manifest):
    server = Served(teacher_manifest)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jpeg(vtest_frames) -> bytes:
    return cv2.imencode(".jpg", vtest_frames[1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def test_pixel_bombs_are_refused_from_the_header_and_memory_stays_bounded(served, jpeg):
    png, bomb_jpeg = png_bomb(), jpeg_bomb()
    assert 1_000_000 < len(png) < 1_400_000 and len(bomb_jpeg) < 1000
    before = served.peak_rss_mb()
    b64 = base64.b64encode(png).decode()
    cases = [(png, "image/png"), (bomb_jpeg, "image/jpeg"),
             (json.dumps({"instances": [{"id": "a", "jpeg_b64": b64}]}).encode(), "application/json")]
    results: list[tuple[int, dict]] = []
    threads = [threading.Thread(target=lambda b=b, c=c: results.append(served.request("POST", "/invocations", b, c)))
               for b, c in cases * 2]  # each twice, all at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [s for s, _ in results] == [413] * 6, results
    assert all("20000x20000" in body["error"] and "over the limit" in body["error"] for _, body in results)
    peak = served.peak_rss_mb()
    print(f"\nserver peak RSS: {before:.0f} MB before the bombs, {peak:.0f} MB after")
    assert peak < 500, f"peak RSS {peak:.0f} MB"
    assert peak - before < 64, f"the refused bombs took {peak - before:.0f} MB"  # their bodies, not their pixels
    status, body = served.request("POST", "/invocations", jpeg)  # and it keeps serving
    assert status == 200 and body["predictions"][0]["detections"], body


@pytest.mark.parametrize(("name", "data"), [("GIF", b"GIF89a\x10\x00\x10\x00" + b"\0" * 64),
                                            ("BMP", b"BM" + b"\0" * 64), ("WebP", b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 40),
                                            ("TIFF", b"II*\0" + b"\0" * 64)])
def test_only_jpeg_and_png_are_decoded(served, name, data):
    status, body = served.request("POST", "/invocations", data)
    assert status == 415 and "neither JPEG nor PNG" in body["error"], body


@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_client_is_cut_off_on_a_whole_request_clock(served, stage):
    """One byte every 0.25 s: each read is quick, the request never ends. Cut off after DEADLINE_S in all."""
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        t0 = time.monotonic()
        if stage == "body":
            sock.sendall(head)
        trickle = head if stage == "headers" else b"\0" * 1000
        answer = b""
        for byte in trickle:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # the server closed the connection
                break
            time.sleep(0.25)
            sock.setblocking(False)
            try:
                got = sock.recv(4096)
                answer += got
                if not got:
                    break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if answer or time.monotonic() - t0 > 4 * DEADLINE_S:
                break
        held = time.monotonic() - t0
    print(f"\ntrickling {stage}: cut off after {held:.2f} s ({answer[:12]!r})")
    assert held < DEADLINE_S + 1.5, f"held {held:.1f} s"
    if stage == "body":
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert served.request("GET", "/ping")[0] == 200


def test_connections_beyond_the_cap_are_answered_503(served):
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # accepted, each holding a slot while it waits for a request line
        status, body = served.request("GET", "/ping", timeout=5)
        assert status == 503 and "limit of 6 connections" in body["error"], body
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while served.request("GET", "/ping")[0] != 200:
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.1)


def test_sigterm_answers_the_request_in_flight_refuses_new_ones_and_exits(teacher_manifest, vtest_frames):
    server = Served(teacher_manifest, "--max-images", "64")
    small = cv2.imencode(".jpg", vtest_frames[1], [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes()
    batch = json.dumps({"instances": [{"id": str(k), "jpeg_b64": base64.b64encode(small).decode()}
                                      for k in range(64)]}).encode()
    in_flight: list[tuple[int, dict]] = []
    sender = threading.Thread(target=lambda: in_flight.append(
        server.request("POST", "/invocations", batch, "application/json")))
    assert len(batch) < 6 * 1024 * 1024
    try:
        sender.start()
        time.sleep(0.8)  # the 64 images are being decoded and run (seconds on one thread)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late = server.request("GET", "/ping", timeout=5)
        sender.join(60)
        code = server.proc.wait(30)
    finally:
        server.stop()
    assert in_flight and in_flight[0][0] == 200 and len(in_flight[0][1]["predictions"]) == 64, in_flight
    assert late[0] == 503 and "draining" in late[1]["error"], late
    assert code == 0
