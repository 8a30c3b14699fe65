"""The figures the bench reports for one clip, from the hybrid's decisions and the baseline's."""

from __future__ import annotations

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from edge_agent.bench.runner import Baseline, Hybrid
from models.metrics import agreement
from models.teacher.build import TEACHER_THRESHOLD

# The hybrid's lines are final decisions: compare them as they are (threshold 0 on the hybrid side).
_ALL = {label: 0.0 for label in PRODUCT_LABELS}


def label_agreement(lines: list[dict], baseline: Baseline) -> dict:
    hybrid = [Detections.from_records(ln["detections"]) for ln in lines]
    refs = [baseline.detections[ln["frame_index"]] for ln in lines]
    return agreement(hybrid, refs, PRODUCT_LABELS, _ALL, TEACHER_THRESHOLD)


def escalation_fraction(lines: list[dict]) -> float:
    return sum(ln["escalated"] for ln in lines) / len(lines) if lines else 0.0


def presence_agrees(line: dict, baseline: Baseline, label: str) -> bool:
    """Whether one frame's decision says `label` is there exactly when the baseline does."""
    said = any(d["label"] == label for d in line["detections"])
    return said == (len(baseline.detections[line["frame_index"]].with_label(label)) > 0)


def carried_wrong(lines: list[dict], baseline: Baseline) -> dict[str, int]:
    """Motion gating must cost no recall: carried frames whose presence differs from the baseline's."""
    return {label: sum(not presence_agrees(ln, baseline, label) for ln in lines if ln["decided_by"] == "carried")
            for label in PRODUCT_LABELS}


def clip_summary(hybrid: Hybrid, baseline: Baseline, held_from_s: float | None) -> dict:
    lines = hybrid.lines
    n = max(1, len(lines))
    c = hybrid.counters
    hours = baseline.duration_s / 3600
    edge_cpu = hybrid.cpu_s / n
    base_cpu = baseline.cpu_s / n
    out = {
        "sampled_frames": len(lines),
        "duration_s": round(baseline.duration_s, 2),
        "motion_skipped": c["motion_skipped"],
        "edge_decided": c["edge_decided"],
        "escalated": c["escalated"],
        "escalation_fraction": round(escalation_fraction(lines), 4),
        "audit": c["audit"],
        "budget_refused": c["budget_refused"],
        "cloud_failed": c["cloud_failed"],
        "messages": c["escalated"] + c["cloud_failed"],
        "bytes_sent": c["bytes_sent"],
        "message_bytes_mean": round(c["bytes_sent"] / max(1, c["escalated"] + c["cloud_failed"]), 1),
        "message_units": c["message_units"],
        "message_units_mean": round(c["message_units"] / max(1, c["escalated"] + c["cloud_failed"]), 3),
        "bytes_per_camera_hour": round(c["bytes_sent"] / hours, 1) if hours else 0.0,
        "edge_cpu_s_per_frame": round(edge_cpu, 5),
        "baseline_cpu_s_per_frame": round(base_cpu, 5),
        "cpu_ratio": round(edge_cpu / base_cpu, 4) if base_cpu else None,
        "cameras_per_core": round(1 / (edge_cpu * baseline.fps), 1) if edge_cpu else None,
        "labels": label_agreement(lines, baseline),
        "carried_wrong": carried_wrong(lines, baseline),
        "held_back": None,
    }
    if held_from_s is not None:
        held = [ln for ln in lines if ln["pts_s"] >= held_from_s]
        if held:
            out["held_back"] = {"from_s": round(held_from_s, 2), "frames": len(held),
                                "escalation_fraction": round(escalation_fraction(held), 4),
                                "labels": label_agreement(held, baseline)}
    return out


def pooled(clips: dict[str, dict], raw: dict[str, tuple[Hybrid, Baseline]]) -> dict:
    """Totals over all clips: counts summed, per-frame figures weighted by frames."""
    lines = [ln for h, _ in raw.values() for ln in h.lines]
    frames = max(1, len(lines))
    edge_cpu = sum(h.cpu_s for h, _ in raw.values()) / frames
    base_cpu = sum(b.cpu_s for _, b in raw.values()) / frames
    hours = sum(b.duration_s for _, b in raw.values()) / 3600
    keys = ("motion_skipped", "edge_decided", "escalated", "audit", "budget_refused", "cloud_failed", "messages",
            "bytes_sent", "message_units")
    total = {k: sum(c[k] for c in clips.values()) for k in keys}
    hybrid_all = [Detections.from_records(ln["detections"]) for h, _ in raw.values() for ln in h.lines]
    refs = [b.detections[ln["frame_index"]] for h, b in raw.values() for ln in h.lines]
    total.update(
        sampled_frames=len(lines),
        duration_s=round(hours * 3600, 2),
        escalation_fraction=round(escalation_fraction(lines), 4),
        message_bytes_mean=round(total["bytes_sent"] / max(1, total["messages"]), 1),
        message_units_mean=round(total["message_units"] / max(1, total["messages"]), 3),
        bytes_per_camera_hour=round(total["bytes_sent"] / hours, 1) if hours else 0.0,
        edge_cpu_s_per_frame=round(edge_cpu, 5),
        baseline_cpu_s_per_frame=round(base_cpu, 5),
        cpu_ratio=round(edge_cpu / base_cpu, 4) if base_cpu else None,
        cameras_per_core=round(1 / (edge_cpu * next(iter(raw.values()))[1].fps), 1) if edge_cpu else None,
        labels=agreement(hybrid_all, refs, PRODUCT_LABELS, _ALL, TEACHER_THRESHOLD),
    )
    return total
