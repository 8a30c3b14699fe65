"""`edge-agent detect-streams`: what the detect stream's resolution costs in accuracy, scene by scene.

The student never sees more than its input (320x192): a 640x360 sub-stream is halved before it looks, so the
gateway decodes four times the pixels it uses, and decoding costs about what a keyframe weighs (gateway-capacity).
A sub-stream at about the student's input is the cheap answer, if the decisions stay the same. This measures
that: each scene is made into the camera's 1080p25 main stream and its sub-streams (`bench/streams.py`, from the
same footage), the whole agent runs on each sub-stream with escalations answered by the real teacher from the
JPEG crops the agent sends (`fullres.TeacherTransport`), cut from the detect frame or, with the main stream as
`escalation_source`, from the main stream, and every sampled frame's final decision is judged against what the
customer runs today: the teacher on the main stream's frame at that slot. Presence recall and precision per
label, per scene, pooled and the worst scene, with the frame counts and 95% Wilson intervals; and, paired, the
frames on which each sub-stream's decision differs from the first one's.

The student is the same on every stream of a scene (default: the derived student as the agent ships it,
quantised to INT8 on that stream's own frames and gated), so what differs is the pixels it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from edge_agent.bench.fullres import TeacherTransport
from edge_agent.bench.runner import agent_config, run_hybrid
from edge_agent.bench.self_int8 import shipped_student
from edge_agent.bench.streams import DEFAULT_DETECT_KINDS, KINDS, make_stream
from edge_agent.config import AgentConfig
from edge_agent.config.escalation import EscalationSettings
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig
from models.metrics import agreement, presence_text, wilson_interval
from models.runtime import Detector
from models.student.data import resolve_clip
from models.teacher.build import TEACHER_THRESHOLD

_FINAL = {label: 0.0 for label in PRODUCT_LABELS}  # the agent's lines are final decisions: taken as they are


@dataclass
class Judged:
    """One scene on one detect stream: each judged slot's decision (in main-stream pixels) and reference."""
    clip: str
    kind: str
    crops_from: str
    slots: list[int] = field(default_factory=list)
    preds: list[Detections] = field(default_factory=list)
    refs: list[Detections] = field(default_factory=list)
    escalated: int = 0
    cpu_ms_per_sample: float = 0.0

    def labels(self) -> dict:
        return agreement(self.preds, self.refs, PRODUCT_LABELS, _FINAL, TEACHER_THRESHOLD)

    def row(self) -> dict:
        n = len(self.slots)
        low, high = wilson_interval(self.escalated, n)
        return {"clip": self.clip, "kind": self.kind, "crops_from": self.crops_from, "frames": n,
                "escalated": self.escalated, "escalated_ci95": [round(low, 3), round(high, 3)],
                "agent_cpu_ms_per_sample": round(self.cpu_ms_per_sample, 2), "labels": self.labels()}


def clip_seconds(path: Path) -> float:
    """The clip's length from its container (GIFs included), for `make_stream`'s `-t`."""
    with av.open(str(path)) as container:
        if container.duration:
            return container.duration / av.time_base
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0


def _present(dets: Detections, label: str) -> bool:
    return len(dets.with_label(label).with_min_score(_FINAL[label])) > 0


def _slot(pts_s: float, fps: float) -> int:
    return round(pts_s * fps)


def teacher_reference(main: Path, fps: float, teacher: Detector) -> tuple[dict[int, Detections], tuple[int, int]]:
    """The teacher on the main stream's frame at each sampling slot (every frame decoded, as the customer does)."""
    refs: dict[int, Detections] = {}
    size = (0, 0)
    with AVFileSource("reference", main, fps, DecodeConfig(mode="all")) as source:
        for frame in source:
            size = (frame.image.shape[1], frame.image.shape[0])
            refs[_slot(frame.pts_s, fps)] = teacher.detect([frame.image])[0]
    return refs, size


def run_detect_stream(clip: str, kind: str, sub: Path, main: Path, main_size: tuple[int, int],
                      refs: dict[int, Detections], fps: float, student: Path, teacher: Detector, out: Path,
                      crops_from: str) -> Judged:
    """The agent on one sub-stream (the product's default crops, onboarding off: the camera already runs its
    student), escalations answered by the teacher; each sampled frame's decision scaled to the main stream."""
    data = agent_config(kind, sub, fps, "http://127.0.0.1:9/unused",
                        crop=EscalationSettings.model_fields["crop"].default).model_dump()
    data["student"] = str(student)
    if crops_from == "main":
        data["cameras"][0]["escalation_source"] = {"url": str(main)}
    transport = TeacherTransport(teacher)
    hybrid = run_hybrid(AgentConfig.model_validate(data), out, f"{Path(clip).stem}-{kind}-{crops_from}", transport)
    judged = Judged(clip, kind, crops_from)
    k = KINDS[kind]
    sx, sy = main_size[0] / k.width, main_size[1] / k.height
    for line in hybrid.lines:
        slot = _slot(line["pts_s"], fps)
        if slot not in refs:
            continue
        judged.slots.append(slot)
        judged.preds.append(Detections.from_records(line["detections"]).with_scale(sx, sy))
        judged.refs.append(refs[slot])
        judged.escalated += bool(line["escalated"])
    # the teacher answering escalations runs in this process: its CPU is the cloud's, not the edge's
    judged.cpu_ms_per_sample = 1000 * max(0.0, hybrid.cpu_s - transport.teacher_cpu_s) / max(1, len(hybrid.lines))
    return judged


def _pool(parts: list[Judged]) -> Judged:
    pooled = Judged("pooled", parts[0].kind, parts[0].crops_from)
    for j in parts:
        pooled.slots += [hash((j.clip, s)) for s in j.slots]
        pooled.preds += j.preds
        pooled.refs += j.refs
        pooled.escalated += j.escalated
    frames = sum(len(j.slots) for j in parts)
    pooled.cpu_ms_per_sample = sum(j.cpu_ms_per_sample * len(j.slots) for j in parts) / max(1, frames)
    return pooled


def paired_differences(a: Judged, b: Judged) -> dict[str, dict]:
    """Per label, on the slots both judged: frames where b says present and a not, and the reverse, and how many
    of each side agree with the reference (so a difference is seen as a gain or a loss, not only a change)."""
    index = {s: i for i, s in enumerate(b.slots)}
    out = {}
    for label in PRODUCT_LABELS:
        only_a = only_b = a_right = b_right = both = 0
        for i, s in enumerate(a.slots):
            j = index.get(s)
            if j is None:
                continue
            both += 1
            pa, pb, ref = _present(a.preds[i], label), _present(b.preds[j], label), _present(a.refs[i], label)
            only_a += pa and not pb
            only_b += pb and not pa
            a_right += pa == ref
            b_right += pb == ref
        out[label] = {"frames": both, "only_first": only_a, "only_second": only_b, "first_right": a_right,
                      "second_right": b_right}
    return out


def measure_detect_streams(clips: list[str], kinds: tuple[str, ...], seconds: float, fps: float,
                           teacher: Detector, student: Path | None, out: Path,
                           crops_from: tuple[str, ...] = ("detect",), progress=None) -> dict:
    """Every clip on every detect kind (and crop source). `student` None: the agent's default (INT8 made on each
    stream's own frames, gated), else that manifest on every stream."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown stream kind {kind!r}; known: {', '.join(KINDS)}")
        if KINDS[kind].main is None:
            raise ValueError(f"stream kind {kind} is no sub-stream (it names no main stream); give sub-stream kinds "
                             "such as " + ", ".join(DEFAULT_DETECT_KINDS))
    mains = sorted({str(KINDS[kind].main) for kind in kinds})
    if len(mains) > 1:
        raise ValueError(f"the kinds {list(kinds)} are sub-streams of different main streams ({mains}); give "
                         "sub-streams of one camera")
    main_kind = mains[0]
    out.mkdir(parents=True, exist_ok=True)
    judged: list[Judged] = []
    skipped: list[str] = []
    for clip in clips:
        path = resolve_clip(clip)
        if path is None:
            skipped.append(f"{clip}: not found")
            continue
        length = round(min(seconds, clip_seconds(path)), 1)
        if length * fps < 2:
            skipped.append(f"{clip}: {length} s, under two samples at {fps:g} fps")
            continue
        main = make_stream(main_kind, length, clip)
        refs, main_size = teacher_reference(main, fps, teacher)
        for kind in kinds:
            sub = make_stream(kind, length, clip)
            manifest = student
            if manifest is None:
                with AVFileSource("calibration", sub, fps, DecodeConfig(mode="all")) as source:
                    frames = list(source)
                manifest, _ = shipped_student(frames, out / "int8-self" / f"{Path(clip).stem}-{kind}")
            for side in crops_from:
                judged.append(run_detect_stream(clip, kind, sub, main, main_size, refs, fps, manifest, teacher,
                                                out, side))
                if progress is not None:
                    progress()
    return summarize(judged, kinds, crops_from, fps, seconds, skipped)


def summarize(judged: list[Judged], kinds: tuple[str, ...], crops_from: tuple[str, ...], fps: float,
              seconds: float, skipped: list[str]) -> dict:
    groups: dict[str, dict] = {}
    for kind in kinds:
        for side in crops_from:
            parts = [j for j in judged if j.kind == kind and j.crops_from == side]
            if not parts:
                continue
            pooled = _pool(parts)
            rows = [j.row() for j in parts]
            worst = {}
            for label in PRODUCT_LABELS:
                with_pos = [r for r in rows if r["labels"][label]["ref_present"]]
                if with_pos:
                    w = min(with_pos, key=lambda r: (r["labels"][label]["presence_recall"],
                                                     -r["labels"][label]["ref_present"]))
                    worst[label] = {"clip": w["clip"], **w["labels"][label]}
            groups[f"{kind}/{side}"] = {"kind": kind, "crops_from": side, "scenes": rows, "pooled": pooled.row(),
                                        "worst": worst}
    first = {side: [j for j in judged if j.kind == kinds[0] and j.crops_from == side] for side in crops_from}
    paired = {}
    for kind in kinds[1:]:
        for side in crops_from:
            a = _pool(first[side]) if first[side] else None
            b_parts = [j for j in judged if j.kind == kind and j.crops_from == side]
            if a is None or not b_parts:
                continue
            # the pooled slots are (clip, slot) keys, so the pairing stays within a scene
            paired[f"{kind}/{side}"] = {"against": f"{kinds[0]}/{side}",
                                        "labels": paired_differences(a, _pool(b_parts))}
    return {"fps": fps, "seconds": seconds, "kinds": list(kinds), "crops_from": list(crops_from),
            "skipped": skipped, "groups": groups, "paired": paired}


def _fig(summary: dict, key: str) -> str:
    return presence_text(summary, key).replace(", 95% CI", ";")


def _recall(summary: dict) -> str:
    """A scene's recall even where it has no negatives: there, a miss is still a miss (only a 1.000 says little)."""
    lo, hi = summary["presence_recall_ci95"]
    note = f", {summary['presence_note']}" if summary.get("presence_note") else ""
    return (f"{summary['presence_recall']:.3f} ({summary['both_present']}/{summary['ref_present']}; "
            f"{lo:.3f}-{hi:.3f}{note})")


def format_detect_streams(result: dict) -> str:
    lines = [f"detect streams against the teacher on the main stream's frame at each slot, {result['fps']:g} fps, "
             "per scene (presence recall: k/n and 95% Wilson; precision: k/n):", "",
             "| detect stream | crops from | scene | frames | escalated | person recall | person precision | "
             "vehicle recall | vehicle precision | edge CPU ms/sample |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for g in result["groups"].values():
        for r in [*g["scenes"], g["pooled"]]:
            scene = f"**{r['clip']}**" if r["clip"] == "pooled" else r["clip"]
            p, v = r["labels"]["person"], r["labels"]["vehicle"]
            lines.append(f"| {g['kind']} | {g['crops_from']} | {scene} | {r['frames']} | {r['escalated']} | "
                         f"{_fig(p, 'presence_recall')} | {_fig(p, 'presence_precision')} | "
                         f"{_fig(v, 'presence_recall')} | {_fig(v, 'presence_precision')} | "
                         f"{r['agent_cpu_ms_per_sample']} |")
    lines.append("")
    for key, g in result["groups"].items():
        worst = "; ".join(f"{lb} {w['clip']} {_recall(w)}" for lb, w in g["worst"].items())
        lines.append(f"{key}: worst scene by recall: {worst or 'n/a (no scene has positives)'}")
    for key, p in result["paired"].items():
        per = "; ".join(f"{lb}: {d['only_second']} frames present only here, {d['only_first']} only there, of "
                        f"{d['frames']}; right {d['second_right']} vs {d['first_right']}"
                        for lb, d in p["labels"].items())
        lines.append(f"{key} against {p['against']}, frame by frame: {per}")
    for s in result["skipped"]:
        lines.append(f"skipped {s}")
    return "\n".join(lines)
