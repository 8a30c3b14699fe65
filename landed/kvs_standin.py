"""A STAND-IN for two Kinesis Video Streams APIs, on loopback, for tests and local runs: moto_server answers
kinesisvideo's control plane (CreateStream, GetDataEndpoint), but its GetDataEndpoint names an AWS host and
it serves no media; this serves both calls the sieve makes, from local video files:

- kinesisvideo GetDataEndpoint  (POST /getDataEndpoint): its own URL, for every APIName;
- kinesis-video-archived-media GetImages  (POST /getImages): images of a stream at the sampling interval.

The contract kept (the API reference, and botocore's model of it): rest-json, one of StreamName/StreamARN,
ImageSelectorType PRODUCER_TIMESTAMP|SERVER_TIMESTAMP, StartTimestamp and EndTimestamp (epoch seconds, the
range at most 300 s, else InvalidArgumentException), SamplingInterval in ms (at least 200), Format JPEG|PNG,
FormatConfig {"JPEGQuality": "1".."100"} (80 when not given), WidthPixels/HeightPixels (one alone keeps the
aspect ratio), MaxResults (pages of at most 25 images, then NextToken), each image {TimeStamp, ImageContent
(base64)} or {TimeStamp, Error: NO_MEDIA} where the stream holds no media at that time; an unknown stream:
ResourceNotFoundException (404). A stream is a clip whose first frame has producer time `start_s`; the image
at time t is the clip's last frame at or before t - start_s. Signatures are not checked.

Nothing outside tests and local runs uses this: the sieve's real client code (landed/kvs.py) talks to it
exactly as it talks to AWS, through boto3 with AWS_ENDPOINT_URL_KINESIS_VIDEO pointing here.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

PAGE = 25  # "The default limit is 25 images per API response" (a larger MaxResults still pages at 25)
MAX_RANGE_S = 300.0
MIN_INTERVAL_MS = 200


class _ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind = status, kind


class _Clip:
    """A clip read forward as images are asked for (reopened to go back), with its media times."""

    def __init__(self, path: Path, start_s: float):
        cap = cv2.VideoCapture(str(path))
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        if count <= 0:
            raise ValueError(f"{path}: no frame could be read")
        self.path, self.start_s, self.end_s = path, start_s, start_s + count / self.fps
        self._cap: cv2.VideoCapture | None = None
        self._at = 0  # the index of the next frame read() gives
        self._frame: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def frame_at(self, t_s: float) -> np.ndarray | None:
        if t_s < self.start_s - 1e-6 or t_s >= self.end_s:
            return None
        index = int(math.floor((t_s - self.start_s) * self.fps + 1e-6))
        with self._lock:
            if self._frame is not None and self._frame[0] == index:
                return self._frame[1]
            if self._cap is None or index < self._at:
                if self._cap is not None:
                    self._cap.release()
                self._cap, self._at = cv2.VideoCapture(str(self.path)), 0
            while self._at < index and self._cap.grab():
                self._at += 1
            ok, frame = self._cap.read()
            self._at += 1
            if not ok:
                return None
            self._frame = (index, frame)
            return frame


class KvsStandIn(ThreadingHTTPServer):
    """`with KvsStandIn() as kvs: kvs.add_stream("cam", clip, start_s)`; point boto3 at `kvs.url`."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.streams: dict[str, _Clip] = {}
        self.calls: dict[str, int] = {"getDataEndpoint": 0, "getImages": 0}
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="kvs-standin")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def add_stream(self, name: str, clip: Path, start_s: float) -> None:
        self.streams[name] = _Clip(clip, start_s)

    def __enter__(self) -> KvsStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()
        self.server_close()

    # -- the two operations ---------------------------------------------------------------------------------
    def _stream(self, body: dict) -> _Clip:
        name, arn = str(body.get("StreamName") or ""), str(body.get("StreamARN") or "")
        if not name and arn.count("/") >= 2:  # arn:aws:kinesisvideo:REGION:ACCOUNT:stream/NAME/CREATION
            name = arn.split("/")[1]
        if not name:
            raise _ApiError(400, "InvalidArgumentException", "Either StreamName or StreamARN must be specified")
        if name not in self.streams:
            raise _ApiError(404, "ResourceNotFoundException", f"The stream {name} does not exist")
        return self.streams[name]

    def get_data_endpoint(self, body: dict) -> dict:
        self._stream(body)
        return {"DataEndpoint": self.url}

    def get_images(self, body: dict) -> dict:
        clip = self._stream(body)
        if body.get("ImageSelectorType") not in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
            raise _ApiError(400, "InvalidArgumentException", "ImageSelectorType must be PRODUCER_TIMESTAMP or "
                                                             "SERVER_TIMESTAMP")
        fmt = body.get("Format")
        if fmt not in ("JPEG", "PNG"):
            raise _ApiError(400, "InvalidArgumentException", "Format must be JPEG or PNG")
        try:
            start, end = float(body["StartTimestamp"]), float(body["EndTimestamp"])
            interval = int(body["SamplingInterval"])
        except (KeyError, TypeError, ValueError):
            raise _ApiError(400, "InvalidArgumentException", "StartTimestamp, EndTimestamp and SamplingInterval "
                                                             "are required") from None
        if end < start or end - start > MAX_RANGE_S:
            raise _ApiError(400, "InvalidArgumentException", f"the range from StartTimestamp to EndTimestamp must be "
                                                             f"0 to {MAX_RANGE_S:g} seconds")
        if interval < MIN_INTERVAL_MS:
            raise _ApiError(400, "InvalidArgumentException", f"SamplingInterval must be at least {MIN_INTERVAL_MS} ms")
        page = min(PAGE, int(body.get("MaxResults") or PAGE))
        first = int(body.get("NextToken") and base64.b64decode(body["NextToken"]).decode() or 0)
        times = [start + i * interval / 1000 for i in range(int((end - start) * 1000 // interval) + 1)]
        times = [t for t in times if t <= end]
        quality = int((body.get("FormatConfig") or {}).get("JPEGQuality", 80))
        images = [self._image(clip, t, fmt, quality, body.get("WidthPixels"), body.get("HeightPixels"))
                  for t in times[first:first + page]]
        out: dict[str, Any] = {"Images": images}
        if first + page < len(times):
            out["NextToken"] = base64.b64encode(str(first + page).encode()).decode()
        return out

    @staticmethod
    def _image(clip: _Clip, t: float, fmt: str, quality: int, width: Any, height: Any) -> dict:
        frame = clip.frame_at(t)
        if frame is None:
            return {"TimeStamp": t, "Error": "NO_MEDIA"}
        h, w = frame.shape[:2]
        if width or height:
            width = int(width or round(w * int(height) / h))
            height = int(height or round(h * int(width) / w))
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]) if fmt == "JPEG" else (".png", [])
        data = cv2.imencode(ext, frame, params)[1].tobytes()
        return {"TimeStamp": t, "ImageContent": base64.b64encode(data).decode()}


class _Handler(BaseHTTPRequestHandler):
    server: KvsStandIn

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        route = {"/getDataEndpoint": self.server.get_data_endpoint, "/getImages": self.server.get_images}
        op = route.get(self.path.split("?", 1)[0])
        try:
            if op is None:
                raise _ApiError(404, "UnknownOperationException", f"the stand-in serves no {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length <= 1 << 20 else None
            if not isinstance(body, dict):
                raise _ApiError(400, "InvalidArgumentException", "the body must be a JSON object under 1 MiB")
            self.server.calls[self.path.lstrip("/")] += 1
            self._send(200, op(body))
        except _ApiError as exc:
            self._send(exc.status, {"message": str(exc)}, exc.kind)

    def _send(self, status: int, payload: dict, error: str = "") -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass
