"""Decode only what the sampler needs: camera streams through PyAV, with per-camera decode levers.

At 1 fps from a 25 fps camera, 24 of 25 decoded frames are thrown away, and decoding is most of the
gateway's CPU. So each camera's decoder is set from its stream, measured when it is opened:
- `keyframes`: only keyframes are decoded (skip_frame NONKEY, and non-key packets never reach the decoder)
  when keyframes come at least as often as the sampling interval; a sample is then the first keyframe at
  or after its slot, up to one GOP late (reported as the timestamp error);
- `reference`: non-reference frames are skipped (skip_frame NONREF) when the GOP is longer;
- `all`: every frame decoded (what OpenCV's VideoCapture does).
`auto` picks from the GOP measured at open; any camera can force one (`decode.mode` in its config).
Decode threads per stream are bounded (1 by default) so that many cameras share the cores fairly, and
hardware decoding (VAAPI/QSV through /dev/dri) is detected and reported, with software as the fallback.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.redact import redact_url

log = logging.getLogger(__name__)

Mode = Literal["keyframes", "reference", "all"]
_SKIP = {"keyframes": "NONKEY", "reference": "NONREF", "all": "DEFAULT"}
HW_KINDS = ("vaapi", "qsv")
POLL_S = 0.2  # live, keyframes only, caught up with the stream: read again this much later
FRESH_S = 0.05  # a packet read within this of its earliest arrival seen: caught up


class DecodeConfig(BaseModel):
    """How one camera's stream is decoded (config key `decode`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "keyframes", "reference", "all"] = Field("auto", description=(
        "auto: keyframes when they come at least once per sampling interval, else reference"))
    threads: int = Field(1, ge=1, le=16, description="decoder threads for this stream, and its BGR conversion's")
    hwaccel: Literal["auto", "none", "vaapi", "qsv"] = Field("auto", description=(
        "auto: VAAPI or QSV when /dev/dri has a render node FFmpeg can use, else software"))


def detect_hwaccel(requested: str = "auto", dri: Path = Path("/dev/dri")) -> tuple[str, str]:
    """(kind, why): the hardware decoder this gateway can use, or "none" and why software is used."""
    if requested == "none":
        return "none", "software decoding (hwaccel: none)"
    nodes = sorted(dri.glob("renderD*")) if dri.is_dir() else []
    if not nodes:
        return "none", f"no render node in {dri}: software decoding"
    try:
        from av.codec.hwaccel import hwdevices_available

        compiled = set(hwdevices_available())
    except ImportError:  # an older PyAV without hardware decoding
        compiled = set()
    for kind in HW_KINDS if requested == "auto" else (requested,):
        if kind in compiled:
            return kind, f"{kind} on {nodes[0]}"
    wanted = "VAAPI or QSV" if requested == "auto" else requested
    return "none", f"{nodes[0]} exists but this FFmpeg build offers no {wanted} device: software decoding"


def choose_mode(requested: str, gop_s: float | None, interval_s: float) -> tuple[Mode, str]:
    """The decode mode for a stream whose keyframes are `gop_s` apart (None: none seen while probing),
    sampled every `interval_s`; with the reason, naming the values."""
    every = f"keyframes every {gop_s:.2f} s" if gop_s else "no second keyframe while probing"
    fits = gop_s is not None and gop_s <= interval_s * 1.02  # 2%: timestamps of a 25-frame GOP round
    if requested == "auto":
        if fits:
            return "keyframes", f"auto: {every} <= sampling interval {interval_s:g} s"
        return "reference", f"auto: {every}, longer than the sampling interval {interval_s:g} s"
    if requested == "keyframes" and not fits:
        return "reference", (f"decode.mode keyframes refused: {every}, longer than the sampling interval "
                             f"{interval_s:g} s, so samples would come a GOP apart; set the camera's I-frame "
                             f"interval to <= {interval_s:g} s, or decode.mode: auto")
    return requested, f"decode.mode {requested} (config)"  # type: ignore[return-value]


class AVCapture:
    """One opened stream or file: grab() decodes the next frame the mode lets through, retrieve() gives it
    as BGR. The first `probe_s` of packets are read at open to measure the GOP, then decoded as usual."""

    def __init__(self, uri: str, camera: str, config: DecodeConfig, interval_s: float,
                 timeout_s: tuple[float, float] | None = None, probe_s: float | None = None,
                 idle: Callable[[float], object] | None = None) -> None:
        self.uri, self.camera, self.config, self.interval_s = uri, camera, config, interval_s
        self.idle = idle  # live: how to wait while caught up (the source's stop event's wait)
        self.idled = 0  # waits taken
        self._late_min: float | None = None
        opts = {"rtsp_transport": "tcp"} if uri.lower().startswith("rtsp") else {}
        self.hwaccel, self.hwaccel_note = detect_hwaccel(config.hwaccel)
        self.container = self._open(opts, timeout_s)
        self.stream = self.container.streams.video[0]
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps: float | None = float(rate) if rate and 0 < float(rate) <= 1000 else None
        self.codec = self.stream.codec_context.name
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        ctx = self.stream.codec_context
        ctx.thread_count = config.threads
        ctx.thread_type = "AUTO" if config.threads > 1 else "NONE"
        self._packets = self.container.demux(self.stream)
        self._probed: deque[Any] = deque()
        self.gop_s = self._probe(probe_s if probe_s is not None else 2 * interval_s + 0.5)
        self.mode, self.reason = choose_mode(config.mode, self.gop_s, interval_s)
        self._apply_mode()
        self._frames: deque[Any] = deque()
        self.frame: Any = None
        # One BGR converter for the stream's life. PyAV's frame.to_ndarray(format=...) makes a converter per
        # frame: a new swscale context each sample, with FFmpeg's automatic slice threads (one per core).
        self._bgr = VideoReformatter()
        self.packets = 0  # frames that arrived (demuxed), decoded or not
        self.corrupt = 0
        self._last_key_s: float | None = None

    def _open(self, opts: dict[str, str], timeout_s: tuple[float, float] | None) -> Any:
        kwargs: dict[str, Any] = {"options": opts, "timeout": timeout_s}
        if self.hwaccel != "none":
            try:
                from av.codec.hwaccel import HWAccel

                return av.open(self.uri, hwaccel=HWAccel(self.hwaccel, allow_software_fallback=True), **kwargs)
            except (av.error.FFmpegError, ValueError, TypeError) as exc:
                self.hwaccel_note = f"{self.hwaccel} failed ({exc}): software decoding"
                self.hwaccel = "none"
                log.warning("camera %s: %s", self.camera, self.hwaccel_note)
        return av.open(self.uri, **kwargs)

    def _probe(self, probe_s: float) -> float | None:
        """Median keyframe interval over the first `probe_s` of stream time (packets kept for decoding)."""
        keys: list[float] = []
        start: float | None = None
        for packet in self._packets:
            self._probed.append(packet)
            t = _time(packet)
            if t is None:
                continue
            start = t if start is None else start
            if packet.is_keyframe:
                keys.append(t)
            if t - start >= probe_s or len(keys) >= 4:
                break
        gaps = [b - a for a, b in zip(keys, keys[1:], strict=False) if b > a]
        return statistics.median(gaps) if gaps else None

    def _apply_mode(self) -> None:
        self.stream.codec_context.skip_frame = _SKIP[self.mode]

    def set_interval(self, interval_s: float) -> None:
        """A new sampling rate: the mode is chosen again from the GOP already measured."""
        self.interval_s = interval_s
        self.mode, self.reason = choose_mode(self.config.mode, self.gop_s, interval_s)
        self._apply_mode()

    def _next_packet(self) -> Any:
        if self._probed:
            return self._probed.popleft()
        try:
            return next(self._packets, None)
        except av.error.FFmpegError as exc:  # a read timeout, a connection reset: the caller reconnects
            raise OSError(f"{redact_url(self.uri)}: {exc}") from exc

    def grab(self) -> bool:
        """Decode up to the next frame the mode lets through. False: end of stream or lost."""
        while not self._frames:
            packet = self._next_packet()
            if packet is None:
                return False
            if packet.size:
                self.packets += 1
                if packet.is_keyframe:
                    self._keyframe(packet)
            if self.mode == "keyframes" and packet.size and not packet.is_keyframe:
                self._caught_up(packet)
                continue  # never reaches the decoder: the cheapest frame is one not even handed over
            try:
                self._frames.extend(packet.decode())
                if self.mode == "keyframes" and packet.size and not self._frames:
                    # The decoder holds a keyframe back for B-frame reordering (2 GOPs of latency live);
                    # with keyframes only there is nothing to reorder: drain it now and reset.
                    self._frames.extend(self.stream.codec_context.decode(None))
                    self.stream.codec_context.flush_buffers()
            except av.error.FFmpegError:  # a damaged packet: counted, and the next one decoded
                self.corrupt += 1
                continue
        self.frame = self._frames.popleft()
        return True

    def _caught_up(self, packet: Any) -> None:
        """Live, keyframes only: when the packet just read had only just arrived and the next keyframe is more
        than POLL_S away, wait POLL_S and let the socket gather the stream, to read it in one go rather than
        wake for every segment as it comes (receiving a loopback HTTP-TS stream took about half the CPU)."""
        t = _time(packet)
        if self.idle is None or t is None or self.gop_s is None or self._last_key_s is None:
            return
        late = time.monotonic() - t
        self._late_min = late if self._late_min is None else min(self._late_min, late)
        if late - self._late_min < FRESH_S and self._last_key_s + self.gop_s - t > POLL_S:
            self.idled += 1
            self.idle(POLL_S)

    @property
    def time(self) -> float | None:
        """Media time of the frame grabbed, seconds (None when the stream stamps none)."""
        pts = self.frame.pts
        return None if pts is None or self.stream.time_base is None else float(pts * self.stream.time_base)

    def _keyframe(self, packet: Any) -> None:
        """Keep measuring the GOP: a camera whose I-frame interval changes after open gets the mode its
        stream now allows (with auto), or falls back from keyframes instead of sampling sparsely."""
        t = _time(packet)
        last, self._last_key_s = self._last_key_s, t
        if t is None or last is None or t <= last:
            return
        self.gop_s = t - last
        mode, reason = choose_mode(self.config.mode, self.gop_s, self.interval_s)
        if mode != self.mode and (mode == "reference" or self.gop_s <= self.interval_s * 1.02):
            self.mode, self.reason = mode, f"changed: {reason}"
            log.warning("camera %s: decoding %s (%s)", self.camera, mode, reason)
            self._apply_mode()

    def retrieve(self) -> np.ndarray:
        """The grabbed frame as BGR: the same pixels as frame.to_ndarray(format="bgr24"), converted on this
        stream's decode threads (`decode.threads`) by the stream's one converter."""
        return self._bgr.reformat(self.frame, format="bgr24", threads=self.config.threads).to_ndarray()

    def release(self) -> None:
        self.container.close()

    def describe(self) -> dict[str, object]:
        return {"decode_mode": self.mode, "decode_reason": self.reason, "gop_s": self.gop_s,
                "stream_fps": self.fps, "codec": self.codec, "size": f"{self.width}x{self.height}",
                "decode_threads": self.config.threads, "hwaccel": self.hwaccel, "hwaccel_note": self.hwaccel_note}


def _time(packet: Any) -> float | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    return None if ts is None or packet.time_base is None else float(ts * packet.time_base)


def open_capture(uri: str, camera: str, config: DecodeConfig, interval_s: float,
                 timeout_s: tuple[float, float] | None = None,
                 idle: Callable[[float], object] | None = None) -> AVCapture:
    """An AVCapture, with FFmpeg's refusal turned into an OSError that names the camera and the URL."""
    try:
        return AVCapture(uri, camera, config, interval_s, timeout_s, idle=idle)
    except (av.error.FFmpegError, IndexError, StopIteration) as exc:
        raise OSError(f"camera {camera}: cannot decode {redact_url(uri)}: {exc}") from exc

