"""The gateway side of `edge-agent gateway-capacity`: N cameras of one stream kind through the agent's real loop.

A gateway runs many cameras, and the agent batches every camera's regions into one student call
(`Agent.run(max_batch=8)`, `FrameFeeder.batch`, `BatchedStudent`). Each camera here is its own `AVFileSource`
(its own demuxer and decoder, in the stream's best decode mode) on the same file, all in one agent, answered by
the teacher's detections of that sample (`OracleTransport`). CPU per camera-sample = the agent's process CPU
(decoder threads included) / (N x samples). The one-camera figure is measured the same way, alternated with the
N-camera one (1, N, 1, N, ...), medians reported.

File cameras read as fast as they decode, so they arrive in lockstep and fill batches. A live gateway's cameras
come at the wall clock's pace, each at its own phase: the paced run (`realtime` files, each started at a random
phase within the sampling interval) measures the mean batch the loop's own rate reaches then.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from pathlib import Path

from edge_agent.app import Agent
from edge_agent.bench.runner import Baseline, OracleTransport
from edge_agent.config import AgentConfig
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig
from edge_agent.pipeline.sources import FrameSource, SampledFrame


class NearestAnswers(dict):
    """The teacher's answer for a frame index: that sample's, or the nearest sample's (a keyframe mode may hand
    out a frame a little after its slot; what the oracle answers costs the edge no CPU either way)."""

    def __missing__(self, key: int):
        return self[min(self.keys(), key=lambda k: abs(k - key))]


class _PhasedFile(AVFileSource):
    """A live-paced file camera that starts `phase_s` late: cameras switched on at different moments."""

    def __init__(self, *args, phase_s: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._phase_s = phase_s

    def _read(self) -> SampledFrame | None:
        if self._phase_s > 0:
            self._closed.wait(self._phase_s)
            self._phase_s = 0.0
        return super()._read()


def _config(ids: list[str], path: Path, fps: float, student: Path, main: Path | None = None) -> AgentConfig:
    """The bench's config for N cameras: onboarding off, the given student never quantised mid-run (as
    `runner.agent_config` for one). `main`: each camera's main stream as its `escalation_source`."""
    extra = {"escalation_source": {"url": str(main)}} if main is not None else {}
    return AgentConfig.model_validate({
        "site": "bench", "student": {"precision": "fp32"},
        "cameras": [{"id": cid, "source": str(path), "fps": fps, "onboarding": {"enabled": False},
                     "regions": {"oversize_hint": False}, **extra} for cid in ids],
        "escalation": {"transport": "url", "url": "http://127.0.0.1:9/unused", "crop": "frame"}}
    ).model_copy(update={"student": str(student)})


def scaled_oracle(baseline: Baseline, sx: float, sy: float) -> Baseline:
    """The oracle for crops cut from the main stream: the teacher's answers in the main stream's pixels (the
    escalator maps them back to the detect stream's)."""
    return Baseline(baseline.frames, NearestAnswers({k: d.with_scale(sx, sy) for k, d in baseline.detections.items()}),
                    0.0, baseline.fps)


def run_cameras(path: Path, cameras: int, fps: float, mode: str, student: Path, baseline: Baseline, out: Path,
                name: str, paced_s: float = 0.0, seed: int = 0, max_batch: int = 8, main: Path | None = None) -> dict:
    """N cameras on `path` in one agent. Lockstep (paced_s 0): every sample of the file, CPU measured.
    Paced (paced_s > 0): live-paced cameras at random phases for paced_s seconds: the batches they reach.
    `max_batch`: frames per loop batch (the agent's default 8; 1: each sample alone, as a lone live camera).
    `main`: escalation crops cut from this main stream (demuxed by every camera, a picture decoded per escalation;
    `baseline` then answers in its pixels: `scaled_oracle`)."""
    ids = [f"cam{i}" for i in range(cameras)]
    rng = random.Random(seed)
    decode = DecodeConfig(mode=mode)
    sources: list[FrameSource]
    if paced_s > 0:
        sources = [_PhasedFile(cid, path, fps, decode, realtime=True, loop=True, phase_s=rng.uniform(0, 1 / fps))
                   for cid in ids]
    else:
        sources = [AVFileSource(cid, path, fps, decode) for cid in ids]
    jsonl, db = out / f"{name}.jsonl", out / f"{name}.events.sqlite"
    for p in (jsonl, db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        p.unlink(missing_ok=True)
    agent = Agent(_config(ids, path, fps, student, main), transport=OracleTransport(baseline), jsonl=jsonl,
                  events_db=db, sources=sources)
    timer = threading.Timer(paced_s, agent.stop) if paced_s > 0 else None
    if timer is not None:
        timer.start()
    started, wall = time.process_time(), time.monotonic()
    try:
        summary = agent.run(max_batch=max_batch)
    finally:
        if timer is not None:
            timer.cancel()
    cpu, wall = time.process_time() - started, time.monotonic() - wall
    events = len(jsonl.read_text().splitlines())
    per_camera = {cid: c["sampled"] for cid, c in summary["cameras"].items()}
    calls, crops = summary["student_calls"], summary["student_crops"]
    row = {"cameras": cameras, "paced": paced_s > 0, "max_batch": max_batch, "events": events,
           "samples_per_camera": per_camera,
           "student_calls": calls, "student_crops": crops,
           "mean_student_batch": round(crops / calls, 2) if calls else 0.0,
           "cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
           "decoded_as": sorted({str(s.stats().get("decode_mode")) for s in sources}),
           "crops_from": "main" if main is not None else "detect"}
    if main is not None:
        fullres = summary.get("escalation_source", {})
        row["main_stream_crops"] = sum(int(v.get("sent", 0)) for v in fullres.values())
        row["main_stream_missed"] = sum(int(v.get("missed", 0)) for v in fullres.values())
    if paced_s == 0:
        row["edge_ms_per_camera_sample"] = round(1000 * cpu / max(1, events), 2)
    return row


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def measure_gateway(kind: str, path: Path, fps: float, mode: str, student: Path, baseline: Baseline,
                    baseline_ms: float, cameras: int, repeats: int, paced_s: float, out: Path,
                    memory_per_camera, paced_cameras: int | None = None, main: Path | None = None) -> dict:
    """One camera and N cameras alternated `repeats` times (CPU measured), then `paced_cameras` (default N)
    live-paced cameras for `paced_s` seconds (their batch only). Medians per camera count; every run in `runs`.

    The one camera runs each sample alone (max_batch 1), as a lone live camera's samples come one a second: a
    file camera read ahead would batch its own successive samples (what the per-mode table's replayed pipeline
    does), which no live camera can. The N file cameras run at the agent's max_batch 8: read as fast as they
    decode, they keep the loop saturated, as a gateway at its capacity is."""
    counts = [1] if cameras == 1 else [1, cameras]
    runs: list[dict] = []
    for rep in range(repeats):
        for n in counts:
            runs.append(run_cameras(path, n, fps, mode, student, baseline, out, f"{kind}-gw{n}-{rep}",
                                    max_batch=1 if n == 1 else 8, main=main) | {"rep": rep})
    figures = {}
    for n in counts:
        mine = [r for r in runs if r["cameras"] == n]
        edge_ms = _median(mine, "edge_ms_per_camera_sample")
        figures[str(n)] = {"cameras": n, "runs": len(mine), "events": mine[0]["events"],
                           "decoded_as": mine[0]["decoded_as"],
                           "edge_ms_per_camera_sample": edge_ms,
                           "edge_ms_runs": [r["edge_ms_per_camera_sample"] for r in mine],
                           "mean_student_batch": _median(mine, "mean_student_batch"),
                           "crops_from": mine[0]["crops_from"],
                           "main_stream_crops": mine[0].get("main_stream_crops"),
                           "edge_baseline_cpu": round(edge_ms / baseline_ms, 3),
                           "cameras_per_core": round(1000 / (edge_ms * fps), 1),
                           "memory_mb_per_camera": memory_per_camera(n)}
    paced = None
    paced_cameras = paced_cameras or cameras
    if paced_s > 0 and paced_cameras > 1:
        paced = run_cameras(path, paced_cameras, fps, mode, student, baseline, out, f"{kind}-gw{paced_cameras}-paced",
                            paced_s=paced_s, main=main)
    return {"cameras": cameras, "mode": mode, "repeats": repeats, "baseline_ms_per_sample": baseline_ms,
            "one": figures["1"], "many": figures[str(cameras)], "paced": paced, "runs": runs}


def format_gateway(summary: dict) -> str:
    kinds = [r for r in summary["kinds"].values() if r.get("gateway")]
    if not kinds:
        return ""
    g0 = kinds[0]["gateway"]
    lines = [f"gateway: 1 camera (each sample alone, as a lone live camera) and {g0['cameras']} cameras of each kind "
             "in one agent (each its own decoder on the same file: file cameras arrive in lockstep and keep the loop "
             f"saturated, as a gateway at capacity), medians of {g0['repeats']} alternated runs; CPU per "
             "camera-sample = process CPU / (cameras x samples)", "",
             "| stream | cameras | decoded as | events | mean student batch | edge ms per camera-sample (runs) "
             "| baseline ms | edge/baseline | cameras/core | MB/camera |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in kinds:
        g = r["gateway"]
        for f in (g["one"], g["many"]) if g["cameras"] > 1 else (g["one"],):
            crops = " (crops from the main stream)" if f.get("crops_from") == "main" else ""
            lines.append(f"| {r['kind']}{crops} | {f['cameras']} | {','.join(f['decoded_as'])} | {f['events']} | "
                         f"{f['mean_student_batch']} | {f['edge_ms_per_camera_sample']} "
                         f"({', '.join(str(x) for x in f['edge_ms_runs'])}) | {g['baseline_ms_per_sample']} | "
                         f"{f['edge_baseline_cpu']} | {f['cameras_per_core']} | {f['memory_mb_per_camera']} |")
    for r in kinds:
        g = r["gateway"]
        if p := g.get("paced"):
            lines.append(f"{r['kind']}: {p['cameras']} live-paced cameras at random phases, {p['wall_s']} s: "
                         f"{p['events']} events, mean student batch {p['mean_student_batch']} (file cameras "
                         f"{g['many']['mean_student_batch']}), process CPU {p['cpu_s']} s "
                         f"({round(100 * p['cpu_s'] / max(p['wall_s'], 1e-9))}% of a core)")
        if r.get("vs_main") and "many" in r["vs_main"]:
            one, v = r["vs_main"]["one"], r["vs_main"]["many"]
            lines.append(f"{r['kind']} as the detect stream of {r['vs_main']['kind']} (its baseline): 1 camera "
                         f"edge/baseline {one['edge_baseline_cpu']}, {one['cameras_per_core']} cameras per core; "
                         f"{v['cameras']} cameras {v['edge_baseline_cpu']}, {v['cameras_per_core']}")
    return "\n".join(lines)
