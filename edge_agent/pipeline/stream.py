"""Live streams (RTSP, HTTP MJPEG/HLS/...): sampled on the wall clock, drained continuously so a sample is
never a stale frame from FFmpeg's buffer, and reconnected with backoff when they die or stall (see
sources.py for the sampler and the other sources)."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge_agent.pipeline.decode import AVCapture, DecodeConfig, open_capture
from edge_agent.pipeline.sources import (
    ACCEPTED,
    LIVE_SCHEMES,
    FrameSource,
    SampledFrame,
    SourceError,
)
from edge_agent.redact import redact_url

log = logging.getLogger(__name__)


class StreamSource(FrameSource):
    """A live stream (RTSP, HTTP MJPEG/HLS/...) through OpenCV's FFmpeg backend, sampled on the wall clock.

    Every frame is grabbed to keep FFmpeg's buffer drained; only due frames are retrieved. No frame
    for `stall_timeout_s` (FFmpeg's read timeout makes grab() return False), an end of stream, or
    only corrupt frames for that long => the capture is dropped and reopened, waiting
    `backoff_initial_s` doubling up to `backoff_max_s` between attempts (reset by a good frame).

    With `decode` (what the agent passes; decode.py) the stream is decoded through PyAV with that camera's
    levers (keyframes only, reference frames only, threads) and sampled on the camera's media time, so a
    keyframe stamped on the sampling grid is never missed for arriving a few ms early; without it, through
    OpenCV on the wall clock.
    """

    def __init__(self, camera: str, url: str, fps: float = 1.0, *, stall_timeout_s: float = 10.0,
                 open_timeout_s: float = 10.0, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0, decode: DecodeConfig | None = None) -> None:
        super().__init__(camera, fps)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
        except ValueError as exc:
            raise SourceError(f"camera {camera}: {redact_url(url)}: {exc}; give a port from 1 to 65535") from exc
        scheme = parts.scheme.lower()
        if scheme not in LIVE_SCHEMES:
            raise SourceError(f"camera {camera}: {redact_url(url)} is not a live stream URL; "
                              f"a source is {ACCEPTED}")
        if min(stall_timeout_s, open_timeout_s, backoff_initial_s) <= 0 or backoff_max_s < backoff_initial_s:
            raise SourceError(f"camera {camera}: timeouts and backoff must be positive "
                              f"(and backoff_max_s >= backoff_initial_s)")
        self.url = url
        self.live = True  # it runs at its own pace: the agent never waits for the cloud on it
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.reconnect_attempts = 0  # opens tried after a loss or a failed open
        self._backoff_s = backoff_initial_s
        self.decode = decode
        self._cap: cv2.VideoCapture | AVCapture | None = None
        self._media0: tuple[float, float] | None = None  # (pts in the stream, our pts) at (re)connect
        self._described: dict[str, object] = {}
        self._seen_before = 0
        self.timestamp_error_max_s = 0.0
        self._connected_once = False
        self._must_wait = False
        self._index = 0
        self._t0: float | None = None
        self._last_good = time.monotonic()

    def stats(self) -> dict[str, object]:
        if isinstance(self._cap, AVCapture):
            self._described = self._cap.describe()  # the mode follows the camera's GOP: report the current one
        return {**super().stats(), "reconnect_attempts": self.reconnect_attempts, **self._described,
                "timestamp_error_max_s": round(self.timestamp_error_max_s, 4)}

    def set_fps(self, fps: float) -> None:
        super().set_fps(fps)
        if isinstance(self._cap, AVCapture):
            self._cap.set_interval(1.0 / self.fps)

    def _open_capture(self) -> cv2.VideoCapture | AVCapture | None:
        if self.decode is not None:
            try:
                cap = open_capture(self.url, self.camera, self.decode, 1.0 / self.fps,
                                   (self.open_timeout_s, self.stall_timeout_s), idle=self._closed.wait)
            except OSError as exc:
                log.debug("%s", exc)
                return None
            self._described = cap.describe()
            log.info("camera %s: decoding %s", self.camera, self._described)
            return cap
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.stall_timeout_s * 1000)]
        cv_cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if cv_cap.isOpened():
            return cv_cap
        cv_cap.release()
        return None

    def _connect(self) -> bool:
        """Open the stream, waiting with backoff between failures. False: closed while trying."""
        safe_url = redact_url(self.url)
        while not self._closed.is_set():
            if self._must_wait:
                self.reconnect_attempts += 1
                log.warning("camera %s: reconnecting to %s in %.1f s (attempt %d)", self.camera, safe_url,
                            self._backoff_s, self.reconnect_attempts)
                if self._closed.wait(self._backoff_s):
                    return False
                self._backoff_s = min(self._backoff_s * 2, self.backoff_max_s)
            cap = self._open_capture()
            if cap is not None:
                if self._connected_once:
                    self.reconnects += 1
                    log.warning("camera %s: reconnected to %s (attempt %d)", self.camera, safe_url,
                                self.reconnect_attempts)
                self._connected_once = True
                self._seen_before = self.frames_seen  # packet counts restart with each connection
                self._cap = cap
                self._media0 = None
                self.healthy = True
                self._last_good = time.monotonic()
                return True
            self.healthy = False
            self.last_error = f"cannot open {safe_url}"
            log.warning("camera %s: cannot open %s", self.camera, safe_url)
            self._must_wait = True
        return False

    def _lost(self, why: str) -> None:
        self._release()
        self.healthy = False
        self.last_error = f"{redact_url(self.url)}: {why}"
        log.warning("camera %s: stream %s lost: %s", self.camera, redact_url(self.url), why)
        self._must_wait = True

    def _read(self) -> SampledFrame | None:
        while not self._closed.is_set():
            if self._cap is None and not self._connect():
                return None
            assert self._cap is not None
            try:
                ok = self._cap.grab()
            except (OSError, ValueError) as exc:  # PyAV: a read timeout or a broken connection
                self._lost(f"read failed: {exc}")
                continue
            now = time.monotonic()
            if not ok:
                self._lost(f"no frame (stream ended, or nothing for {self.stall_timeout_s:g} s)")
                continue
            self._index += 1
            self.frames_seen += 1
            if isinstance(self._cap, AVCapture):  # frames skipped undecoded arrived too
                self._index = self.frames_seen = self._cap.packets + self._seen_before
            index = self._index - 1
            if self._t0 is None:
                self._t0 = now
            pts = self._pts(now - self._t0)
            if not self._clock.due(pts):
                continue  # drained, not converted
            ok, image = self._retrieve()
            if not ok or image is None:
                self._corrupt(f"frame {index} of {redact_url(self.url)} could not be decoded")
                if now - self._last_good > self.stall_timeout_s:
                    self._lost(f"only corrupt frames for {self.stall_timeout_s:g} s")
                continue
            self._last_good = now
            self._backoff_s = self.backoff_initial_s
            self.healthy = True
            if self._clock.next_s is not None:  # how late after its slot (keyframes only: up to one GOP)
                self.timestamp_error_max_s = max(self.timestamp_error_max_s, pts - self._clock.next_s)
            return self._emit(index, pts, image)
        return None

    def _pts(self, wall: float) -> float:
        """Wall clock (OpenCV), or the camera's media time since this connection, placed on our time line."""
        if not isinstance(self._cap, AVCapture) or self._cap.time is None:
            return wall
        media = self._cap.time
        if self._media0 is None or media < self._media0[0]:  # a new connection, or the camera's clock reset
            self._media0 = (media, wall)
        return self._media0[1] + media - self._media0[0]

    def _retrieve(self) -> tuple[bool, np.ndarray | None]:
        if isinstance(self._cap, AVCapture):
            try:
                return True, self._cap.retrieve()
            except (ValueError, MemoryError):
                return False, None
        assert self._cap is not None
        return self._cap.retrieve()

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
