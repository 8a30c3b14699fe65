"""Run one clip both ways, in one process: the baseline (the teacher on every sampled frame, as the
customer runs it today) and the hybrid (the whole edge pipeline, escalations answered by the same
teacher through the local inference server). CPU is process time, decode included, per side."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from contracts.detections import Detections
from contracts.wire import CropVerdict, EscalationRequest, Verdict
from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.escalation.base import Transport
from edge_agent.pipeline.opener import open_source
from edge_agent.pipeline.sources import FrameSource, SampledFrame
from models.runtime import load_detector
from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_inference_server(timeout_s: float = 60.0):
    """`framesieve-cloud serve` as its own process on a free loopback port (so its CPU is not counted
    as the edge's); yields its /invocations URL."""
    port = free_port()
    beside = Path(sys.executable).with_name("framesieve-cloud")  # this environment's, before any on PATH
    exe = str(beside) if beside.exists() else shutil.which("framesieve-cloud")
    if exe is None:
        raise RuntimeError("framesieve-cloud is not installed in this environment; pip install -e '.[cloud]'")
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the inference server exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/ping", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the inference server did not answer /ping within {timeout_s} s") from None
                time.sleep(0.2)
        yield base + "/invocations"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Baseline:
    frames: dict[int, SampledFrame]
    detections: dict[int, Detections]
    cpu_s: float
    fps: float
    teacher_cpu_s: float = 0.0  # the teacher's share of cpu_s: its median per frame, times the frames

    @property
    def duration_s(self) -> float:
        return len(self.detections) / self.fps


def run_baseline(clip: Path, fps: float, keep_frames: bool = True) -> Baseline:
    """The teacher on every sampled frame (one intra-op thread, like the student, so CPU times compare
    like for like), decode included in the CPU time."""
    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    frames, dets, teacher_s = {}, {}, []
    started = time.process_time()
    source = open_source("baseline", str(clip), fps)
    try:
        while (frame := source.read_sampled()) is not None:
            t0 = time.thread_time()  # one intra-op thread: the teacher runs on this thread
            dets[frame.frame_index] = teacher.detect([frame.image])[0]
            teacher_s.append(time.thread_time() - t0)
            if keep_frames:
                frames[frame.frame_index] = frame
    finally:
        source.close()
    total = time.process_time() - started
    # A burst of load from another process on a shared machine inflates some frames' teacher time: it is
    # counted at its median per frame, so the baseline (and the cost priced from it) does not move with
    # the noise. Decoding is counted as it came.
    teacher_cpu = median(teacher_s) * len(teacher_s) if teacher_s else 0.0
    return Baseline(frames, dets, total - sum(teacher_s) + teacher_cpu, fps, teacher_cpu)


class ReplaySource(FrameSource):
    """Frames decoded once, replayed: threshold sweeps then cost no decoding."""

    def __init__(self, camera: str, frames: list[SampledFrame], fps: float):
        super().__init__(camera, fps)
        self._frames = iter(frames)

    def _read(self) -> SampledFrame | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        self.frames_seen += 1
        self.frames_sampled += 1
        return SampledFrame(self.camera, frame.frame_index, frame.pts_s, frame.image, frame.wall_time)

    def _release(self) -> None:
        pass


class OracleTransport(Transport):
    """Answers escalations with the baseline's detections of that frame (inside each crop): the same
    answer the real endpoint gives, without HTTP or JPEG, for sweeps."""

    name = "oracle"

    def __init__(self, baseline: Baseline):
        self.baseline = baseline

    def escalate(self, request: EscalationRequest) -> Verdict:
        ref = self.baseline.detections[request.frame_index]
        crops = []
        for crop in request.crops:
            x1, y1, x2, y2 = crop.box
            cx = (ref.xyxy[:, 0] + ref.xyxy[:, 2]) / 2
            cy = (ref.xyxy[:, 1] + ref.xyxy[:, 3]) / 2
            inside = ref[(cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)]
            crops.append(CropVerdict(crop.crop_id, inside.to_wire()))
        return Verdict(request.message_id, request.camera, request.frame_index, "oracle", tuple(crops))


@dataclass
class Hybrid:
    lines: list[dict]
    counters: dict
    cpu_s: float
    student_calls: int
    messages: int = 0
    extra: dict = field(default_factory=dict)


def agent_config(camera: str, clip: Path, fps: float, url: str, cascade: dict | None = None,
                 crop: str = "frame", regions: dict | None = None, onboarding: bool = False,
                 precision: str = "fp32") -> AgentConfig:
    """A one-camera config for the bench. Onboarding is off unless asked for: the hybrid measured is the
    student's cascade (what a camera runs once it has a student; `bench --new-camera` measures the path
    from onboarding). `precision` fp32: the student measured is the one given, never quantised mid-run
    (gateway-capacity measures the default's INT8 from its kept calibration)."""
    cam: dict = {"id": camera, "source": str(clip), "fps": fps, "onboarding": {"enabled": onboarding}}
    if cascade:
        cam["cascade"] = cascade
    # a bench replays recorded clips, not cameras an installer could set: no advice on their stream size
    cam["regions"] = {"oversize_hint": False, **(regions or {})}
    return AgentConfig.model_validate({"site": "bench", "cameras": [cam], "student": {"precision": precision},
                                       "escalation": {"transport": "url", "url": url, "crop": crop}})


def run_hybrid(config: AgentConfig, out_dir: Path, name: str, transport: Transport | None = None,
               sources: list[FrameSource] | None = None) -> Hybrid:
    jsonl = out_dir / f"{name}.jsonl"
    db = out_dir / f"{name}.events.sqlite"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    agent = Agent(config, transport=transport, jsonl=jsonl, events_db=db, sources=sources)
    started = time.process_time()
    summary = agent.run()
    cpu = time.process_time() - started
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return Hybrid(lines, summary["total"], cpu, summary["student_calls"],
                  extra={"student_crops": summary["student_crops"]})


def replay(baseline: Baseline, camera: str) -> list[FrameSource]:
    frames = [baseline.frames[k] for k in sorted(baseline.frames)]
    return [ReplaySource(camera, frames, baseline.fps)]
