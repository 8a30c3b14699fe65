"""The cost model's batch occupancy (costing/occupancy.py) against measurement, side by side in one run: a
gateway of N cameras escalating a share of their frames, simulated by its arrivals (Poisson, the model's own
assumption about many independent cameras), each arrival a real escalation message (a vtest frame as the agent
sends it by default: the whole frame at 416 px, JPEG quality 70) handed to the real mqtt transport and its
batcher, against a running cloud (the local stack: `framesieve-cloud local --mqtt --gateway ...`), which
answers every one. Per `batch_window_ms`: the escalations per message the model predicts for those cameras,
that share and those bytes, and the escalations per message the batcher sent.

What it does not check: the agent's own timing. Live cameras that sample in step (one clip looped on every
camera, started together) hand their escalations over in bursts, which a Poisson model does not describe; a
fleet's cameras are not in step. `edge-agent bench-batching` without --poisson measures that case."""

from __future__ import annotations

import random
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from contracts.wire import Crop, EscalationRequest
from costing.occupancy import occupancy
from edge_agent.bench.batching import gateway_config
from edge_agent.escalation.base import TransportError


def vtest_crops(clip: Path, n: int = 40, max_px: int = 416, quality: int = 70) -> list[Crop]:
    """n frames of the clip as the agent's default message carries them (crop: frame, max_crop_px, jpeg_quality)."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    crops: list[Crop] = []
    try:
        while len(crops) < n:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            scale = min(1.0, max_px / max(h, w))
            small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                crops.append(Crop(0, (0.0, 0.0, float(w), float(h)), jpeg.tobytes(), (small.shape[1], small.shape[0])))
            for _ in range(9):  # every tenth frame: 1 fps of a 10 fps clip
                cap.grab()
    finally:
        cap.release()
    if not crops:
        raise ValueError(f"{clip}: no frame could be read")
    return crops


def run_poisson(host: str, port: int, thing: str, site: str, cameras: list[str], clip: Path, gateway_cameras: int,
                share: float, fps: float, window_ms: int, seconds: float, seed: int = 1,
                workdir: Path | None = None) -> dict:
    """One window setting: Poisson arrivals at gateway_cameras x fps x share per second for `seconds`."""
    from edge_agent.escalation.mqtt import build_mqtt_transport

    if not 0 < share <= 1 or gateway_cameras < 1 or window_ms < 0:
        raise ValueError(f"--poisson needs CAMERAS >= 1 and 0 < SHARE <= 1 and windows >= 0; got {gateway_cameras} "
                         f"cameras, share {share}, window {window_ms} ms")
    crops = vtest_crops(clip)
    with tempfile.TemporaryDirectory(prefix="framesieve-occupancy-") as tmp:
        work = workdir or Path(tmp)
        config = gateway_config(host, port, thing, site, [{"id": cameras[0], "source": str(clip)}], window_ms, work, 60)
        transport = build_mqtt_transport(config)
        counter = iter(range(1 << 30))
        lock = threading.Lock()

        def request() -> EscalationRequest:
            with lock:
                k = next(counter)
            return EscalationRequest(uuid.uuid4().hex, cameras[k % len(cameras)], k, k / fps, "uncertain",
                                     (crops[k % len(crops)],), site, time.time())

        failures: list[str] = []

        def one(req: EscalationRequest) -> None:
            try:
                transport.escalate(req)
            except TransportError as exc:
                failures.append(str(exc))

        try:
            if not transport.link.connection.wait_connected(10):
                raise TransportError(f"no MQTT connection to {host}:{port} within 10 s: is the local stack running?")
            one(request())  # the first verdict says the cloud reads batches; batching starts after it
            b = transport.batcher
            before = (b.messages, b.escalations, b.overflows) if b else (0, 0, 0)
            singles = transport.single_messages
            rate = gateway_cameras * fps * share
            rng = random.Random(seed)
            sent, sizes = 0, []
            with ThreadPoolExecutor(256) as pool:
                start, t = time.monotonic(), rng.expovariate(rate)
                while t < seconds:
                    delay = start + t - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    req = request()
                    sizes.append(len(req.to_bytes()))
                    pool.submit(one, req)
                    sent += 1
                    t += rng.expovariate(rate)
        finally:
            transport.close()
        # Counted once the batcher has stopped: it counts a message after publishing it, so its verdict can come
        # back (and the pool above finish) before the last message is counted.
        b = transport.batcher
        after = (b.messages, b.escalations, b.overflows) if b else (0, 0, 0)
        messages = after[0] - before[0] + transport.single_messages - singles
        escalations = after[1] - before[1] + transport.single_messages - singles
    nbytes = sum(sizes) / len(sizes) if sizes else 0.0
    model = occupancy(gateway_cameras, fps, share, max(1.0, nbytes), window_ms, "--windows")
    # the same model at the rate the random arrivals actually reached (a 45 s run draws ~190 +- 14)
    realized = occupancy(gateway_cameras, fps, min(1.0, sent / seconds / (gateway_cameras * fps)), max(1.0, nbytes),
                         window_ms, "--windows")
    return {"window_ms": window_ms, "gateway_cameras": gateway_cameras, "share": share, "fps": fps,
            "arrivals_per_window": model.arrivals_per_window, "bytes_per_escalation": round(nbytes),
            "cap_per_message": model.cap, "escalations": escalations, "messages": messages,
            "failed": len(failures), "failures": failures[:3], "overflow_windows": after[2] - before[2],
            "arrived": sent, "predicted_per_message": round(model.per_message, 3),
            "predicted_at_arrived_rate": round(realized.per_message, 3),
            "measured_per_message": round(escalations / messages, 3) if messages else None}


def run_poisson_bench(host: str, port: int, thing: str, site: str, cameras: list[str], clip: Path,
                      gateway_cameras: int, share: float, fps: float = 1.0, seconds: float = 30.0,
                      windows: tuple[int, ...] = (250,)) -> list[dict]:
    return [run_poisson(host, port, thing, site, cameras, clip, gateway_cameras, share, fps, w, seconds, seed=w + 1)
            for w in windows]


def format_poisson(rows: list[dict]) -> str:
    lines = [f"{'batch_window_ms':>15} {'cameras':>7} {'share':>6} {'lambda':>7} {'B/esc':>7} {'cap':>4} "
             f"{'arrived':>7} {'escalations':>11} {'messages':>8} {'failed':>6} {'predicted':>9} {'at arrived':>10} "
             f"{'measured':>8}"]
    for r in rows:
        measured = r["measured_per_message"] if r["measured_per_message"] is not None else "-"
        lines.append(f"{r['window_ms']:>15} {r['gateway_cameras']:>7} {r['share']:>6.3g} "
                     f"{r['arrivals_per_window']:>7.3g} {r['bytes_per_escalation']:>7,} {r['cap_per_message']:>4} "
                     f"{r['arrived']:>7} {r['escalations']:>11} {r['messages']:>8} {r['failed']:>6} "
                     f"{r['predicted_per_message']:>9} {r['predicted_at_arrived_rate']:>10} {measured:>8}")
    return "\n".join(lines) + ("\n(escalations per gateway message: predicted by costing/occupancy.py for Poisson "
                              "arrivals at the nominal rate and at the rate the run's arrivals reached; measured from "
                              "the batcher's own counts)")
