"""Camera-like test streams made from real footage with Debian's ffmpeg, cached, and served on loopback.

A camera sends HD H.264/H.265 at 15-25 fps with an I-frame interval its installer set; the project's clips
are small. So each stream kind is the indoor scene of vtest.avi cropped to 16:9, upscaled and encoded as
the camera would (x264 veryfast, a fixed GOP: no scene-cut keyframes), once, into the FrameSieve cache.

Live: `serve()` runs ffmpeg at the stream's own pace (`-re`), sending MPEG-TS over HTTP on 127.0.0.1. RTSP
would need a server (mediamtx is in no registry reachable here; GStreamer's RTSP server needs PyGObject
outside the venv); HTTP MPEG-TS goes through the same network read, live pacing and reconnection path of
the gateway, everything but RTP depacketisation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.paths import cache_dir


@dataclass(frozen=True)
class StreamKind:
    width: int
    height: int
    fps: int
    gop_s: float
    codec: str = "h264"  # or "hevc"
    bframes: bool = True  # x264 veryfast's default; many cameras send none
    main: str | None = None  # a sub-stream: the camera's main stream kind (the baseline decodes that one)
    kbps: int | None = None  # a camera's bitrate cap (VBV); None: x264's default quality (CRF 23)

    def ffmpeg_args(self) -> list[str]:
        gop = max(1, round(self.gop_s * self.fps))
        vf = f"crop=iw:iw*9/16,scale={self.width}:{self.height},fps={self.fps}"
        if self.codec == "hevc":
            enc = ["-c:v", "libx265", "-preset", "veryfast", "-x265-params",
                   f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error", "-tag:v", "hvc1"]
        else:
            enc = ["-c:v", "libx264", "-preset", "veryfast", "-g", str(gop), "-keyint_min", str(gop),
                   "-sc_threshold", "0"] + ([] if self.bframes else ["-bf", "0"])
        if self.kbps:
            enc += ["-b:v", f"{self.kbps}k", "-maxrate", f"{self.kbps}k", "-bufsize", f"{self.kbps}k"]
        return ["-vf", vf, *enc, "-pix_fmt", "yuv420p", "-an"]


KINDS: dict[str, StreamKind] = {
    "1080p25-gop1": StreamKind(1920, 1080, 25, 1.0),
    "1080p25-gop4": StreamKind(1920, 1080, 25, 4.0),
    "1080p25-gop4-nob": StreamKind(1920, 1080, 25, 4.0, bframes=False),
    "1080p15-gop1": StreamKind(1920, 1080, 15, 1.0),
    "1080p15-gop4": StreamKind(1920, 1080, 15, 4.0),
    "720p25-gop1": StreamKind(1280, 720, 25, 1.0),
    "720p25-gop4": StreamKind(1280, 720, 25, 4.0),
    "720p15-gop1": StreamKind(1280, 720, 15, 1.0),
    "720p15-gop4": StreamKind(1280, 720, 15, 4.0),
    "hevc-1080p25-gop1": StreamKind(1920, 1080, 25, 1.0, codec="hevc"),
    "sub-360p15-gop1": StreamKind(640, 360, 15, 1.0, main="1080p25-gop1"),  # a camera's detect sub-stream
    # the same sub-stream capped at 256 kbit/s, as cameras often ship it: smaller keyframes, cheaper to decode
    "sub-360p15-gop1-256k": StreamKind(640, 360, 15, 1.0, main="1080p25-gop1", kbps=256),
    # at typical camera defaults for a sub-stream: 512 kbit/s or 1 Mbit/s, and an I-frame interval of 1 s or of
    # 2 s (many cameras ship "I-frame interval = 2 x frame rate")
    "sub-360p15-gop1-512k": StreamKind(640, 360, 15, 1.0, main="1080p25-gop1", kbps=512),
    "sub-360p15-gop1-1024k": StreamKind(640, 360, 15, 1.0, main="1080p25-gop1", kbps=1024),
    "sub-360p15-gop2-512k": StreamKind(640, 360, 15, 2.0, main="1080p25-gop1", kbps=512),
    # a sub-stream at about the student's own input (320x192): what the student sees from 640x360 after its 2x
    # downscale, at a quarter of the pixels to decode (cameras offer 320x180/320x240/352x288 sub-streams)
    "sub-180p15-gop1": StreamKind(320, 180, 15, 1.0, main="1080p25-gop1"),
    "sub-180p15-gop1-128k": StreamKind(320, 180, 15, 1.0, main="1080p25-gop1", kbps=128),
    "sub-270p15-gop1": StreamKind(480, 270, 15, 1.0, main="1080p25-gop1"),
}
# detect-streams: the sub-stream cameras ship and the one at about the student's input, compared frame by frame
DEFAULT_DETECT_KINDS = ("sub-360p15-gop1", "sub-180p15-gop1")
DEFAULT_KINDS = ("1080p25-gop1", "1080p25-gop4", "1080p25-gop4-nob", "720p15-gop1", "hevc-1080p25-gop1",
                 "sub-360p15-gop1")


def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed: the test streams are made with it "
                           "(./dev.sh installs it; or apt-get install ffmpeg)")
    return exe


def make_stream(kind: str, seconds: float = 60.0, clip: str = "vtest.avi") -> Path:
    """The stream kind as an MP4 in the cache (made once; `seconds` of the clip, which it must hold)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stream kind {kind!r}; known: {', '.join(KINDS)}")
    out = cache_dir() / "streams" / f"{Path(clip).stem}-{kind}-{seconds:g}s.mp4"
    if out.is_file():
        return out
    from models.student.data import resolve_clip

    src = resolve_clip(clip)
    if src is None:
        raise FileNotFoundError(f"clip {clip} not found: run `edge-agent models fetch` (vtest.avi) first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.mp4")
    cmd = [ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-t", f"{seconds:g}",
           *KINDS[kind].ffmpeg_args(), str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not make {kind}: {done.stderr.strip()[-500:]}")
    tmp.replace(out)  # atomic: a concurrent maker or an interrupted one never leaves half a file
    return out


def bitrate(path: Path) -> dict[str, float]:
    """What the stream carries, from its packets (demuxed, not decoded): kbit/s over its length, keyframes per
    second and their mean size. The keyframe's size is what a keyframes-only decoder pays for per sample."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sizes, keys, last = 0, [], 0.0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            sizes += packet.size
            if packet.is_keyframe:
                keys.append(packet.size)
            if packet.pts is not None and packet.time_base is not None:
                last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    seconds = last or 1.0
    return {"kbps": round(8 * sizes / seconds / 1000, 1), "keyframes_per_s": round(len(keys) / seconds, 2),
            "keyframe_kb": round(sum(keys) / len(keys) / 1000, 1) if keys else 0.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(path: Path, port: int | None = None, loop: bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    """The file as a live camera: MPEG-TS over HTTP on 127.0.0.1 at its own pace, for one client at a time
    (ffmpeg's `-listen 1`); yields (url, the ffmpeg process) and stops it at the end."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/live.ts"
    cmd = [ffmpeg(), "-nostdin", "-loglevel", "error", "-re", *(["-stream_loop", "-1"] if loop else []),
           "-i", str(path), "-c", "copy", "-f", "mpegts", "-listen", "1", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
                raise RuntimeError(f"ffmpeg did not start serving {path} on {url}: {err[-500:]}")
            time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _listening(port: int) -> bool:
    """Whether ffmpeg listens yet, read from /proc so that no probe connection uses up its one client."""
    hex_port = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            if any(hex_port in line.split()[1] and line.split()[3] == "0A" for line in f.readlines()[1:]):
                return True
    return False
