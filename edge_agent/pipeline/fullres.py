"""Escalation crops from the camera's full-resolution stream, as NVRs do: the pipeline runs on the camera's
sub-stream (`source`, the detect stream), and a frame that escalates is sent from the main stream
(`escalation_source`), at the moment nearest the detect frame.

Nothing of the main stream is decoded until an escalation asks for it: its packets are only demuxed into a
ring buffer of the last `buffer_s` seconds (whole GOPs, a keyframe first), which costs about 0.3 ms per
second of 1080p25 stream on this machine. An escalation then decodes, on the agent's thread:
- `keyframe`: the one keyframe nearest the detect frame (one picture, ~14 ms at 1080p), when one lies
  within `max_skew_s` of it: with an I-frame interval of 1 s, at most 0.5 s apart, and 0 when the two
  streams' keyframes are aligned and the sub-stream is sampled on its keyframes (decode mode keyframes);
- `frame`: the frame nearest the detect frame, decoding from the keyframe before it (up to a GOP of
  pictures: ~25 at 1080p25 GOP 1 s, about 3x a keyframe's cost), at most half a frame interval apart;
- `auto`: the keyframe when one is within `max_skew_s`, else the exact frame.
A frame for which none of the buffer lies within `max_skew_s` (the stream is down, or late) is sent from the
detect stream as before, counted (`fullres_missed`) and logged once.

Time lines: files share media time (both streams start at their first keyframe, as the detect file's
source does); live streams are matched on arrival time: each main-stream packet is placed at its media time
plus the smallest (arrival - media time) seen on the connection, and compared with the detect frame's
wall-clock sample time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.redact import redact_url

log = logging.getLogger(__name__)
POLL_S = 0.2  # live: a reader caught up with the stream reads again this much later, or when an escalation asks
FRESH_S = 0.05  # a packet read within this of its earliest arrival seen: the reader is caught up


class EscalationSourceConfig(BaseModel):
    """A camera's full-resolution stream, used only for escalation crops (config key `escalation_source`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, description="the camera's main stream (rtsp://, http://, or a file)")
    pick: Literal["auto", "keyframe", "frame"] = Field("auto", description=(
        "keyframe: decode the nearest keyframe (cheapest); frame: the nearest frame, decoded from the keyframe "
        "before it; auto: the keyframe when one is within max_skew_s, else the frame"))
    max_skew_s: float = Field(0.2, gt=0, le=5, description=(
        "the full-resolution frame must lie this close to the detect frame, else the detect frame is sent"))
    buffer_s: float = Field(3.0, ge=0.5, le=30, description="seconds of the main stream kept (packets, undecoded)")
    threads: int = Field(1, ge=1, le=16, description="decoder threads for the main stream")


@dataclass(frozen=True)
class FullResFrame:
    image: np.ndarray  # BGR, the main stream's size
    t_s: float  # on the detect frame's time line
    skew_s: float  # |t_s - the detect frame's time|
    how: str  # keyframe | frame


@dataclass
class _Packet:
    media: float  # the packet's media time, seconds
    shift: float  # added to media for the time line (files: minus the first keyframe, plus loop offsets)
    packet: Any


class FullResFrames:
    """One camera's main stream, demuxed into a ring buffer; `frame_at` decodes the frame an escalation needs.

    `live`: a thread reads the stream as it comes, reconnecting with backoff; else (a file) packets are read
    on demand up to the time asked for, so a replayed clip's escalations find the same frames however fast
    it is replayed."""

    def __init__(self, camera: str, config: EscalationSourceConfig, live: bool, loop: bool = False,
                 open_timeout_s: float = 10.0) -> None:
        self.camera, self.config, self.live, self.loop = camera, config, live, loop
        self.open_timeout_s = open_timeout_s
        self._cond = threading.Condition()
        self._gops: deque[list[_Packet]] = deque()  # whole GOPs, each from a keyframe
        self._container: Any = None
        self._decoder: Any = None
        self._time_base: Any = None
        self._packets: Any = None
        self._origin: float | None = None  # files: media time of the first keyframe
        self._loop_shift = 0.0
        self._last_media = 0.0
        self._arrival_offset: float | None = None  # live: min(arrival - media) on this connection
        self._offset = 0.0  # the estimate a pick uses throughout (the reader may lower it meanwhile)
        self._newest: float | None = None  # time line of the newest packet read
        self._ended = False
        self._closed = threading.Event()
        self._wake = threading.Event()  # an escalation wants what the socket holds now
        self.fresh = False  # live: the packet just read had just arrived (the reader is caught up)
        self.size: tuple[int, int] | None = None
        self.fps: float | None = None
        self.gop_s: float | None = None
        self._last_key: float | None = None
        self.requests = self.sent = self.missed = 0
        self.picked = {"keyframe": 0, "frame": 0}
        self.skew_max_s = 0.0
        self._skew_sum = 0.0
        self.pick_cpu_s = 0.0  # CPU of the escalations' decoding (on the agent's thread)
        self.reader_cpu_s = 0.0  # CPU of demuxing the stream (the reader thread; files: the agent's thread)
        self.pictures_decoded = 0
        self.last_error: str | None = None
        self._warned = False
        self._thread: threading.Thread | None = None
        if live:
            self._thread = threading.Thread(target=self._read_live, name=f"fullres-{camera}", daemon=True)
            self._thread.start()
        else:
            self._open()

    # -- reading ------------------------------------------------------------------------------------
    def _open(self) -> None:
        url = self.config.url
        opts = {"rtsp_transport": "tcp"} if url.lower().startswith("rtsp") else {}
        try:
            container = av.open(url, options=opts, timeout=(self.open_timeout_s, self.open_timeout_s))
            stream = container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as exc:
            raise OSError(f"camera {self.camera}: cannot open escalation_source {redact_url(url)}: {exc}") from exc
        # The escalations' own decoder (the agent's thread), apart from the demuxer (the reader's thread).
        decoder = av.CodecContext.create(stream.codec_context.name, "r")
        decoder.extradata = stream.codec_context.extradata
        decoder.thread_count = self.config.threads
        decoder.thread_type = "AUTO" if self.config.threads > 1 else "NONE"
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) <= 1000 else self.fps
        self.size = (ctx.width, ctx.height)
        self._container, self._packets = container, container.demux(stream)
        self._origin = None
        self._arrival_offset = None
        with self._cond:
            self._gops.clear()
            self._decoder, self._time_base = decoder, stream.time_base

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._packets = None

    def _read_one(self) -> bool:
        """Demux one packet into the buffer. False: the stream ended."""
        packet = next(self._packets, None)
        if packet is None:
            return False
        if not packet.size:
            return True
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or packet.time_base is None:
            return True
        media = float(ts * packet.time_base)
        key = bool(packet.is_keyframe)
        if self._origin is None:
            if not key:
                return True  # nothing before the first keyframe can be decoded
            self._origin = media
        if self.live:
            gap = time.time() - media
            self._arrival_offset = gap if self._arrival_offset is None else min(self._arrival_offset, gap)
            self.fresh = gap - self._arrival_offset < FRESH_S
            shift = 0.0
        else:
            shift = self._loop_shift - self._origin
        self._last_media = max(self._last_media, media + shift)
        entry = _Packet(media, shift, packet)
        with self._cond:
            if key:
                if self._last_key is not None and media + shift > self._last_key:
                    self.gop_s = media + shift - self._last_key
                self._last_key = media + shift
                self._gops.append([entry])
            elif self._gops:
                self._gops[-1].append(entry)
            self._newest = self._t(entry)
            cutoff = self._newest - self.config.buffer_s
            while len(self._gops) > 1 and self._t(self._gops[1][0]) <= cutoff:
                self._gops.popleft()
            self._cond.notify_all()
        return True

    def _t(self, p: _Packet, offset: float | None = None) -> float:
        """The packet on the detect frame's time line (live: with `offset`, else the current estimate)."""
        if not self.live:
            return p.media + p.shift
        return p.media + p.shift + (offset if offset is not None else (self._arrival_offset or 0.0))

    def _fill_to(self, t: float) -> None:
        """Files: read until the buffer passes `t` (or the file ends; with loop, it starts again)."""
        started = time.thread_time()
        try:
            while not self._ended and (self._newest is None or self._newest < t):
                if self._packets is None or not self._read_one():
                    if not self.loop:
                        self._ended = True
                        break
                    self._close_container()
                    self._loop_shift = self._last_media + 1.0 / (self.fps or 25.0)
                    self._last_key = None
                    self._open()
        finally:
            self.reader_cpu_s += time.thread_time() - started

    def _read_live(self) -> None:
        backoff = 0.5
        started = time.thread_time()
        while not self._closed.is_set():
            try:
                self._open()
                backoff = 0.5
                while not self._closed.is_set() and self._read_one():
                    self.reader_cpu_s = time.thread_time() - started
                    if self.fresh:
                        # Caught up: let the socket gather POLL_S of stream and read it in one go rather than
                        # wake for every segment (half the CPU measured); an escalation wakes it at once.
                        self._wake.wait(POLL_S)
                        self._wake.clear()
                self.last_error = "the stream ended"
            except (OSError, av.error.FFmpegError) as exc:
                self.last_error = str(exc)
                log.warning("camera %s: escalation_source %s: %s; retrying in %.1f s", self.camera,
                            redact_url(self.config.url), exc, backoff)
            finally:
                self._close_container()
                with self._cond:
                    self._gops.clear()
                    self._newest = None
            if self._closed.wait(backoff):
                break
            backoff = min(backoff * 2, 30.0)

    # -- picking ------------------------------------------------------------------------------------
    def _tp(self, p: _Packet) -> float:
        return self._t(p, self._offset)

    def frame_at(self, t: float) -> FullResFrame | None:
        """The main-stream frame for a detect frame at time `t` (files: its pts_s; live: its wall_time), or
        None (counted, and why kept in last_error) when none lies within max_skew_s."""
        self.requests += 1
        if self.live:
            self._wake.set()  # read what the socket holds now
            with self._cond:  # the packet of that moment may still be on its way: wait a little for it
                self._cond.wait_for(lambda: self._newest is not None and self._newest >= t,
                                    timeout=min(0.25, self.config.max_skew_s))
        else:
            self._fill_to(t + self.config.max_skew_s)
        started = time.thread_time()
        try:
            with self._cond:
                gops = [list(g) for g in self._gops]
                decoder, time_base = self._decoder, self._time_base
                self._offset = self._arrival_offset or 0.0  # one estimate for the whole pick
            picked = self._pick(gops, t, decoder, time_base)
        except (av.error.FFmpegError, ValueError, MemoryError) as exc:
            picked, self.last_error = None, f"decoding failed: {exc}"
        finally:
            self.pick_cpu_s += time.thread_time() - started
        if picked is None:
            self.missed += 1
            if not self._warned:
                self._warned = True
                log.warning("camera %s: no frame of escalation_source %s within %g s of the detect frame (%s); "
                            "sending the detect stream's frame", self.camera, redact_url(self.config.url),
                            self.config.max_skew_s, self.last_error)
            return None
        self.sent += 1
        self.picked[picked.how] += 1
        self.skew_max_s = max(self.skew_max_s, picked.skew_s)
        self._skew_sum += picked.skew_s
        return picked

    def _pick(self, gops: list[list[_Packet]], t: float, decoder: Any, time_base: Any) -> FullResFrame | None:
        if not gops:
            self.last_error = self.last_error if self.live and self.last_error else "nothing buffered yet"
            return None
        limit = self.config.max_skew_s
        keys = sorted(gops, key=lambda g: abs(self._tp(g[0]) - t))
        nearest = keys[0]
        if self.config.pick != "frame" and abs(self._tp(nearest[0]) - t) <= limit:
            image, when = self._decode([nearest[0]], t, decoder, time_base)
            return FullResFrame(image, when, abs(when - t), "keyframe")
        if self.config.pick == "keyframe":
            self.last_error = (f"the nearest keyframe is {abs(self._tp(nearest[0]) - t):.2f} s away "
                               f"(keyframes every {self.gop_s or 0:.2f} s); pick: frame decodes the exact frame")
            return None
        before = [g for g in gops if self._tp(g[0]) <= t + 1e-6]
        if not before:
            self.last_error = "the buffer starts after the detect frame (buffer_s too short?)"
            return None
        gop = before[-1]
        step = 1.0 / (self.fps or 25.0)
        chosen = [p for p in gop if self._tp(p) <= t + 4 * step]  # decode order: reordered B-frames come after
        image, when = self._decode(chosen, t, decoder, time_base)
        if abs(when - t) > limit:
            self.last_error = f"the nearest frame is {abs(when - t):.2f} s away (the stream lags or has a gap)"
            return None
        return FullResFrame(image, when, abs(when - t), "frame")

    def _decode(self, packets: list[_Packet], t: float, ctx: Any, time_base: Any) -> tuple[np.ndarray, float]:
        """Decode `packets` (from a keyframe, in decode order) and return the picture nearest `t`."""
        ctx.flush_buffers()
        frames: list[tuple[Any, _Packet]] = []
        for p in packets:
            frames.extend((f, p) for f in ctx.decode(p.packet))
        frames.extend((f, packets[0]) for f in ctx.decode(None))  # drain what the decoder held back
        ctx.flush_buffers()
        if not frames:
            raise ValueError("the decoder gave no picture")
        self.pictures_decoded += len(frames)
        first = packets[0]
        base = self._tp(first) - first.media  # the time line of this stretch

        def when(item: tuple[Any, _Packet]) -> float:
            f = item[0]
            return float(f.pts * time_base) + base if f.pts is not None and time_base else self._tp(item[1])
        best = min(frames, key=lambda item: abs(when(item) - t))
        return best[0].to_ndarray(format="bgr24"), when(best)

    # -- reporting ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        return {"escalation_source": redact_url(self.config.url), "pick": self.config.pick,
                "size": f"{self.size[0]}x{self.size[1]}" if self.size else None, "gop_s": self.gop_s,
                "requests": self.requests, "sent": self.sent, "missed": self.missed,
                "picked_keyframe": self.picked["keyframe"], "picked_frame": self.picked["frame"],
                "skew_max_s": round(self.skew_max_s, 4),
                "skew_mean_s": round(self._skew_sum / max(1, self.sent), 4),
                "pictures_decoded": self.pictures_decoded,
                "pick_ms_per_sent": round(1000 * self.pick_cpu_s / max(1, self.sent), 2),
                "reader_cpu_s": round(self.reader_cpu_s, 4), "last_error": self.last_error}

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._thread is None or not self._thread.is_alive():
            self._close_container()
