"""A live MJPEG-over-HTTP stream on loopback: frames flow, a dead or stalled stream is reconnected."""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from edge_agent.pipeline.sources import SampledFrame
from edge_agent.pipeline.stream import StreamSource

pytestmark = pytest.mark.slow  # every test here runs real services, clips or training

FRAME_PERIOD_S = 0.1  # the camera sends 10 frames a second


class MjpegServer:
    """multipart/x-mixed-replace JPEG stream (what many IP cameras serve) on 127.0.0.1.

    stop() ends every connection (the stream dies); start() again serves on the same port;
    stall() makes the current connections go silent while keeping them open.
    """

    def __init__(self, jpegs: list[bytes]) -> None:
        self.jpegs = jpegs
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._generation = 0
        self._stalled_up_to = -1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner._generation += 1
                generation = owner._generation
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not owner._stop.is_set():
                        if generation <= owner._stalled_up_to:
                            owner._stop.wait(0.05)  # connection open, nothing sent
                            continue
                        jpeg = owner.jpegs[i % len(owner.jpegs)]
                        i += 1
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                        self.wfile.flush()
                        owner._stop.wait(FRAME_PERIOD_S)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    def start(self) -> None:
        self._stop.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stall(self) -> None:
        self._stalled_up_to = self._generation

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


@pytest.fixture()
def mjpeg_server(vtest_first_frames):
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes() for f in vtest_first_frames]
    server = MjpegServer(jpegs)
    server.start()
    yield server
    server.stop()


def read_within(source: StreamSource, timeout_s: float) -> SampledFrame:
    """read_sampled() with a deadline, so a hung stream fails the test instead of hanging it."""
    result: list[SampledFrame | None] = []
    worker = threading.Thread(target=lambda: result.append(source.read_sampled()), daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        source.close()
        pytest.fail(f"no sampled frame within {timeout_s} s; stats {source.stats()}")
    assert result and result[0] is not None, f"the source ended; stats {source.stats()}"
    return result[0]


def _stream(url: str, **opts) -> StreamSource:
    defaults = dict(fps=5.0, stall_timeout_s=1.5, open_timeout_s=2.0, backoff_initial_s=0.2,
                    backoff_max_s=1.0)
    return StreamSource("door", url, **{**defaults, **opts})


def test_frames_flow_then_a_dead_stream_is_reconnected(mjpeg_server, caplog):
    caplog.set_level(logging.WARNING, logger="edge_agent.pipeline.stream")
    source = _stream(mjpeg_server.url)
    try:
        first = [read_within(source, 5) for _ in range(3)]
        assert first[0].image.shape == (576, 768, 3)
        assert [f.pts_s for f in first] == sorted(f.pts_s for f in first)
        assert source.frames_seen > source.frames_sampled  # 10 fps grabbed, 5 fps retrieved
        assert source.reconnects == 0 and source.healthy

        mjpeg_server.stop()  # the camera dies...
        restart = threading.Timer(1.0, mjpeg_server.start)  # ...and is back a second later
        restart.start()
        for _ in range(5):  # a frame or two still in FFmpeg's buffer may come before the loss is seen
            read_within(source, 8)
            if source.reconnects:
                break
        restart.join()
        assert source.reconnects >= 1 and source.reconnect_attempts >= 1
        after = [read_within(source, 5) for _ in range(2)]  # frames flow again
        assert source.healthy
        assert after[0].pts_s > first[-1].pts_s + 0.9  # the source was down for ~1 s
        assert after[0].frame_index > first[-1].frame_index
        assert f"reconnecting to {mjpeg_server.url}" in caplog.text and "attempt" in caplog.text
    finally:
        source.close()


def test_a_stalled_stream_is_reconnected(mjpeg_server):
    source = _stream(mjpeg_server.url, stall_timeout_s=1.0)
    try:
        read_within(source, 5)
        mjpeg_server.stall()  # the connection stays open but no frame comes
        started = time.monotonic()
        read_within(source, 6)
        assert source.reconnects == 1
        assert "nothing for 1 s" in (source.last_error or "")
        assert time.monotonic() - started < 4.0
    finally:
        source.close()


def test_close_interrupts_the_backoff_wait(mjpeg_server):
    source = _stream(mjpeg_server.url, backoff_initial_s=20.0, backoff_max_s=20.0)
    read_within(source, 5)
    mjpeg_server.stop()
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(source.read_sampled()), daemon=True)
    worker.start()
    time.sleep(0.5)  # the source has lost the stream and waits 20 s before reconnecting
    started = time.monotonic()
    source.close()
    worker.join(3.0)
    assert not worker.is_alive() and result == [None]
    assert time.monotonic() - started < 1.0
    assert not source.healthy and source.last_error
