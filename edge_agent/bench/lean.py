"""Lean messages, measured on real footage: for every escalation the cascade makes, the teacher's answer
on the message as it was (the whole frame, JPEG quality 80, full size) and on two lean messages at each JPEG
quality, both one image at the teacher's input: `q` only the crops the cascade is unsure of, in place on a
flat grey frame, and `f` the whole frame. Each is merged as the edge merges it (the cloud's inside the crops,
the edge's outside) and compared per label with the teacher on the raw frame (the baseline). Agreement is
counted per escalated frame (person and vehicle presence both right), with 95% Wilson intervals.

It is also the per-camera calibration: on a camera's own footage, the smallest message whose agreement is
no lower than the whole frame's gives the camera's `escalation.crop_by_camera` and `jpeg_quality_by_camera`
entries. The teacher is called here, once per image and quality, never on the gateway's hot path."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from contracts.wire import EscalationRequest, Verdict
from edge_agent.app import Agent
from edge_agent.app.escalate import Escalator
from edge_agent.bench.runner import Baseline, OracleTransport, agent_config, replay, run_baseline
from edge_agent.config import EscalationSettings
from edge_agent.escalation.crops import build_lean_request, build_request
from edge_agent.pipeline.carry import outside
from models.metrics import wilson_interval
from models.runtime import load_detector
from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

QUALITIES = (30, 40, 50, 60, 70, 80, 90)
# q: the doubt only, in place on a grey frame at the teacher's input; f: the whole frame at the teacher's input
KINDS = ("q", "f")
WHOLE_QUALITY = 80  # the message before lean crops: escalation.jpeg_quality's default, the whole frame


class _Recorder(OracleTransport):
    """Answers as the bench's oracle does (so the cascade runs as on the bench) and keeps every request
    with the boxes its escalator chose (the lean message carries one masked image, not the boxes)."""

    def __init__(self, baseline: Baseline):
        super().__init__(baseline)
        self.requests: list[tuple[EscalationRequest, list]] = []
        self.boxes: list = []

    def watch(self, escalator: Escalator) -> None:
        chosen = escalator.crops

        def crops(look, decision=None):
            self.boxes = chosen(look, decision)
            return self.boxes
        escalator.crops = crops  # type: ignore[method-assign]

    def escalate(self, request: EscalationRequest) -> Verdict:
        self.requests.append((request, self.boxes))
        return super().escalate(request)


def _answer(teacher, request: EscalationRequest, edge: Detections, boxes: list,
            frame_wh: tuple[int, int]) -> Detections:
    """The frame's decision from the teacher's answer on these crops, merged as Escalator.collect does."""
    parts = []
    for crop in request.crops:
        image = cv2.imdecode(np.frombuffer(crop.jpeg, np.uint8), cv2.IMREAD_COLOR)
        found = teacher.detect([image])[0]
        parts.append(Detections.from_wire([crop.to_source(d) for d in found.to_wire()]))
    cloud = Detections.concat(parts)
    if [tuple(b) for b in boxes] == [(0, 0, *frame_wh)]:
        return cloud
    return Detections.concat([cloud, outside(edge, boxes)])


def _agrees(decided: Detections, ref: Detections) -> bool:
    return all((len(decided.with_label(lb)) > 0) == (len(ref.with_label(lb)) > 0) for lb in PRODUCT_LABELS)


def measure_clip(clip: Path, fps: float, out_dir: Path, teacher, qualities=QUALITIES) -> dict:
    baseline = run_baseline(clip, fps)
    camera = clip.stem.replace(" ", "_")[:64]
    recorder = _Recorder(baseline)
    config = agent_config(camera, clip, fps, "http://127.0.0.1:9/unused", crop="uncertain")
    agent = Agent(config, transport=recorder, jsonl=out_dir / f"lean-{camera}.jsonl",
                  events_db=out_dir / f"lean-{camera}.events.sqlite", sources=replay(baseline, camera))
    assert agent.escalator is not None
    recorder.watch(agent.escalator)
    agent.run()
    max_px = EscalationSettings().max_crop_px
    rows = {"whole": {"bytes": 0, "agree": 0, "images": 0}}
    rows.update({f"{kind}{q}": {"bytes": 0, "agree": 0, "images": 0} for kind in KINDS for q in qualities})
    for req, boxes in recorder.requests:
        image = baseline.frames[req.frame_index].image
        h, w = image.shape[:2]
        ref = baseline.detections[req.frame_index]
        edge = Detections.from_wire(req.student)
        variants = {"whole": build_request(camera, req.frame_index, req.pts_s, image, [(0, 0, w, h)], req.reason,
                                           edge, quality=WHOLE_QUALITY)}
        for q in qualities:
            variants[f"q{q}"] = build_lean_request(camera, req.frame_index, req.pts_s, image, boxes, req.reason,
                                                   edge, quality=q, max_px=max_px)
            variants[f"f{q}"] = build_lean_request(camera, req.frame_index, req.pts_s, image, [(0, 0, w, h)],
                                                   req.reason, edge, quality=q, max_px=max_px)
        for key, message in variants.items():
            rows[key]["bytes"] += len(message.to_bytes())
            rows[key]["images"] += len(message.crops)
            seen = boxes if key.startswith("q") else [(0, 0, w, h)]
            rows[key]["agree"] += _agrees(_answer(teacher, message, edge, seen, (w, h)), ref)
    n = len(recorder.requests)
    out: dict = {"sampled_frames": len(baseline.detections), "escalations": n}
    for key, r in rows.items():
        lo, hi = wilson_interval(r["agree"], n) if n else (0.0, 1.0)
        out[key] = {"bytes_mean": round(r["bytes"] / max(1, n), 1), "agree": r["agree"],
                    "agreement": round(r["agree"] / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)],
                    "images_mean": round(r["images"] / max(1, n), 3)}
    out["calibrated"] = calibrated(out, qualities)
    return out


def calibrated(result: dict, qualities=QUALITIES) -> dict | None:
    """The smallest message whose agreement is no lower than the whole frame's: {"crop", "quality",
    "bytes_mean"} (None: no escalation to judge by, or none keeps it)."""
    if not result["escalations"]:
        return None
    keep = [(result[f"{k}{q}"]["bytes_mean"], k, q) for k in KINDS for q in qualities
            if result[f"{k}{q}"]["agree"] >= result["whole"]["agree"]]
    if not keep:
        return None
    size, kind, quality = min(keep)
    return {"crop": "uncertain" if kind == "q" else "frame", "quality": quality, "bytes_mean": size}


def run_lean(clips: list[Path], fps: float, out_dir: Path, qualities=QUALITIES) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    per_clip = {clip.name: measure_clip(clip, fps, out_dir, teacher, qualities) for clip in clips}
    n = sum(c["escalations"] for c in per_clip.values())
    total: dict = {"sampled_frames": sum(c["sampled_frames"] for c in per_clip.values()), "escalations": n}
    for key in ["whole", *(f"{kind}{q}" for kind in KINDS for q in qualities)]:
        agree = sum(c[key]["agree"] for c in per_clip.values())
        size = sum(c[key]["bytes_mean"] * c["escalations"] for c in per_clip.values())
        lo, hi = wilson_interval(agree, n) if n else (0.0, 1.0)
        total[key] = {"bytes_mean": round(size / max(1, n), 1), "agree": agree,
                      "agreement": round(agree / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)]}
    total["calibrated"] = calibrated(total, qualities)
    # Every camera at its own calibration, pooled. In-sample: chosen and judged on the same escalations.
    chosen = [(c, c["calibrated"]) for c in per_clip.values() if c["calibrated"]]
    keys = [(c, ("q" if cal["crop"] == "uncertain" else "f") + str(cal["quality"])) for c, cal in chosen]
    agree = sum(c[k]["agree"] for c, k in keys)
    lo, hi = wilson_interval(agree, n) if n else (0.0, 1.0)
    total["per_camera"] = {"agree": agree, "agreement": round(agree / n, 4) if n else None,
                           "ci95": [round(lo, 4), round(hi, 4)],
                           "bytes_mean": round(sum(c[k]["bytes_mean"] * c["escalations"] for c, k in keys)
                                               / max(1, n), 1)}
    result = {"schema": "framesieve.lean/1", "fps": fps, "qualities": list(qualities),
              "whole_quality": WHOLE_QUALITY, "clips": per_clip, "total": total}
    (out_dir / "lean.json").write_text(json.dumps(result, indent=1))
    return result


def format_lean(result: dict) -> str:
    lines = [f"{'clip':34} {'esc':>4} {'message':>8} {'bytes':>8} {'agree':>9} {'ci95':>13}"]
    for name, c in [*result["clips"].items(), ("TOTAL", result["total"])]:
        for key in ["whole", *(f"{kind}{q}" for kind in KINDS for q in result["qualities"])]:
            r = c[key]
            share = "n/a" if r["agreement"] is None else f"{r['agree']}/{c['escalations']}"
            lines.append(f"{name[:34]:34} {c['escalations']:>4} {key:>8} {r['bytes_mean']:>8.0f} {share:>9} "
                         f"[{r['ci95'][0]:.3f},{r['ci95'][1]:.3f}]")
        lines.append(f"{name[:34]:34} calibrated (the smallest keeping the whole frame's agreement): "
                     f"{c['calibrated']}")
    pc = result["total"]["per_camera"]
    lines.append(f"every camera at its own calibration (in-sample): {pc['agree']}/{result['total']['escalations']} "
                 f"[{pc['ci95'][0]:.3f},{pc['ci95'][1]:.3f}], {pc['bytes_mean']:.0f} B per escalation")
    return "\n".join(lines)
