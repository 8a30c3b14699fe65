"""`edge-agent demo`: the whole product on the embedded default, no AWS account.

Starts the local SageMaker-compatible inference server (the teacher) as its own process, runs the
agent over real footage at 1 fps with the http transport pointed at it, then compares every sampled
frame's final decision with the teacher run on that same frame (what the customer runs today).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.pipeline.sources import open_source
from models.manifest import load_manifest
from models.metrics import agreement
from models.paths import DEFAULT_STUDENT_MANIFEST
from models.runtime import load_detector
from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_inference_server(timeout_s: float = 60.0):
    """`framesieve-cloud serve` on a free loopback port; yields its /invocations URL."""
    port = free_port()
    exe = shutil.which("framesieve-cloud") or str(Path(sys.executable).with_name("framesieve-cloud"))
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the inference server exited: {proc.stderr.read().decode()[-2000:]}")
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


def reference_detections(clip: Path, fps: float) -> dict[int, tuple[np.ndarray, Detections]]:
    """The teacher on every sampled frame: today's all-frames baseline (one intra-op thread, like the
    student, so the two CPU times compare like for like)."""
    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    source = open_source("reference", str(clip), fps)
    out = {}
    try:
        while (frame := source.read_sampled()) is not None:
            out[frame.frame_index] = (frame.image, teacher.detect([frame.image])[0])
    finally:
        source.close()
    return out


def held_back_start_s(clip_name: str) -> float | None:
    """Media time from which the shipped student never trained on this clip (from its manifest)."""
    training = load_manifest(DEFAULT_STUDENT_MANIFEST).training
    for entry in training.get("data", []):
        if entry["clip"] == clip_name:
            if entry["held_out"]:
                return 0.0
            return (entry["frames"] - entry["held_back"]) / entry["fps"]
    return None


def draw(image: np.ndarray, hybrid: Detections, reference: Detections, title: str) -> np.ndarray:
    out = image.copy()
    for box in reference.xyxy.astype(int):
        cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), (0, 0, 255), 3)
    for box, label, score in zip(hybrid.xyxy.astype(int), hybrid.labels, hybrid.scores, strict=True):
        cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), (0, 220, 0), 1)
        cv2.putText(out, f"{label} {score:.2f}", (box[0], max(10, box[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 220, 0), 1)
    cv2.putText(out, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    cv2.putText(out, "green: FrameSieve   red: teacher on every frame", (8, 42), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (255, 255, 255), 1)
    return out


def run_demo(clip: Path, out_dir: Path, fps: float = 1.0, overrides: dict | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / f"{clip.stem}.jsonl"
    db = out_dir / "events.sqlite"
    db.unlink(missing_ok=True)
    with local_inference_server() as url:
        raw = {"site": "demo", "cameras": [{"id": clip.stem, "source": str(clip), "fps": fps}],
               "escalation": {"transport": "url", "url": url}}
        for key, value in (overrides or {}).items():
            raw[key] = value
        config = AgentConfig.model_validate(raw)
        agent = Agent(config, jsonl=jsonl, events_db=db)
        started = time.process_time()
        summary = agent.run()
        summary["edge_cpu_s"] = round(time.process_time() - started, 3)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    started = time.process_time()
    reference = reference_detections(clip, fps)
    summary["baseline_cpu_s"] = round(time.process_time() - started, 3)
    held_from = held_back_start_s(clip.name)
    groups = {"all_sampled_frames": lines}
    if held_from is not None:
        groups[f"held_back_frames (pts >= {held_from:.1f} s)"] = [ln for ln in lines if ln["pts_s"] >= held_from]
    thresholds = {label: 0.0 for label in PRODUCT_LABELS}
    summary["agreement"] = {}
    for name, subset in groups.items():
        if not subset:
            continue
        hybrid = [Detections.from_records(ln["detections"]) for ln in subset]
        refs = [reference[ln["frame_index"]][1] for ln in subset]
        summary["agreement"][name] = {
            "frames": len(subset),
            "escalated_fraction": round(sum(ln["escalated"] for ln in subset) / len(subset), 4),
            "labels": agreement(hybrid, refs, PRODUCT_LABELS, thresholds, TEACHER_THRESHOLD),
        }
    # Motion gating must cost no recall: every carried frame whose presence differs from the teacher's.
    carried = [ln for ln in lines if ln["decided_by"] == "carried"]
    summary["carried_frames"] = len(carried)
    summary["carried_wrong"] = {
        label: sum(
            (len(Detections.from_records(ln["detections"]).with_label(label)) > 0)
            != (len(reference[ln["frame_index"]][1].with_label(label)) > 0)
            for ln in carried)
        for label in PRODUCT_LABELS}
    pictures = []
    for wanted in ("cloud", "edge"):
        line = next((ln for ln in reversed(lines) if ln["decided_by"] == wanted and ln["detections"]), None)
        if line is None:
            continue
        image, ref = reference[line["frame_index"]]
        path = out_dir / f"{clip.stem}-{line['frame_index']:05d}-{wanted}.jpg"
        cv2.imwrite(str(path), draw(image, Detections.from_records(line["detections"]), ref,
                                    f"{clip.name} t={line['pts_s']:.0f}s decided by {wanted}"))
        pictures.append(str(path))
    summary.update(jsonl=str(jsonl), events_db=str(db), pictures=pictures)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(summary: dict) -> str:
    t = summary["total"]
    n = max(1, t["sampled"])
    lines = [
        f"sampled frames        {t['sampled']}",
        f"skipped by motion     {t['motion_skipped']} ({t['motion_skipped'] / n:.0%}, previous decision carried)",
        f"decided at the edge   {t['edge_decided']} (budget-refused or cloud-failed included)",
        f"escalated to cloud    {t['escalated']} ({t['escalated'] / n:.0%}; audit {t['audit']}, "
        f"budget-refused {t['budget_refused']}, cloud failures {t['cloud_failed']})",
        f"bytes sent            {t['bytes_sent']}",
        f"edge CPU              {summary['edge_cpu_s']} s ({summary['edge_cpu_s'] / n * 1000:.1f} ms per sampled "
        f"frame, decode included)",
        f"teacher on every frame {summary['baseline_cpu_s']} s ({summary['baseline_cpu_s'] / n * 1000:.1f} ms per "
        f"sampled frame); edge/baseline = {summary['edge_cpu_s'] / max(1e-9, summary['baseline_cpu_s']):.3f}",
    ]
    lines.append(f"carried by motion gating {summary['carried_frames']} frames; presence wrong on "
                 + ", ".join(f"{k} {v}" for k, v in summary["carried_wrong"].items()))
    for group, agr in summary["agreement"].items():
        lines.append(f"\nagreement with the teacher on every frame, {group}: {agr['frames']} frames, "
                     f"{agr['escalated_fraction']:.0%} escalated")
        for label, m in agr["labels"].items():
            lines.append(f"  {label:<8} presence recall {m['presence_recall']:.3f} precision "
                         f"{m['presence_precision']:.3f}  box F1@0.5 {m['box_f1_iou50']:.3f}  "
                         f"(present in {m['ref_present']} reference frames)")
    lines.append(f"\nper-frame decisions: {summary['jsonl']}\nevent log: {summary['events_db']}")
    lines += [f"picture: {p}" for p in summary["pictures"]]
    return "\n".join(lines)
