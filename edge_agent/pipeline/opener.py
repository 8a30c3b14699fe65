"""Which source reads a camera's URI: the one place that knows every kind (OpenCV files and image folders in
sources.py, PyAV files in avsource.py, live streams in stream.py), so that none of them imports another."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.sources import (
    ACCEPTED,
    LIVE_SCHEMES,
    FrameSource,
    ImageFolderSource,
    SourceError,
    VideoFileSource,
)
from edge_agent.pipeline.stream import StreamSource
from edge_agent.redact import redact_url


def open_source(camera: str, uri: str | Path, fps: float = 1.0, **opts: object) -> FrameSource:
    """A source for a URI: an existing folder -> images, rtsp/http(s) URL -> live stream, else a video file.

    `opts` go to the chosen class (loop=True for files, folder_fps for folders, stall_timeout_s for
    streams); `decode` (decode.py) decodes a stream or a file through PyAV with those levers."""
    text = str(uri)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""  # a bad URL: refused by the config
    if scheme in LIVE_SCHEMES:
        return StreamSource(camera, text, fps, **opts)  # type: ignore[arg-type]
    if scheme == "file":
        text = urlsplit(text).path
    elif scheme:
        raise SourceError(f"camera {camera}: unsupported URL scheme {scheme}:// in {redact_url(text)}; "
                          f"a source is {ACCEPTED}")
    path, decode = Path(text).expanduser(), opts.pop("decode", None)
    if path.is_dir():  # images: nothing to skip, whatever `decode` says
        return ImageFolderSource(camera, path, fps, **opts)  # type: ignore[arg-type]
    if not path.is_file():
        raise SourceError(f"camera {camera}: {path} is neither an existing file nor a folder; "
                          f"a source is {ACCEPTED}")
    if decode is None:
        return VideoFileSource(camera, path, fps, **opts)  # type: ignore[arg-type]
    return AVFileSource(camera, path, fps, decode=decode, **opts)  # type: ignore[arg-type]
