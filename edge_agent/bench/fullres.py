"""`edge-agent gateway-capacity --escalation-source`: escalation crops from the camera's main stream, measured.

A camera whose detect stream is its 360p sub-stream runs the whole agent on it, onboarding (so every frame
with motion escalates), with the 1080p main stream made from the same footage as its `escalation_source`.
Each escalation is kept with the detect frame it came from, and both messages are built from it: the one
the agent sent (cut from the main stream's frame) and the one it would have sent without a main stream
(cut from the detect frame). The teacher answers each (decoded from the JPEG, as the endpoint does), the
answer is merged with the edge's outside the crops as the agent merges it, and both are compared with what
the customer runs today: the teacher on the main stream's frame at that slot. Agreement per escalated frame
(person and vehicle presence both right), with 95% Wilson intervals.

The CPU the main stream adds per camera: demuxing it (every second of stream) and decoding, per escalation,
the picture sent. `keyframe` and `frame` picks are both timed on detect times spread over the GOP, which
gives each one's cost and the time difference it leaves.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import cv2
import numpy as np

from contracts.detections import Detections
from contracts.labels import PRODUCT_LABELS
from contracts.wire import CropVerdict, EscalationRequest, Verdict
from edge_agent.app import Agent
from edge_agent.bench.runner import agent_config
from edge_agent.bench.streams import KINDS, make_stream
from edge_agent.config import AgentConfig
from edge_agent.escalation.base import Transport
from edge_agent.escalation.crops import build_lean_request, build_request
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.carry import outside
from edge_agent.pipeline.decode import DecodeConfig
from edge_agent.pipeline.fullres import EscalationSourceConfig, FullResFrames
from models.metrics import wilson_interval
from models.runtime import Detector

Box = tuple[int, int, int, int]


class TeacherTransport(Transport):
    """The teacher answering each crop's JPEG, as the endpoint does (decoded, detected, mapped to the message's
    source pixels); every request kept."""

    name = "teacher"

    def __init__(self, teacher: Detector):
        self.teacher = teacher
        self.requests: list[EscalationRequest] = []
        self.teacher_cpu_s = 0.0  # the cloud's CPU spent in this process, for a caller to take out of the edge's

    def escalate(self, request: EscalationRequest) -> Verdict:
        self.requests.append(request)
        started = time.thread_time()  # the teacher runs one intra-op thread: the calling one
        crops = tuple(CropVerdict(c.crop_id, tuple(c.to_source(d) for d in self.answer(c.jpeg)))
                      for c in request.crops)
        self.teacher_cpu_s += time.thread_time() - started
        return Verdict(request.message_id, request.camera, request.frame_index, "teacher", crops)

    def answer(self, jpeg: bytes) -> tuple:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("a crop is no JPEG")
        return self.teacher.detect([image])[0].to_wire()


def _record(agent: Agent) -> list[dict]:
    """Keep, for every escalation, the detect frame, its boxes, the edge's detections and the main-stream
    frame it was cut from."""
    assert agent.escalator is not None
    kept: list[dict] = []
    chosen = agent.escalator._full_resolution

    def full_resolution(look, boxes, student, ticket, counters):
        image, sent, mapped = chosen(look, boxes, student, ticket, counters)
        kept.append({"frame": look.frame, "boxes": list(boxes), "edge": student, "full": image, "sent": sent,
                     "mapped": mapped, "scale": ticket.scale})
        return image, sent, mapped
    agent.escalator._full_resolution = full_resolution  # type: ignore[method-assign]
    return kept


def _message(crop: str, image: np.ndarray, boxes: list[Box], edge: Detections, max_px: int,
             quality: int) -> EscalationRequest:
    build = build_request if crop == "regions" else build_lean_request
    return build("cam", 0, 0.0, image, boxes, "uncertain", edge, "", quality, max_px=max_px)


def _decided(transport: TeacherTransport, request: EscalationRequest, scale: tuple[float, float] | None,
             edge: Detections, boxes: list[Box], frame_wh: tuple[int, int]) -> Detections:
    parts = [Detections.from_wire([c.to_source(d) for d in transport.answer(c.jpeg)]) for c in request.crops]
    cloud = Detections.concat(parts)
    if scale is not None:
        cloud = cloud.with_scale(*scale)
    if boxes == [(0, 0, *frame_wh)]:
        return cloud
    return Detections.concat([cloud, outside(edge, boxes)])


def _agrees(decided: Detections, ref: Detections) -> bool:
    return all((len(decided.with_label(lb)) > 0) == (len(ref.with_label(lb)) > 0) for lb in PRODUCT_LABELS)


def pick_costs(main: Path, detect_times: list[float], gop_s: float, seed: int = 0) -> dict:
    """Each pick's CPU per escalation and time difference, for detect frames at `detect_times` moved by a
    random share of a GOP (a sub-stream whose keyframes do not line up with the main stream's)."""
    rng = random.Random(seed)
    times = [t + rng.uniform(0, gop_s) for t in detect_times]
    out = {}
    for pick in ("keyframe", "frame"):
        frames = FullResFrames("cam", EscalationSourceConfig(url=str(main), pick=pick, max_skew_s=gop_s), live=False)
        try:
            for t in times:
                frames.frame_at(t)
            s = frames.stats()
        finally:
            frames.close()
        out[pick] = {"ms_per_escalation": s["pick_ms_per_sent"], "skew_max_s": s["skew_max_s"],
                     "skew_mean_s": s["skew_mean_s"], "pictures_per_escalation":
                         round(frames.pictures_decoded / max(1, frames.sent), 2), "sent": s["sent"]}
    return out


def live_matching(sub: Path, main: Path, fps: float, seconds: float) -> dict:
    """Both streams served live on loopback (two ffmpeg servers started one after the other, so the two
    "cameras" are offset by the servers' start-up, ~0.1 s), the sub-stream sampled as the agent does and the
    main-stream frame matched on arrival time for every sample: how far apart, and what reading it costs."""
    from edge_agent.bench.streams import serve
    from edge_agent.pipeline.stream import StreamSource

    with serve(main) as (main_url, _), serve(sub) as (sub_url, _):
        frames = FullResFrames("live", EscalationSourceConfig(url=main_url), live=True)
        source = StreamSource("live", sub_url, fps, decode=DecodeConfig(), stall_timeout_s=5, open_timeout_s=5)
        try:
            started = time.monotonic()
            while time.monotonic() - started < seconds and (frame := source.read_sampled()) is not None:
                frames.frame_at(frame.wall_time)
            wall = time.monotonic() - started
            s = frames.stats()
        finally:
            source.close()
            frames.close()
    return {"seconds": round(wall, 1), "requests": s["requests"], "sent": s["sent"], "missed": s["missed"],
            "picked_keyframe": s["picked_keyframe"], "picked_frame": s["picked_frame"],
            "skew_max_s": s["skew_max_s"], "skew_mean_s": s["skew_mean_s"],
            "pick_ms_per_escalation": s["pick_ms_per_sent"],
            "reader_ms_per_s": round(1000 * frames.reader_cpu_s / wall, 2)}


def measure_escalation_source(clip: str, seconds: float, fps: float, teacher: Detector, student: Path,
                              out: Path, detect_kind: str = "sub-360p15-gop1", crops: tuple[str, ...] = ("frame",
                              "regions"), live_s: float = 0.0) -> dict:
    main_kind = KINDS[detect_kind].main
    if main_kind is None:
        raise ValueError(f"stream kind {detect_kind} is no sub-stream: it names no main stream")
    sub, main = make_stream(detect_kind, seconds, clip), make_stream(main_kind, seconds, clip)
    with AVFileSource("ref", main, fps, DecodeConfig(mode="all")) as source:
        refs = {round(f.pts_s, 2): teacher.detect([f.image])[0] for f in source}
    result: dict = {"clip": clip, "detect": detect_kind, "main": main_kind, "seconds": seconds, "crops": {}}
    for crop in crops:
        config = agent_config("cam", sub, fps, "http://127.0.0.1:9/unused", crop=crop, onboarding=True)
        data = config.model_dump()
        data["student"] = str(student)
        data["cameras"][0] |= {"decode": {"mode": "auto"}, "escalation_source": {"url": str(main)}}
        transport = TeacherTransport(teacher)
        agent = Agent(AgentConfig.model_validate(data), transport=transport, jsonl=out / f"fullres-{crop}.jsonl",
                      events_db=out / f"fullres-{crop}.sqlite")
        kept = _record(agent)
        started = time.process_time()
        summary = agent.run()
        cpu = time.process_time() - started
        stats = summary["escalation_source"]["cam"]
        esc = agent.config.escalation
        same = {"full": 0, "detect": 0} | {f"{side}_{lb}": 0 for side in ("full", "detect") for lb in PRODUCT_LABELS}
        for k in kept:
            ref = refs.get(round(k["frame"].pts_s, 2))
            if ref is None or k["scale"] is None:
                continue
            wh = (k["frame"].image.shape[1], k["frame"].image.shape[0])
            full = _message(crop, k["full"], k["sent"], k["mapped"], esc.max_crop_px, esc.jpeg_quality)
            detect = _message(crop, k["frame"].image, k["boxes"], k["edge"], esc.max_crop_px, esc.jpeg_quality)
            for side, decided in (("full", _decided(transport, full, k["scale"], k["edge"], k["boxes"], wh)),
                                  ("detect", _decided(transport, detect, None, k["edge"], k["boxes"], wh))):
                same[side] += _agrees(decided, ref)
                for lb in PRODUCT_LABELS:
                    same[f"{side}_{lb}"] += _agrees(decided.with_label(lb), ref.with_label(lb))
        n = sum(1 for k in kept if k["scale"] is not None and round(k["frame"].pts_s, 2) in refs)
        sizes = [(c.size, len(c.jpeg)) for r in transport.requests for c in r.crops]
        result["crops"][crop] = {
            "escalations": len(kept), "judged": n, "sent_full": stats["sent"], "missed": stats["missed"],
            "skew_max_s": stats["skew_max_s"], "pick_ms_per_escalation": stats["pick_ms_per_sent"],
            "reader_ms_per_stream_s": round(1000 * float(stats["reader_cpu_s"]) / seconds, 3),
            "agent_cpu_ms_per_sample": round(1000 * cpu / max(1, summary["total"]["sampled"]), 2),
            "mean_crop_px": round(float(np.mean([w * h for (w, h), _ in sizes])) if sizes else 0.0),
            "max_message_bytes": max((len(r.to_bytes()) for r in transport.requests), default=0),
            "agreement_full": _share(same["full"], n), "agreement_detect": _share(same["detect"], n),
            "per_label": {lb: {"full": _share(same[f"full_{lb}"], n), "detect": _share(same[f"detect_{lb}"], n)}
                          for lb in PRODUCT_LABELS}}
    gop = KINDS[main_kind].gop_s
    starts = [float(t) for t in sorted(refs) if t <= seconds - 2 * gop]  # a keyframe after each one, too
    result["picks"] = pick_costs(main, starts[:: max(1, len(starts) // 20)], gop)
    result["live"] = live_matching(sub, main, fps, live_s) if live_s > 0 else None
    return result


def _share(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"agree": k, "of": n, "share": round(k / n, 3) if n else None, "wilson95": [round(low, 3), round(high, 3)]}


def format_fullres(rows: list[dict]) -> str:
    lines = ["", "escalation crops from the main stream (agreement with the teacher on the main stream's frame, "
                 "per escalated frame, 95% Wilson):",
             "| clip | crop | escalations | main-stream crops | skew max s | agreement, main-stream crop | agreement, "
             "detect-frame crop | mean crop px | largest message B | pick ms/escalation | demux ms/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for crop, c in r["crops"].items():
            f, d = c["agreement_full"], c["agreement_detect"]
            lines.append(f"| {r['clip']} | {crop} | {c['escalations']} | {c['sent_full']} | {c['skew_max_s']} | "
                         f"{f['agree']}/{f['of']} {f['wilson95']} | {d['agree']}/{d['of']} {d['wilson95']} | "
                         f"{c['mean_crop_px']} | {c['max_message_bytes']} | {c['pick_ms_per_escalation']} | "
                         f"{c['reader_ms_per_stream_s']} |")
            per = "; ".join(f"{lb}: main {v['full']['agree']}/{v['full']['of']}, detect {v['detect']['agree']}/"
                            f"{v['detect']['of']}" for lb, v in c["per_label"].items())
            lines.append(f"|  | per label | {per} |||||||||")
    for r in rows:
        p = r["picks"]
        lines.append(f"{r['clip']}: detect times spread over the GOP: keyframe pick "
                     f"{p['keyframe']['ms_per_escalation']} ms/escalation, time difference max "
                     f"{p['keyframe']['skew_max_s']} s; frame pick "
                     f"{p['frame']['ms_per_escalation']} ms ({p['frame']['pictures_per_escalation']} pictures), "
                     f"max {p['frame']['skew_max_s']} s")
        if r.get("live"):
            lv = r["live"]
            lines.append(f"{r['clip']} live over loopback, {lv['seconds']} s: {lv['sent']} of {lv['requests']} samples "
                         f"matched ({lv['picked_keyframe']} keyframes, {lv['picked_frame']} frames), arrival-time "
                         f"difference mean {lv['skew_mean_s']} s, max {lv['skew_max_s']} s; reading the main stream "
                         f"{lv['reader_ms_per_s']} ms CPU a second, {lv['pick_ms_per_escalation']} ms a match")
    return "\n".join(lines)
