"""The SageMaker-compatible inference server: `GET /ping`, `POST /invocations`, and boto3's
`POST /endpoints/{name}/invocations`, so the sagemaker-runtime client works unchanged with `endpoint_url`.

Stdlib `http.server` with the limits of cloud/httpserve.py (connections, whole-request deadline, drain on
SIGTERM) and of cloud/inference/images.py (JPEG and PNG only, pixels checked from the header before decoding),
so the container needs nothing beyond the model's runtime. One batcher thread
gathers the images of concurrent requests into one model call: a batched onnxruntime run costs far less
than the same images run one by one, most of all on a GPU. Bodies are `image/jpeg` (one image, answered
as id "0") or `application/json` (`contracts.wire.InvocationRequest`); replies are InvocationResponse.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from cloud.exceptions import ConfigError, RequestError, ServerClosing
from cloud.httpjson import send_json
from cloud.httpserve import MAX_CONNECTIONS, REQUEST_DEADLINE_S, LimitedHandler, LimitedServer, stop_on_signals
from cloud.inference.images import MAX_IMAGE_PIXELS, PIXEL_BUDGET, PixelBudget, check_size, decode_image
from contracts.detections import Detections
from contracts.wire import DetectionRecord, InvocationRequest, InvocationResponse, WireError, decode
from models.manifest import Manifest
from models.runtime import load_detector, presence_threshold

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time invocation payload limit
ACCEPTED = 'image/jpeg (one image) or application/json ({"instances": [{"id": ..., "jpeg_b64": ...}]})'
_INVOCATIONS = re.compile(r"^/(?:endpoints/[^/]+/)?invocations$")
# SageMaker's headers: which production variant answered (boto3: InvokedProductionVariant), and the variant a
# caller asks for (InvokeEndpoint's TargetVariant). One server is one variant; the local stand-in of an
# endpoint with several (cloud/ab/standin.py) routes between servers by weight.
VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
TARGET_HEADER = "X-Amzn-SageMaker-Target-Variant"
DEFAULT_VARIANT = "AllTraffic"  # the name of the template's single variant


class SupportsDetect(Protocol):
    """What the server needs of a model: `models.runtime.Detector` or a test double."""

    manifest: Manifest

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...


class DynamicBatcher:
    """Gathers concurrent requests' images, up to `max_batch` images or `max_wait_ms` after the first,
    into one call of `run`. A request is never split, so a large one runs alone in one call."""

    _STOP = object()

    def __init__(self, run: Callable[[list[np.ndarray]], list[Any]], max_batch: int = 8,
                 max_wait_ms: float = 5.0):
        self._run, self.max_batch, self.max_wait_s = run, max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="framesieve-batcher", daemon=True)
        self._thread.start()

    def submit(self, frames: list[np.ndarray]) -> list[Any]:
        """Run `frames` in the next batch and wait for their results; the model's exception is re-raised."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise ServerClosing("the server is shutting down; retry on another instance")
            self._queue.put((frames, future))
        return future.result()

    def close(self) -> None:
        """Answer what is already queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(self._STOP)
        self._thread.join()

    def _loop(self) -> None:
        carried: Any = None
        while True:
            job = carried if carried is not None else self._queue.get()
            carried = None
            if job is self._STOP:
                return
            batch, size = [job], len(job[0])
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is self._STOP or size + len(nxt[0]) > self.max_batch:
                    carried = nxt  # it opens the next batch (or stops the loop after this one)
                    break
                batch.append(nxt)
                size += len(nxt[0])
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[list[np.ndarray], Future]]) -> None:
        frames = [f for job_frames, _ in batch for f in job_frames]
        try:
            results = self._run(frames)
            if len(results) != len(frames):
                raise RuntimeError(f"the model returned {len(results)} results for {len(frames)} images")
        except Exception as exc:  # every request waiting on this batch must hear of it
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for job_frames, future in batch:
            future.set_result(results[start:start + len(job_frames)])
            start += len(job_frames)


class InferenceServer(LimitedServer):
    """The HTTP server with its model, per-label thresholds and batcher; `server_close()` stops both. The
    limits of cloud/httpserve.py, and per image a pixel limit read from the header before decoding."""

    def __init__(self, address: tuple[str, int], detector: SupportsDetect, *, max_batch: int = 8,
                 max_wait_ms: float = 5.0, max_body_bytes: int = MAX_BODY_BYTES, max_images: int = 32,
                 max_image_pixels: int = MAX_IMAGE_PIXELS, pixel_budget: int = PIXEL_BUDGET,
                 max_connections: int = MAX_CONNECTIONS, request_deadline_s: float = REQUEST_DEADLINE_S,
                 variant_name: str = DEFAULT_VARIANT):
        if not re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", variant_name or ""):
            raise ConfigError(f"variant name {variant_name!r}: SageMaker's VariantName is 1-63 letters, digits and "
                             "'-', starting with a letter or digit (e.g. champion)")
        self.variant_name = variant_name
        manifest = detector.manifest
        self.detector, self.model_name = detector, f"{manifest.name}@{manifest.version}"
        self.thresholds = {label: presence_threshold(manifest, label) for label in manifest.label_groups}
        self.max_body_bytes, self.max_images, self.max_image_pixels = max_body_bytes, max_images, max_image_pixels
        self.pixels = PixelBudget(pixel_budget)
        self.batcher = DynamicBatcher(detector.detect, max_batch, max_wait_ms)
        try:
            super().__init__(address, _Handler, max_connections=max_connections,
                             request_deadline_s=request_deadline_s)
        except BaseException:
            self.batcher.close()
            raise

    def predict(self, frames: list[np.ndarray]) -> list[tuple[DetectionRecord, ...]]:
        """Detections per frame at or above the model's operating threshold for their label."""
        out = []
        for dets in self.batcher.submit(frames):
            floor = np.array([self.thresholds.get(str(lbl), 0.5) for lbl in dets.labels], np.float32)
            keep = dets.scores >= floor
            out.append(dets[keep].to_wire())
        return out

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()

    def stop(self) -> None:
        """Stop a server started by `start_in_thread` (shutdown() waits on a running serve_forever)."""
        self.shutdown()
        self.server_close()


class _Handler(LimitedHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    server_version = "FrameSieveInference/1"

    def do_GET(self) -> None:
        self._begin()
        if self._path == "/ping":
            self._send(200, {"status": "ok", "model": self.server.model_name})
        elif _INVOCATIONS.match(self._path):
            self._fail(RequestError(405, f"{self._path} takes POST with {ACCEPTED}"))
        else:
            self._fail(RequestError(404, f"no route GET {self._path}; routes: GET /ping, POST /invocations"))

    def do_POST(self) -> None:
        self._begin()
        if not _INVOCATIONS.match(self._path):
            return self._fail(RequestError(404, f"no route POST {self._path}; POST /invocations or "
                                                "/endpoints/{name}/invocations"))
        target = self.headers.get(TARGET_HEADER)
        try:
            ids, images = self._parse(self._read_body())
            if target is not None and target != self.server.variant_name:
                raise RequestError(400, f"TargetVariant {target!r} is not a variant of this endpoint; it serves "
                                        f"{self.server.variant_name!r}", "ValidationError")
            pixels = sum(check_size(data, what, self.server.max_image_pixels) for what, data in images)
        except RequestError as exc:
            return self._fail(exc)
        try:
            self.server.pixels.acquire(pixels, self.server.request_deadline_s)
        except RequestError as exc:
            return self._fail(exc)
        try:  # decoded only now, within the budget: the frames are dropped before it is given back
            frames = [decode_image(data, what) for what, data in images]
            predictions = self.server.predict(frames)
            del frames
        except RequestError as exc:
            return self._fail(exc)
        except ServerClosing as exc:
            return self._fail(RequestError(503, str(exc)))
        except Exception as exc:  # the model's failure, whatever its type: SageMaker's 424
            log.exception("the model failed on %d image(s)", len(images))
            return self._fail(RequestError(424, f"the model failed: {type(exc).__name__}: {exc}"))
        finally:
            self.server.pixels.release(pixels)
        self._images = len(images)
        response = InvocationResponse(self.server.model_name, tuple(zip(ids, predictions, strict=True)))
        self._send(200, response.to_bytes(), {VARIANT_HEADER: self.server.variant_name})

    def _begin(self) -> None:
        self._t0, self._path = time.perf_counter(), urlsplit(self.path).path
        self._consumed, self._images = False, 0

    def _read_body(self) -> bytes:
        header = self.headers.get("Content-Length")
        if header is None or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "send the body with a Content-Length header, not chunked")
        if not header.strip().isdigit():
            raise RequestError(400, f"Content-Length {header!r} is not a byte count")
        length, limit = int(header), self.server.max_body_bytes
        if length > limit:
            if length <= 4 * limit:  # read it, so the client gets this answer rather than a reset
                self._consumed = len(self.rfile.read(length)) == length
            raise RequestError(413, f"the body is {length} bytes, over the {limit}-byte limit (SageMaker's "
                                    "real-time payload limit); send fewer or smaller images",
                               "ValidationError")
        try:
            body = self.rfile.read(length)
        except TimeoutError as exc:
            raise RequestError(408, f"{exc}; the whole request must arrive within "
                                    f"{self.server.request_deadline_s:g} s") from exc
        self._consumed = len(body) == length
        if not self._consumed:
            raise RequestError(400, f"the body ended after {len(body)} of its {length} bytes")
        return body

    def _parse(self, body: bytes) -> tuple[list[str], list[tuple[str, bytes]]]:
        """The ids and (name, bytes) of the images; nothing decoded yet."""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        accept = [a.split(";")[0].strip().lower() for a in (self.headers.get("Accept") or "*/*").split(",")]
        if not {"application/json", "application/*", "*/*"} & set(accept):
            raise RequestError(406, f"Accept {self.headers.get('Accept')!r} cannot be met; replies are "
                                    "application/json")
        if not body:
            raise RequestError(400, f"the request body is empty; send {ACCEPTED}")
        if ctype in ("image/jpeg", "image/png"):
            return ["0"], [(f"the {ctype} body", body)]
        if ctype != "application/json":
            raise RequestError(415, f"Content-Type {ctype or '(none)'!r} is not accepted; send {ACCEPTED}")
        try:
            request = InvocationRequest.from_payload(decode(body, "the application/json body", len(body)))
        except WireError as exc:
            raise RequestError(400, f"{exc}; send {ACCEPTED}") from exc
        if len(request.images) > self.server.max_images:
            raise RequestError(413, f"the batch has {len(request.images)} images, over the limit of "
                                    f"{self.server.max_images}; split it into smaller requests")
        return [i for i, _ in request.images], [(f"instance {i!r:.40}", data) for i, data in request.images]

    def _fail(self, exc: RequestError) -> None:
        message = str(exc)
        self._send(exc.status, {"error": message, "message": message, "OriginalStatusCode": exc.status,
                                "OriginalMessage": message}, {"x-amzn-ErrorType": exc.code})

    def _send(self, status: int, payload: dict | bytes, headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        if self.command == "POST" and not self._consumed:
            headers["Connection"] = "close"  # the unread body would be taken for the next request
        send_json(self, status, payload, headers)
        ms = round((time.perf_counter() - self._t0) * 1000, 1)
        log.info(json.dumps({"method": self.command, "path": self._path, "status": status, "ms": ms,
                             "images": self._images, "variant": self.server.variant_name}))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _send logs one JSON line per request instead

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.warning("%s: %s", self.address_string(), format % args)


def resolve_model(model: Path | str | None = None, input_size: int | None = None) -> Path:
    """The manifest to serve: `model` (a manifest or its folder), else SageMaker's model dir, else the
    FrameSieve teacher (fetched and converted on first use), at `input_size` pixels square when given (a second
    teacher variant for champion/challenger, e.g. 320 beside the 416 default)."""
    if input_size:
        if model:
            raise ConfigError(f"--input-size {input_size} converts the FrameSieve teacher at that size; it cannot "
                              f"resize --model {model}: drop one of them")
        from models.teacher.build import ensure_teacher

        return ensure_teacher(input_size=input_size)
    if model:
        path = Path(model)
        return path / "manifest.json" if path.is_dir() else path
    for folder in (os.environ.get("SM_MODEL_DIR"), "/opt/ml/model"):
        if folder and (Path(folder) / "manifest.json").is_file():
            return Path(folder) / "manifest.json"
    from models.teacher.build import ensure_teacher

    return ensure_teacher()


def start_in_thread(model: SupportsDetect | Path | str | None = None, host: str = "127.0.0.1", port: int = 0,
                    threads: int | None = None, input_size: int | None = None,
                    **limits: Any) -> tuple[InferenceServer, int]:
    """Serve in a daemon thread (port 0: a free one); returns (server, port). Stop it with server.stop()."""
    detector = model if hasattr(model, "detect") else load_detector(resolve_model(model, input_size),  # type: ignore[arg-type]
                                                                   threads=threads)
    server = InferenceServer((host, port), detector, **limits)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, name="framesieve-http", daemon=True).start()
    return server, server.server_address[1]


def serve_forever(model: Path | str | None = None, host: str = "127.0.0.1", port: int = 8080,
                  threads: int | None = None, input_size: int | None = None, **limits: Any) -> None:
    """Serve in this thread until SIGTERM or SIGINT, then drain (cloud/httpserve.py) and close."""
    manifest_path = resolve_model(model, input_size)
    server = InferenceServer((host, port), load_detector(manifest_path, threads=threads), **limits)
    stop_on_signals(server)  # SIGTERM: in-flight requests answered, new ones 503, then exit
    log.info(json.dumps({"event": "listening", "host": host, "port": server.server_address[1],
                         "model": server.model_name, "manifest": str(manifest_path),
                         "variant": server.variant_name}))
    try:
        server.serve_forever()
    finally:
        server.server_close()
        log.info(json.dumps({"event": "stopped"}))

