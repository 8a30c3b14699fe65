"""Kinesis Video Streams: a camera's frames at its sampling rate through GetImages (the archived-media API),
as a FrameSource the agent's pipeline reads like any camera. One worker runs a stream group: its streams'
sources in one agent, so their frames are batched through one student, as a gateway batches its cameras.

GetImages fits the sieve: it hands out decoded stills at a sampling interval (at least 200 ms: up to 5 fps,
the sieve samples at 1), so nothing decodes a whole H.264 stream to keep one frame a second; GetMedia (MKV
fragments) would mean decoding every frame of each GOP. The calls: GetDataEndpoint(APIName=GET_IMAGES) once per
stream, then GetImages over windows of at most 300 s (the API's limit), pages of up to 25 images.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.pipeline.sources import FrameSource, SampledFrame
from landed.config import KvsSettings, SieveCamera, SieveError
from landed.run import Sieve, SieveRun

log = logging.getLogger("framesieve.sieve.kvs")
MAX_WINDOW_S = 300.0  # GetImages: EndTimestamp at most 300 s after StartTimestamp
MIN_INTERVAL_MS = 200


def _utc(t_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t_s, dt.UTC)


def media_client(stream: str) -> Any:
    """The archived-media client at the stream's GET_IMAGES data endpoint (kinesisvideo's endpoint, and so the
    stand-in's in tests, from AWS_ENDPOINT_URL_KINESIS_VIDEO / AWS_ENDPOINT_URL as boto3 reads them)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        endpoint = boto3.client("kinesisvideo").get_data_endpoint(StreamName=stream, APIName="GET_IMAGES")
    except (BotoCoreError, ClientError) as exc:
        raise SieveError(f"Kinesis Video stream {stream!r}: no GET_IMAGES data endpoint: {exc}") from exc
    return boto3.client("kinesis-video-archived-media", endpoint_url=endpoint["DataEndpoint"])


class KvsImageSource(FrameSource):
    """One stream's images from `start_s` (producer time) to `end_s`, or on and on when `end_s` is None
    (following the stream `lag_s` behind the wall clock). pts_s is the time since `start_s`; wall_time is
    the image's own producer timestamp, so the rows and events are kept at the time the camera saw it."""

    def __init__(self, camera: str, stream: str, fps: float, start_s: float, end_s: float | None,
                 settings: KvsSettings, client: Any = None):
        super().__init__(camera, fps)
        if 1000.0 / fps < MIN_INTERVAL_MS:
            raise SieveError(f"camera {camera}: fps {fps:g} is above GetImages' 5 images a second; set fps <= 5")
        self.stream, self.start_s, self.end_s, self.settings = stream, start_s, end_s, settings
        self.live = end_s is None  # following: the agent does not wait for the cloud (a bounded window does)
        self.client = client or media_client(stream)
        self._pending: deque[tuple[float, np.ndarray]] = deque()
        self._next_s = start_s  # the start of the next window asked for
        self._last_s = -math.inf
        self._index = 0
        self.calls = 0

    def _read(self) -> SampledFrame | None:
        """Windows on the sampling grid (start + k / fps): GetImages samples from each window's start, and a
        window shorter than the interval would still return its start's image, so a window always holds
        whole intervals and the next one starts where its grid goes on."""
        interval = 1.0 / self.fps
        per_window = max(1, math.floor(MAX_WINDOW_S / interval + 1e-9))
        while not self._pending:
            if self.end_s is not None:
                if self._next_s >= self.end_s - 1e-6:
                    return None
                steps = min(per_window, math.ceil((self.end_s - self._next_s) / interval - 1e-9))
            else:  # following: only intervals that are `lag_s` in the past
                steps = min(per_window, math.floor((time.time() - self.settings.lag_s - self._next_s) / interval))
                if steps <= 0:
                    if self._closed.wait(self.settings.poll_s):
                        return None
                    continue
            window_end = self._next_s + steps * interval
            self._fetch(self._next_s, window_end)
            self._next_s = window_end
        t_s, image = self._pending.popleft()
        self.frames_seen += 1
        self.frames_sampled += 1
        frame = SampledFrame(self.camera, self._index, t_s - self.start_s, image, t_s)
        self._index += 1
        return frame

    def _fetch(self, start_s: float, end_s: float) -> None:
        """Every image of [start_s, end_s) at the sampling interval, page by page, decoded."""
        from botocore.exceptions import BotoCoreError, ClientError

        args: dict[str, Any] = {
            "StreamName": self.stream, "ImageSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": _utc(start_s),
            "EndTimestamp": _utc(end_s), "SamplingInterval": int(round(1000 / self.fps)),
            "Format": self.settings.image_format, "MaxResults": self.settings.max_results}
        if self.settings.height_px:
            args["HeightPixels"] = self.settings.height_px
        token = None
        while True:
            try:
                reply = self.client.get_images(**args, **({"NextToken": token} if token else {}))
            except (BotoCoreError, ClientError) as exc:  # counted; the window is skipped, the stream goes on
                self.healthy, self.last_error = False, f"GetImages {self.stream}: {exc}"
                log.warning("camera %s: %s", self.camera, self.last_error)
                return
            self.calls += 1
            self.healthy = True
            for image in reply.get("Images", []):
                self._take(image, start_s, end_s)
            token = reply.get("NextToken")
            if not token:
                return

    def _take(self, image: dict, start_s: float, end_s: float) -> None:
        stamp = image.get("TimeStamp")
        t_s = stamp.timestamp() if isinstance(stamp, dt.datetime) else float(stamp or 0)
        if image.get("Error") or not image.get("ImageContent"):
            return  # NO_MEDIA: the camera sent nothing for that time (a gap is not a fault)
        if not start_s - 1e-6 <= t_s < min(end_s, self.end_s or math.inf) - 1e-6 or t_s <= self._last_s:
            return  # the window's end belongs to the next window, the run's end to no one
        data = np.frombuffer(base64.b64decode(image["ImageContent"]), np.uint8)
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if decoded is None:
            self._corrupt(f"an image of {self.stream} at {t_s:.3f} could not be decoded")
            return
        self._last_s = t_s
        self._pending.append((t_s, decoded))

    def _release(self) -> None:
        self._pending.clear()


def run_streams(sieve: Sieve, cameras: list[SieveCamera], start_s: float | None, end_s: float | None,
                work: Path | None = None) -> list[SieveRun]:
    """One worker over these streams' cameras (one agent; they must be of one site): a bounded window with
    `end_s`, else following the streams until stopped."""
    import tempfile

    if not cameras:
        raise SieveError("no stream given: --stream NAME (repeatable) or --group NAME")
    start = start_s if start_s is not None else time.time() - 60.0
    sources = [KvsImageSource(c.id, c.stream or "", c.fps, start, end_s, sieve.config.kvs) for c in cameras]
    origin = f"kvs:{','.join(c.stream or '' for c in cameras)}@{int(start * 1000)}"
    folder = work or Path(tempfile.mkdtemp(prefix="framesieve-sieve-kvs-"))
    return [sieve.run(list(zip(cameras, sources, strict=True)), origin, folder, {c.id: start for c in cameras},
                      keep_lines=end_s is not None)]
