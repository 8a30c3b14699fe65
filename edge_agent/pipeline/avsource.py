"""A video file decoded through PyAV with the camera's decode levers (decode.py), sampled on media time.

What the gateway-capacity bench measures, and what a camera with `decode:` in its config replays: the same
decoder a live stream gets, so a file tells what the stream would cost.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.pipeline.decode import AVCapture, DecodeConfig, open_capture
from edge_agent.pipeline.sources import ACCEPTED, FrameSource, SampledFrame, SourceError


class AVFileSource(FrameSource):
    """A video file sampled on media time through PyAV; frame_index is the frame's position in the file
    (media time x the stream's frame rate), the same whichever frames the decode mode skips."""

    def __init__(self, camera: str, path: str | Path, fps: float = 1.0, decode: DecodeConfig | None = None,
                 loop: bool = False, realtime: bool = False) -> None:
        super().__init__(camera, fps)
        self.path, self.loop, self.realtime = Path(path), loop, realtime
        self.decode = decode or DecodeConfig()
        if not self.path.is_file():
            raise SourceError(f"camera {camera}: video file {self.path} does not exist; a source is {ACCEPTED}")
        self._cap: AVCapture | None = self._open()
        self._info: dict[str, object] = {}  # how it was decoded, kept for stats() after close
        self._offset = 0.0  # media time at which the current pass starts (loops)
        self._start: float | None = None
        self._last = 0.0
        self.timestamp_error_max_s = 0.0  # how late a sample came after its slot (keyframes: up to a GOP)
        self._error_sum = 0.0

    def _open(self) -> AVCapture:
        try:
            return open_capture(str(self.path), self.camera, self.decode, 1.0 / self.fps)
        except OSError as exc:
            raise SourceError(f"{exc}; a source is {ACCEPTED}") from exc

    def set_fps(self, fps: float) -> None:
        super().set_fps(fps)
        if self._cap is not None:
            self._cap.set_interval(1.0 / self.fps)

    def stats(self) -> dict[str, object]:
        out = {**super().stats(), "timestamp_error_max_s": round(self.timestamp_error_max_s, 4),
               "timestamp_error_mean_s": round(self._error_sum / max(1, self.frames_sampled), 4)}
        return out | (self._cap.describe() if self._cap is not None else self._info)

    def _read(self) -> SampledFrame | None:
        while not self._closed.is_set() and self._cap is not None:
            cap = self._cap
            if not cap.grab():
                if self.loop and self.frames_seen:
                    self._offset = self._last + 1.0 / (cap.fps or 25.0)
                    self._start = None
                    cap.release()
                    self._cap = self._open()
                    continue
                self.frames_seen = max(self.frames_seen, cap.packets)
                return None
            t = cap.time
            if t is None:
                self._corrupt(f"a frame of {self.path} has no timestamp")
                continue
            self._start = t if self._start is None else self._start
            pts = max(self._offset + t - self._start, self._last)
            self._last = pts
            self.frames_seen = cap.packets
            self.corrupt_frames = max(self.corrupt_frames, cap.corrupt)
            if not self._clock.due(pts):
                continue
            slot = self._clock.next_s if self._clock.next_s is not None else pts
            try:
                image = cap.retrieve()
            except (ValueError, MemoryError) as exc:
                self._corrupt(f"frame at {pts:.2f} s of {self.path} could not be converted: {exc}")
                continue
            error = max(0.0, pts - slot)
            self.timestamp_error_max_s = max(self.timestamp_error_max_s, error)
            self._error_sum += error
            return self._emit(round(pts * (cap.fps or 25.0)), pts, image)
        return None

    def _release(self) -> None:
        if self._cap is not None:
            self._info = self._cap.describe()
            self._cap.release()
            self._cap = None
