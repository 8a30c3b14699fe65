"""`framesieve-cloud bench-endpoint`: what dynamic batching buys on this machine.

The real inference server over real HTTP on loopback, one setting of --max-batch at a time, N client
threads each sending one JPEG per request (as escalations arrive: one frame's crops at a time) for a
fixed share of the time budget. Reported per setting: images/s, p50/p95 request latency, and the mean
batch the model actually ran. onnxruntime takes the CUDA provider where it is available.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cloud.inference.server import resolve_model, start_in_thread
from models.runtime import load_detector


@dataclass(frozen=True)
class Row:
    max_batch: int
    clients: int
    images: int
    seconds: float
    p50_ms: float
    p95_ms: float
    mean_batch: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


class _Counting:
    """The detector, recording the size of every batch it runs."""

    def __init__(self, detector: Any):
        self.detector, self.manifest, self.sizes = detector, detector.manifest, []

    def detect(self, frames: Sequence[np.ndarray]) -> list:
        self.sizes.append(len(frames))
        return self.detector.detect(frames)


def _client(port: int, jpegs: list[bytes], start: threading.Barrier, stop_at: list[float],
            latencies: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/invocations", body=jpegs[0], headers={"Content-Type": "image/jpeg"})
        conn.getresponse().read()  # warm-up, not timed
        start.wait()
        k = 0
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            conn.request("POST", "/invocations", body=jpegs[k % len(jpegs)], headers={"Content-Type": "image/jpeg"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}")
                return
            latencies.append(time.perf_counter() - t0)
            k += 1
    except (OSError, http.client.HTTPException) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def run_setting(detector: Any, jpegs: list[bytes], max_batch: int, clients: int, seconds: float,
                max_wait_ms: float = 5.0) -> Row:
    counting = _Counting(detector)
    server, port = start_in_thread(counting, max_batch=max_batch, max_wait_ms=max_wait_ms)
    latencies: list[float] = []
    errors: list[str] = []
    start, stop_at = threading.Barrier(clients + 1), [float("inf")]
    threads = [threading.Thread(target=_client, args=(port, jpegs, start, stop_at, latencies, errors), daemon=True)
               for _ in range(clients)]
    try:
        for t in threads:
            t.start()
        start.wait(timeout=120)
        counting.sizes.clear()
        t0 = time.perf_counter()
        stop_at[0] = t0 + seconds
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        server.stop()
    if errors:
        raise RuntimeError(f"bench clients failed at max_batch={max_batch}: {errors[:3]}")
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return Row(max_batch, clients, len(latencies), elapsed, float(np.percentile(ms, 50)),
               float(np.percentile(ms, 95)), float(np.mean(counting.sizes)) if counting.sizes else 0.0)


def bench_images(count: int = 6) -> list[bytes]:
    """JPEGs of real vtest.avi frames (768x576), spread over the clip."""
    from models.fetch import fetch_vtest

    cap = cv2.VideoCapture(str(fetch_vtest()))
    out = []
    for index in np.linspace(0, 700, count).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if ok:
            out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    cap.release()
    if not out:
        raise RuntimeError("could not read frames of vtest.avi for the benchmark")
    return out


def bench(model: str | None = None, duration_s: float = 30.0, clients: int = 8, batches: Sequence[int] = (1, 2, 4, 8),
          threads: int | None = None, max_wait_ms: float = 5.0, providers: Sequence[str] | None = None,
          images: list[bytes] | None = None) -> tuple[list[Row], str, str]:
    """Rows for batch 1 and each other setting, the provider used and the model's name."""
    batches = sorted({1, *batches})
    detector = load_detector(resolve_model(model), threads=threads, providers=providers)
    provider = detector.session.get_providers()[0]
    jpegs = images or bench_images()
    share = duration_s / len(batches)
    rows = [run_setting(detector, jpegs, b, clients, share, max_wait_ms) for b in batches]
    return rows, provider, f"{detector.manifest.name}@{detector.manifest.version}"


def report(rows: list[Row], provider: str, model: str) -> str:
    base = rows[0]
    best = max(rows[1:] or rows, key=lambda r: r.images_per_s)
    lines = [f"model {model} on {provider}; {base.clients} concurrent clients, one 768x576 JPEG per request, "
             f"{base.seconds:.1f} s per setting",
             f"{'setting':<22}{'max_batch':>10}{'mean batch':>12}{'images/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
             f"{'vs batch 1':>12}"]
    for label, row in (("batch 1", base), (f"best batch ({best.max_batch})", best)):
        lines.append(f"{label:<22}{row.max_batch:>10}{row.mean_batch:>12.2f}{row.images_per_s:>10.1f}"
                     f"{row.p50_ms:>9.1f}{row.p95_ms:>9.1f}{row.images_per_s / max(base.images_per_s, 1e-9):>11.2f}x")
    others = [r for r in rows[1:] if r is not best]
    if others:
        lines.append("also tried: " + "; ".join(f"max_batch {r.max_batch}: {r.images_per_s:.1f} img/s, "
                                                f"p50 {r.p50_ms:.0f} ms" for r in others))
    return "\n".join(lines)
