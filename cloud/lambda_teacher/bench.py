"""`framesieve-cloud bench-lambda`: the teacher inside the router Lambda, run by awslambdaric as a real runtime
process against the loopback Runtime API, measured the way Lambda bills it.

- cold start: process start to the first answer (interpreter, imports, model load, first inference), what
  the first event of a new container waits;
- warm latency: one escalation at a time, from handing the event to the Runtime API to its answer;
- GB-seconds per image: the mean warm duration x the configured memory (Lambda bills duration x memory);
- peak memory (VmHWM): the memory size the function needs at least.
Events are real escalations: whole 768x576 vtest frames as the edge sends them today, one per message.
A process on a shared 2-core machine is not a Lambda: the CPU a Lambda gets scales with its memory (1,769
MB is one vCPU), so these figures stand for a function of about that size or more, run with one thread.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud import constants as c
from cloud.lambda_teacher.emulator import LambdaProcess
from contracts.wire import Crop, EscalationRequest

HANDLER = "cloud.lambda_teacher.handler.handler"


@dataclass(frozen=True)
class LambdaBench:
    memory_mb: int
    threads: int
    cold_start_s: float
    warm_p50_s: float
    warm_p95_s: float
    warm_mean_s: float
    cpu_s_per_image: float
    peak_rss_mb: float
    images: int

    @property
    def gb_s_per_image(self) -> float:
        return self.warm_mean_s * self.memory_mb / 1024

    def report(self) -> str:
        return "\n".join([
            f"teacher inside the router Lambda: awslambdaric process, {self.threads} intra-op thread(s), "
            f"{self.memory_mb} MB configured, {self.images} warm escalations (one 768x576 vtest frame each)",
            f"  cold start (process start -> first answer): {self.cold_start_s:.2f} s",
            f"  warm latency p50 {self.warm_p50_s * 1000:.1f} ms, p95 {self.warm_p95_s * 1000:.1f} ms, "
            f"mean {self.warm_mean_s * 1000:.1f} ms",
            f"  CPU per image {self.cpu_s_per_image * 1000:.1f} ms; peak memory {self.peak_rss_mb:.0f} MB",
            f"  GB-seconds per image at {self.memory_mb} MB: {self.gb_s_per_image:.4f} "
            f"(${self.gb_s_per_image * 0.0000166667 * 1e6:.2f} per million images at the x86 list price)",
            "",
            "price-file override (--pricing-overrides) with these figures:",
            "backends:",
            "  options:",
            "    lambda-teacher:",
            f"      memory_mb: {self.memory_mb}",
            f"      s_per_image: {self.warm_mean_s:.4f}",
            f"      p95_s: {self.warm_p95_s:.4f}",
            f"      cold_start_s: {self.cold_start_s:.2f}",
            f"      performance_source: \"measured: framesieve-cloud bench-lambda, {self.threads} thread(s)\"",
        ])


THING, SITE, CAMERA = "bench-gw", "bench", "plaza"


def rule_event(message: dict[str, Any], thing: str = THING) -> dict[str, Any]:
    """What the IoT rule hands the router: the message base64-encoded beside the rule's own fields."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return {c.EVENT_PAYLOAD: base64.b64encode(body).decode(), c.EVENT_TOPIC: f"framesieve/{thing}/escalations",
            c.EVENT_THING: thing, c.EVENT_RECEIVED_MS: int(time.time() * 1000)}


def escalation_messages(count: int = 6) -> list[dict[str, Any]]:
    """Escalations carrying whole vtest frames, as the edge escalates today."""
    from cloud.inference.bench import bench_images

    out = []
    for k, jpeg in enumerate(bench_images(count)):
        crop = Crop(0, (0.0, 0.0, 768.0, 576.0), jpeg, (768, 576))
        out.append(EscalationRequest(str(uuid.uuid4()), CAMERA, k, float(k), "uncertain", (crop,), site=SITE,
                                     created_s=time.time()).to_payload())
    return out


def register_bench_gateway(store_url: str) -> None:
    """The router answers only registered gateways: the bench's own, in its throwaway store."""
    from cloud.stores import open_store
    from contracts.registry import Registration

    store = open_store(store_url)
    try:
        store.register_gateway(Registration(THING, SITE, (CAMERA,)))
    finally:
        store.close()


def _fresh(message: dict[str, Any]) -> dict[str, Any]:
    # a repeated id would stop at the duplicate check; the time is now, inside the router's event window
    return rule_event({**message, "message_id": str(uuid.uuid4()), "created_s": round(time.time(), 3)})


def bench_lambda(invocations: int = 30, memory_mb: int = 2048, threads: int = 1, model: str | None = None,
                 timeout_s: float = 120.0) -> LambdaBench:
    from cloud.inference.server import resolve_model

    events = escalation_messages()
    with tempfile.TemporaryDirectory(prefix="framesieve-lambda-") as tmp:
        store_url = f"sqlite:///{Path(tmp) / 'results.sqlite'}"
        register_bench_gateway(store_url)
        env = {c.STORE_URL: store_url, c.VERDICT_TOPIC: "",
               c.TRAINING_BUCKET: "", c.ALERT_TOPIC_ARN: "", "FRAMESIEVE_TEACHER_MANIFEST": str(resolve_model(model)),
               "FRAMESIEVE_TEACHER_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        fn = LambdaProcess(HANDLER, env, memory_mb)
        try:
            first = fn.invoke(_fresh(events[0]), timeout_s)
            cold = time.perf_counter() - fn.started
            if first.get("status") != "stored":
                raise RuntimeError(f"the first escalation was not answered and stored: {first}")
            cpu0, times = fn.cpu_s(), []
            for k in range(invocations):
                t0 = time.perf_counter()
                out = fn.invoke(_fresh(events[k % len(events)]), timeout_s)
                times.append(time.perf_counter() - t0)
                if out.get("status") != "stored":
                    raise RuntimeError(f"escalation {k} was not answered and stored: {out}")
            cpu = (fn.cpu_s() - cpu0) / invocations
            rss = fn.peak_rss_mb()
        finally:
            fn.stop()
    t = np.array(times)
    return LambdaBench(memory_mb, threads, cold, float(np.percentile(t, 50)), float(np.percentile(t, 95)),
                       float(t.mean()), cpu, rss, invocations)
