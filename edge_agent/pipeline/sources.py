"""Frame sources with the sampler built in: video files, live streams, folders of images.

Why the sampler lives inside the source: the cheapest frame is the one never converted to BGR. A
source grabs (demuxes + decodes) every frame, because codecs need the whole chain, but only calls
`retrieve()` (the colour conversion and copy into a numpy array) for the frames it samples. Files are
sampled on media time, so a clip gives the same samples however fast the gateway reads it; live
streams are sampled on the wall clock and drained continuously, so a sample is never a stale frame
from FFmpeg's buffer.

A live stream that dies or stalls is reconnected with backoff (stream.py); it never raises out of
`read_sampled()`. A corrupt frame or image is skipped and counted."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
ACCEPTED = ("a video file, a folder of images (" + ", ".join(sorted(IMAGE_SUFFIXES)) + "), or an "
            + ", ".join(f"{s}://" for s in LIVE_SCHEMES) + " URL")
_EPS_S = 1e-3  # media timestamps in ms round to e.g. 999.99; a sample time is reached within 1 ms


class SourceError(Exception):
    """A source cannot be opened at all (misconfiguration), as opposed to a transient failure."""


@dataclass
class SampledFrame:
    camera: str
    frame_index: int  # index in the source's own frame sequence (keeps counting across loops)
    pts_s: float  # media time for files/folders; seconds since the source started for live streams
    image: np.ndarray  # BGR uint8, H x W x 3
    wall_time: float  # time.time() when the frame was sampled


class _SampleClock:
    """Decides which timestamps are sampled: the first one, then one per `interval` on a fixed grid."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.next_s: float | None = None  # None: the next frame is due (first frame)

    def due(self, t: float) -> bool:
        return self.next_s is None or t >= self.next_s - _EPS_S

    def taken(self, t: float) -> None:
        # Stay on the grid (0, 1, 2, ... s) rather than drifting by each frame's lateness; after a gap
        # skip the slots that were missed instead of sampling a burst to catch up.
        nxt = (t if self.next_s is None else self.next_s) + self.interval_s
        while nxt <= t + _EPS_S:
            nxt += self.interval_s
        self.next_s = nxt


class FrameSource(ABC):
    """One camera's frames, already sampled. Iterate it, or call `read_sampled()` until it gives None.

    `close()` may be called from another thread: it interrupts any backoff wait at once; a blocking
    grab (bounded by the stream's read timeout) is released by the reading thread when it returns.
    """

    def __init__(self, camera: str, fps: float) -> None:
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise SourceError(f"camera {camera}: sampling fps must be a positive number, got {fps!r}")
        self.camera = camera
        self.fps = float(fps)
        self.frames_seen = 0  # frames grabbed (or image files listed) so far
        self.frames_sampled = 0  # frames returned by read_sampled()
        self.corrupt_frames = 0  # grabbed but not decodable; skipped
        self.reconnects = 0  # successful re-opens of a live stream after it was lost
        self.healthy = True
        self.last_error: str | None = None
        self._clock = _SampleClock(1.0 / self.fps)
        self._closed = threading.Event()
        self._io_lock = threading.Lock()
        self.realtime = False  # files and folders: hand out samples at the pace of their media time
        self.live = False  # streams: samples come at the wall clock's pace (so do realtime files)
        self._pace_origin: tuple[float, float] | None = None  # (monotonic, pts) of the first paced sample

    def read_sampled(self) -> SampledFrame | None:
        """The next sampled frame, or None when the source has ended (or was closed)."""
        if self._closed.is_set():
            return None
        with self._io_lock:
            try:
                return self._read()
            finally:
                if self._closed.is_set():
                    self._release()

    def set_fps(self, fps: float) -> None:
        """Change the sampling rate of a running source (the device shadow does); from the next sample on."""
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise SourceError(f"camera {self.camera}: sampling fps must be a positive number, got {fps!r}")
        self.fps = float(fps)
        self._clock.interval_s = 1.0 / self.fps

    def close(self) -> None:
        self._closed.set()
        if self._io_lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._io_lock.release()
        # else: read_sampled() is running in another thread and releases when its call returns

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def stats(self) -> dict[str, object]:
        return {"camera": self.camera, "frames_seen": self.frames_seen,
                "frames_sampled": self.frames_sampled, "corrupt_frames": self.corrupt_frames,
                "reconnects": self.reconnects, "healthy": self.healthy, "last_error": self.last_error}

    def __iter__(self) -> Iterator[SampledFrame]:
        while (frame := self.read_sampled()) is not None:
            yield frame

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _read(self) -> SampledFrame | None: ...

    @abstractmethod
    def _release(self) -> None: ...

    def _pace(self, pts_s: float) -> None:
        """Wait until `pts_s` is due on the wall clock, as a live camera would deliver it (a file then
        behaves like a stream: a gateway can run on it for a minute, a stall is visible)."""
        now = time.monotonic()
        if self._pace_origin is None:
            self._pace_origin = (now, pts_s)
            return
        start, pts0 = self._pace_origin
        wait = start + (pts_s - pts0) - now
        if wait > 0:
            self._closed.wait(wait)

    def _emit(self, index: int, pts_s: float, image: np.ndarray) -> SampledFrame:
        if self.realtime:
            self._pace(pts_s)
        self._clock.taken(pts_s)
        self.frames_sampled += 1
        return SampledFrame(self.camera, index, pts_s, image, time.time())

    def _corrupt(self, what: str) -> None:
        self.corrupt_frames += 1
        self.last_error = what
        # The first one is worth a warning; a damaged stream would otherwise flood the log.
        (log.warning if self.corrupt_frames == 1 else log.debug)("camera %s: %s (skipped)", self.camera, what)


class VideoFileSource(FrameSource):
    """A video file sampled on media time; optionally looped (pts and frame_index keep increasing)."""

    def __init__(self, camera: str, path: str | Path, fps: float = 1.0, loop: bool = False,
                 realtime: bool = False) -> None:
        super().__init__(camera, fps)
        self.realtime = realtime
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"camera {camera}: video file {self.path} does not exist; "
                              f"a source is {ACCEPTED}")
        self.loop = loop
        self._cap: cv2.VideoCapture | None = self._open()
        container_fps = self._cap.get(cv2.CAP_PROP_FPS)
        valid = math.isfinite(container_fps) and 0 < container_fps <= 1000
        self.container_fps: float | None = container_fps if valid else None
        self._index = 0  # across loops
        self._pass_index = 0  # within the current pass over the file
        self._pts_offset = 0.0  # media time at which the current pass starts
        self._last_raw = -math.inf
        self._use_msec = True

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.camera}: OpenCV/FFmpeg cannot open {self.path} as video; "
                              f"a source is {ACCEPTED}")
        return cap

    def _frame_step(self) -> float:
        return 1.0 / (self.container_fps or 25.0)

    def _raw_pts(self) -> float:
        """Media time of the frame just grabbed, within this pass.

        CAP_PROP_POS_MSEC is the container's own timestamp (right for variable frame rates, e.g. GIF
        delays); once it stops increasing it is deemed unreliable and index / fps is used instead.
        """
        raw: float | None = None
        if self._use_msec:
            msec = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self._cap is not None else -1.0
            if math.isfinite(msec) and msec >= 0 and msec / 1000.0 > self._last_raw:
                raw = msec / 1000.0
            else:
                self._use_msec = False
                log.debug("camera %s: %s has no usable timestamps; using frame index / fps",
                          self.camera, self.path)
        if raw is None:
            raw = self._pass_index * self._frame_step()
            raw = max(raw, self._last_raw + 1e-6)  # never go back in time when switching methods
        self._last_raw = raw
        return raw

    def _restart_for_loop(self) -> bool:
        if not self.loop or self._pass_index == 0 or self._cap is None:
            return False
        self._pts_offset += self._last_raw + self._frame_step()
        self._cap.release()
        self._cap = self._open()  # reopening is reliable where seeking to frame 0 is not
        self._pass_index, self._last_raw, self._use_msec = 0, -math.inf, True
        return True

    def _read(self) -> SampledFrame | None:
        while not self._closed.is_set() and self._cap is not None:
            if not self._cap.grab():
                if self._restart_for_loop():
                    continue
                return None  # end of file
            pts = self._pts_offset + self._raw_pts()
            index = self._index
            self._index += 1
            self._pass_index += 1
            self.frames_seen += 1
            if not self._clock.due(pts):
                continue  # grabbed only: no colour conversion for frames not sampled
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                self._corrupt(f"frame {index} of {self.path} could not be decoded")
                continue  # the sample slot stays open: the next good frame takes it
            return self._emit(index, pts, image)
        return None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _natural_key(path: Path) -> list[object]:
    """frame_2.jpg before frame_10.jpg."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _decode_image(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0:
            return None
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except (OSError, ValueError, cv2.error):
        return None
    return image if image is not None and image.ndim == 3 and image.shape[2] == 3 else None


class ImageFolderSource(FrameSource):
    """Image files of a folder in natural name order, as frames at a nominal `folder_fps`.

    Images that are not sampled are never read; an unreadable one is skipped and counted.
    """

    def __init__(self, camera: str, folder: str | Path, fps: float = 1.0, folder_fps: float = 1.0,
                 loop: bool = False, realtime: bool = False) -> None:
        super().__init__(camera, fps)
        self.realtime, self.loop = realtime, loop
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"camera {camera}: image folder {self.folder} does not exist; "
                              f"a source is {ACCEPTED}")
        if not (math.isfinite(folder_fps) and folder_fps > 0):
            raise SourceError(f"camera {camera}: folder_fps must be a positive number, got {folder_fps!r}")
        self.folder_fps = float(folder_fps)
        self.files = sorted((p for p in self.folder.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key)
        if not self.files:
            raise SourceError(f"camera {camera}: folder {self.folder} holds no image files "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._pos = 0

    def _read(self) -> SampledFrame | None:
        while not self._closed.is_set() and (self._pos < len(self.files) or self.loop):
            index = self._pos
            self._pos += 1
            self.frames_seen += 1
            pts = index / self.folder_fps  # index keeps counting across loops, so time goes forward
            index_in_folder = index % len(self.files)
            if not self._clock.due(pts):
                continue
            image = _decode_image(self.files[index_in_folder])
            if image is None:
                self._corrupt(f"image {self.files[index_in_folder]} is unreadable or corrupt")
                continue
            return self._emit(index, pts, image)
        return None

    def _release(self) -> None:
        self._pos, self.loop = len(self.files), False
