"""`edge-agent demo`: the whole product on the embedded default, no AWS account.

Starts the local SageMaker-compatible inference server (the teacher) as its own process, runs the
agent over real footage at 1 fps with the http transport pointed at it, then compares every sampled
frame's final decision with the teacher run on that same frame (what the customer runs today).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from contracts.detections import Detections
from edge_agent.bench.bench import held_back_start_s
from edge_agent.bench.metrics import clip_summary
from edge_agent.bench.runner import agent_config, local_inference_server, run_baseline, run_hybrid
from models.metrics import agreement_line
from models.student.derived import ensure_derived_student


def draw(image: np.ndarray, hybrid: Detections, reference: Detections, title: str) -> np.ndarray:
    out = image.copy()
    for box in reference.xyxy.astype(int):
        cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), (0, 0, 255), 3)
    for box, label, score in zip(hybrid.xyxy.astype(int), hybrid.labels, hybrid.scores, strict=True):
        cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), (0, 220, 0), 1)
        cv2.putText(out, f"{label} {score:.2f}", (box[0], max(10, box[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 220, 0), 1)
    cv2.rectangle(out, (0, 0), (out.shape[1], 50), (0, 0, 0), -1)  # a banner so the text reads on any scene
    cv2.putText(out, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    cv2.putText(out, "green: FrameSieve   red: teacher on every frame", (8, 42), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (255, 255, 255), 1)
    return out


def run_demo(clip: Path, out_dir: Path, fps: float = 1.0) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    with local_inference_server() as url:
        hybrid = run_hybrid(agent_config(clip.stem, clip, fps, url), out_dir, clip.stem)
    baseline = run_baseline(clip, fps)
    # The agent's default student: whether a frame was ever trained on is read from its own manifest.
    summary = clip_summary(hybrid, baseline, held_back_start_s(clip.name, ensure_derived_student()))
    pictures: list[str] = []
    for wanted in ("cloud", "audit", "edge"):
        line = next((ln for ln in reversed(hybrid.lines) if ln["decided_by"] == wanted and ln["detections"]), None)
        if line is None or len(pictures) == 2:
            continue
        frame = baseline.frames[line["frame_index"]]
        path = out_dir / f"{clip.stem}-{line['frame_index']:05d}-{wanted}.png"
        cv2.imwrite(str(path), draw(frame.image, Detections.from_records(line["detections"]),
                                    baseline.detections[line["frame_index"]],
                                    f"{clip.name} t={line['pts_s']:.0f}s decided by {wanted}"))
        pictures.append(str(path))
    summary.update(clip=clip.name, jsonl=str(out_dir / f"{clip.stem}.jsonl"),
                   events_db=str(out_dir / f"{clip.stem}.events.sqlite"), pictures=pictures)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(s: dict) -> str:
    n = max(1, s["sampled_frames"])
    lines = [
        f"{s['clip']} at 1 fps through the whole edge pipeline, escalations answered by the local teacher server",
        f"sampled frames         {s['sampled_frames']}",
        f"skipped by motion      {s['motion_skipped']} ({s['motion_skipped'] / n:.0%}, previous decision carried;"
        " presence wrong on " + ", ".join(f"{label} {count}" for label, count in s["carried_wrong"].items()) + ")",
        f"decided at the edge    {s['edge_decided']}",
        f"escalated to the cloud {s['escalated']} ({s['escalation_fraction']:.0%}; audit {s['audit']}, "
        f"budget-refused {s['budget_refused']}, cloud failures {s['cloud_failed']})",
        f"bytes to the cloud     {s['bytes_per_camera_hour'] / 1e6:.2f} MB per camera-hour",
        f"edge CPU               {1000 * s['edge_cpu_s_per_frame']:.1f} ms per sampled frame, decode included",
        f"teacher on every frame {1000 * s['baseline_cpu_s_per_frame']:.1f} ms per sampled frame "
        f"(edge/baseline {s['cpu_ratio']:.3f}); one core serves {s['cameras_per_core']} cameras at 1 fps",
        "",
        "agreement with the teacher on every sampled frame:",
    ]
    groups = [("all frames", s["sampled_frames"], s["escalation_fraction"], s["labels"])]
    h = s.get("held_back")
    if h and h["frames"] == s["sampled_frames"]:
        groups[0] = ("all frames (the student never trained on this clip)", *groups[0][1:])
    elif h:
        groups.append((f"held-back frames (t >= {h['from_s']} s, never trained on)", h["frames"],
                       h["escalation_fraction"], h["labels"]))
    for name, frames, esc, labels in groups:
        lines.append(f"  {name}: {frames} frames, {esc:.0%} escalated")
        for label, m in labels.items():
            lines.append(f"    {agreement_line(label, m)}")
    lines.append(f"\nper-frame decisions: {s['jsonl']}\nevent log:           {s['events_db']}")
    lines += [f"picture:             {p}" for p in s["pictures"]]
    return "\n".join(lines)
