"""`edge-agent models training-impact`: what specializing on the gateway costs its cameras, measured side
by side in one run. The agent's pipeline (motion gate, regions, student, tracker, cascade, event log;
frames decoded once beforehand, no escalations) runs over the same frames while the gateway is idle (3
passes before the training, 3 after), and again and again while `models specialize` trains in its niced
child process, as the loop runs it. Printed (medians):
milliseconds per frame (wall and agent CPU) both ways and their ratio, and the training run's wall time and
peak memory.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.app import Agent
from edge_agent.bench.runner import ReplaySource
from edge_agent.config import AgentConfig
from edge_agent.pipeline.opener import open_source
from edge_agent.pipeline.sources import SampledFrame
from models.student.defaults import DEFAULTS


def _frames(clip: Path, fps: float, count: int) -> list:
    source = open_source("impact", str(clip), fps)
    try:
        frames: list[SampledFrame] = []
        while len(frames) < count and (frame := source.read_sampled()) is not None:
            frames.append(frame)
        return frames
    finally:
        source.close()


def _pass(config: AgentConfig, frames: list, fps: float, db: Path) -> tuple[float, float]:
    """(wall ms, agent CPU ms) per frame for one pass of the pipeline over `frames`."""
    agent = Agent(config, events_db=db, sources=[ReplaySource("impact", frames, fps)])
    wall, cpu = time.perf_counter(), time.process_time()
    agent.run()
    return ((time.perf_counter() - wall) * 1000 / len(frames), (time.process_time() - cpu) * 1000 / len(frames))


def measure(clip: Path, records: Path, camera: str, champion: Path, frames: int = 200, fps: float = 10.0,
            epochs: int = DEFAULTS.epochs, threads: int = 1) -> dict:
    images = _frames(clip, fps, frames)
    if not images:
        raise ValueError(f"{clip} gave no frames")
    with tempfile.TemporaryDirectory(prefix="framesieve-impact-") as tmp:
        config = AgentConfig.model_validate({
            "student": str(champion), "cameras": [{"id": "impact", "source": str(clip), "fps": fps,
                                                         "onboarding": {"enabled": False}}],
            "escalation": {"transport": "none"}})
        db = Path(tmp) / "events.sqlite"
        _pass(config, images, fps, db)  # warm-up: first-call allocations, caches
        idle = [_pass(config, images, fps, db) for _ in range(3)]
        rules = Path(tmp) / "rules.json"  # train whatever the evidence: this measures the training's cost
        rules.write_text(DEFAULTS.model_copy(update={"min_present": 1, "min_absent": 0, "min_span_s": 0.0,
                                                     "min_records": 4, "epochs": epochs}).model_dump_json())
        args = [sys.executable, "-m", "edge_agent.cli", "models", "specialize", "--camera", camera, "--data",
                str(records), "--from", str(champion), "--out", str(Path(tmp) / "challenger"), "--rules", str(rules)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        started = time.perf_counter()
        with open(Path(tmp) / "train.log", "wb") as log:
            child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=lambda: os.nice(10))  # as the loop runs it
            busy = []
            time.sleep(3.0)  # past the child's imports, into training
            while child.poll() is None:
                busy.append(_pass(config, images, fps, db))
            rc = child.wait()
        train_s = time.perf_counter() - started
        idle += [_pass(config, images, fps, db) for _ in range(3)]  # before and after: a shared machine drifts
        if rc != 0 or not busy:
            tail = (Path(tmp) / "train.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the training run {'failed' if rc else 'ended before a pass'} (rc {rc}): "
                               + " | ".join(tail))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    idle_wall, idle_cpu = statistics.median(w for w, _ in idle), statistics.median(c for _, c in idle)
    busy_wall, busy_cpu = statistics.median(w for w, _ in busy), statistics.median(c for _, c in busy)
    return {"clip": clip.name, "frames": len(images), "cores": os.cpu_count(), "train_threads": threads,
            "epochs": epochs, "idle_ms_per_frame": round(idle_wall, 3), "idle_cpu_ms_per_frame": round(idle_cpu, 3),
            "training_ms_per_frame": round(busy_wall, 3), "training_cpu_ms_per_frame": round(busy_cpu, 3),
            "slowdown": round(busy_wall / idle_wall, 3), "passes_during_training": len(busy), "idle_passes": len(idle),
            "train_wall_s": round(train_s, 1), "train_peak_rss_mb": round(peak_mb, 1)}


def format_impact(r: dict) -> str:
    return "\n".join([
        f"Specializing on this gateway ({r['cores']} cores; training niced, {r['train_threads']} thread(s), "
        f"{r['epochs']} epochs), the agent's pipeline over {r['frames']} frames of {r['clip']} "
        "(decoded beforehand, no escalations):",
        f"  idle:            {r['idle_ms_per_frame']:8.2f} ms/frame wall, {r['idle_cpu_ms_per_frame']:.2f} ms CPU",
        f"  while training:  {r['training_ms_per_frame']:8.2f} ms/frame wall, {r['training_cpu_ms_per_frame']:.2f} ms "
        f"CPU  ({r['passes_during_training']} passes)",
        f"  slowdown:        {r['slowdown']:.2f}x wall, "
        f"{r['training_cpu_ms_per_frame'] / r['idle_cpu_ms_per_frame']:.2f}x agent CPU",
        f"  training run:    {r['train_wall_s']:.0f} s wall, peak memory {r['train_peak_rss_mb']:.0f} MB",
    ])
