"""`edge-agent bench`: every clip both ways in one run, then summary.json, report.md and plots."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from tqdm import tqdm

from edge_agent.bench.adapt import run_adapt
from edge_agent.bench.metrics import clip_summary, pooled
from edge_agent.bench.new_camera import figures, run_new_camera
from edge_agent.bench.records import RecordTally
from edge_agent.bench.records import pooled as pooled_records
from edge_agent.bench.runner import agent_config, local_inference_server, run_baseline, run_hybrid
from edge_agent.bench.sweep import evidence_refusal, pick_operating_point, pool_points, sweep
from edge_agent.escalation.http import UrlTransport
from models.manifest import load_manifest
from models.paths import shared_footage_dir
from models.student.data import resolve_clip
from models.student.defaults import DEFAULTS
from models.student.derived import ensure_derived_student
from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

log = logging.getLogger(__name__)
SCHEMA = "framesieve.bench/1"
VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".gif", ".webm"}


def default_clips() -> list[str]:
    """vtest.avi and every clip in the shared footage folder."""
    clips = ["vtest.avi"]
    folder = shared_footage_dir()
    if folder.is_dir():
        clips += sorted(p.name for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    return clips


def held_back_start_s(clip_name: str, manifest_path: Path) -> float:
    """Media time from which the student never trained on this clip (from its manifest): 0.0 when it
    never trained on the clip at all (the teacher-derived student trains on none)."""
    for entry in load_manifest(manifest_path).training.get("data", []):
        if entry["clip"] == clip_name:
            return 0.0 if entry["held_out"] else (entry["frames"] - entry["held_back"]) / entry["fps"]
    return 0.0


def _model_card(path: Path) -> dict:
    m = load_manifest(path)
    return {"name": m.name, "version": m.version, "sha256": m.sha256, "thresholds": m.thresholds}


def run_bench(clips: list[str], fps: float, out_dir: Path, cascade: dict | None = None,
              with_sweep: bool = True, target_recall: float = DEFAULTS.target_recall,
              adapt_fraction: float | None = None,
              student: Path | None = None, adapt_epochs: int = DEFAULTS.epochs,
              new_camera: bool = False, new_camera_overrides: dict | None = None) -> dict:
    student = student or ensure_derived_student()  # the agent's default student
    out_dir.mkdir(parents=True, exist_ok=True)
    results, raw, skipped, timelines = {}, {}, {}, {}
    with local_inference_server() as url:
        for name in tqdm(clips, desc="bench", unit="clip"):
            path = resolve_clip(name)
            if path is None:
                skipped[name] = f"not found (fetch cache, or {shared_footage_dir()})"
                log.warning("skipping %s: %s", name, skipped[name])
                continue
            camera = path.stem
            baseline = run_baseline(path, fps, keep_frames=with_sweep or bool(adapt_fraction) or new_camera)
            if not baseline.detections:
                skipped[name] = "no frame could be read"
                continue
            config = agent_config(camera, path, fps, url, cascade).model_copy(update={"student": str(student)})
            # counted on the way: which answers the router would keep as training records and as rows
            tally = RecordTally(UrlTransport(url, config.escalation.timeout_s, config.escalation.retries))
            hybrid = run_hybrid(config, out_dir, camera, transport=tally)
            held_from = held_back_start_s(path.name, student)
            summary = clip_summary(hybrid, baseline, held_from)
            summary["records"] = tally.figures()
            if with_sweep:
                summary["sweep"] = sweep(baseline, path, camera, held_from_s=held_from, student=student)
            if adapt_fraction:
                summary["adaptation"] = run_adapt(path, fps, adapt_fraction, url, out_dir / "adapt",
                                                  generic=student, baseline=baseline, epochs=adapt_epochs)
            if new_camera:  # the production path from a cold start; the generic cascade above is its reference
                result = run_new_camera(path, fps, url, out_dir / "new-camera" / camera, student,
                                        new_camera_overrides, baseline, with_generic=False)
                result["generic"] = figures(hybrid.lines, baseline, fps)
                summary["new_camera"] = result
            results[path.name] = summary
            raw[path.name] = (hybrid, baseline)
            timelines[path.name] = [
                {"pts_s": ln["pts_s"], "escalated": ln["escalated"], "decided_by": ln["decided_by"],
                 "hybrid_people": sum(d["label"] == "person" for d in ln["detections"]),
                 "baseline_people": int((baseline.detections[ln["frame_index"]].labels == "person").sum()),
                 "hybrid_vehicles": sum(d["label"] == "vehicle" for d in ln["detections"]),
                 "baseline_vehicles": int((baseline.detections[ln["frame_index"]].labels == "vehicle").sum())}
                for ln in hybrid.lines]
            baseline.frames.clear()  # the sweep is done: free the decoded frames
    if not results:
        raise RuntimeError(f"no clip could be benched: {skipped}")
    summary = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "fps": fps,
        "teacher": {**_model_card(ensure_teacher()), "reference_threshold": TEACHER_THRESHOLD},
        "student": _model_card(student),
        "cascade": agent_config("c", Path("x"), fps, "http://x", cascade).cameras[0].cascade.model_dump(),
        "clips": results,
        "skipped_clips": skipped,
        "total": {**pooled(results, raw), **pooled_records([r["records"] for r in results.values()])},
        "warmup": _warmup(results),
    }
    sweeps = [p for r in results.values() for p in r.get("sweep", [])]
    if sweeps:
        summary["operating_point"] = _pooled_operating_point(results, target_recall)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "timeline.json").write_text(json.dumps(timelines) + "\n")
    return summary


def _warmup(results: dict) -> dict | None:
    """The adaptation phase's (or onboarding's) extra escalations, for the cost model to amortise (None
    without one). With --new-camera: onboarding is the warm-up, and the steady state is what the camera
    ran after it (its onboarding again when nothing was promoted)."""
    cams = [r["new_camera"] for r in results.values() if r.get("new_camera")]
    if cams:
        onboarding = [c["phases"]["onboarding"] for c in cams]
        frames = sum(o["frames"] for o in onboarding)
        steady = [c["phases"]["specialized"] if c["phases"]["specialized"]["frames"] else c["phases"]["onboarding"]
                  for c in cams]
        return {"escalation_fraction": round(sum(o["escalated"] for o in onboarding) / max(1, frames), 4),
                "hours": round(frames / cams[0]["fps"] / len(cams) / 3600, 4),
                "steady_escalation_fraction": round(sum(s["escalated"] for s in steady)
                                                    / max(1, sum(s["frames"] for s in steady)), 4)}
    runs = [r["adaptation"] for r in results.values() if r.get("adaptation")]
    if not runs:
        return None
    frames = sum(a["adapt"]["frames"] for a in runs)
    escalated = sum(a["adapt"]["escalated"] for a in runs)
    hours = sum(a["adapt"]["frames"] / a["fps"] for a in runs) / len(runs) / 3600
    deployed = [a["eval"][a["deployed"]] for a in runs]  # what each camera runs after its warm-up
    steady = sum(d["escalation_fraction"] * d["frames"] for d in deployed) / max(1, sum(d["frames"] for d in deployed))
    return {"escalation_fraction": round(escalated / max(1, frames), 4), "hours": round(hours, 4),
            "steady_escalation_fraction": round(steady, 4)}


def _pooled_operating_point(results: dict, target_recall: float) -> dict | None:
    """Sweep points pooled over clips (by their counts), then the cheapest meeting the target; refused,
    with the reason, when the pooled frames are too few to tell."""
    by_key: dict[tuple, list[tuple[int, dict]]] = {}
    for r in results.values():
        for p in r.get("sweep", []):
            by_key.setdefault((p["accept"], p["reject"]), []).append((r["sampled_frames"], p))
    pooled_points = [pool_points(entries) for entries in by_key.values()]
    refused = evidence_refusal(pooled_points)
    best = None if refused else pick_operating_point(pooled_points, target_recall)
    return {"target_person_recall": target_recall, "point": best, "refused": refused, "points": pooled_points}
