"""`edge-agent gateway-capacity`: how many cameras of each stream kind one gateway core serves, per decode mode.

Both sides in one run, decode included on both: the edge decodes with the mode's levers, then runs the
whole pipeline (motion gate, regions, student, cascade, crops for escalations, answered by the teacher's own
detections); the baseline decodes every frame, as OpenCV does, and runs the teacher on every sampled frame.
CPU is process time. Decode is measured per mode; the pipeline once per kind, on the frames of `all`
(a mode changes which frames are decoded, not what a sampled frame costs downstream).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_agent.bench.gateway import NearestAnswers, format_gateway, measure_gateway, scaled_oracle
from edge_agent.bench.metrics import clip_summary
from edge_agent.bench.runner import Baseline, OracleTransport, ReplaySource, agent_config, run_hybrid
from edge_agent.bench.self_int8 import shipped_student
from edge_agent.bench.streams import DEFAULT_KINDS as DEFAULT_KINDS  # re-exported
from edge_agent.bench.streams import KINDS, bitrate, make_stream, serve
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig, detect_hwaccel
from edge_agent.pipeline.sources import SampledFrame
from edge_agent.pipeline.stream import StreamSource
from models.runtime import Detector, load_detector
from models.student.derived import ensure_derived_student
from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

SCHEMA = "framesieve.gateway-capacity/1"
MODES = ("all", "reference", "keyframes", "auto")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _decode(path: Path, mode: str, fps: float) -> tuple[list[SampledFrame], float, dict]:
    started = time.process_time()
    with AVFileSource("edge", path, fps, DecodeConfig(mode=mode)) as source:
        frames = list(source)
        stats = source.stats()
    return frames, time.process_time() - started, stats


def _presence(dets) -> tuple[bool, bool]:
    return bool((dets.labels == "person").any()), bool((dets.labels == "vehicle").any())


def _agreement(frames: list[SampledFrame], ref: list[SampledFrame], ref_dets: list, teacher: Detector) -> float:
    """Share of sample slots where the teacher sees the same labels on this mode's frame as on the frame of
    decoding everything (a frame identical to the reference's is not run again)."""
    same = 0
    for frame, other, dets in zip(frames, ref, ref_dets, strict=False):
        mine = dets if np.array_equal(frame.image, other.image) else teacher.detect([frame.image])[0]
        same += _presence(mine) == _presence(dets)
    return same / max(1, min(len(frames), len(ref)))


def memory_probe(path: str, fps: float, cameras: int) -> float:
    """RSS added by each open camera (its decoder, buffers and sampled frames), auto mode; in a fresh process
    (`python -m edge_agent.bench.capacity`), where freed memory of earlier runs cannot hide it."""
    with AVFileSource("warm", path, fps, DecodeConfig()) as warm:
        warm.read_sampled()  # libraries and first allocations are not a camera's
    before = _rss_mb()
    sources = [AVFileSource(f"m{i}", path, fps, DecodeConfig()) for i in range(cameras)]
    held = [(s.read_sampled(), s.read_sampled())[1] for s in sources]  # one frame each, as a batch holds
    per = (_rss_mb() - before) / cameras
    for s in sources:
        s.close()
    del held
    return per


def _memory_per_camera(path: Path, fps: float, cameras: int = 4) -> float | None:
    done = subprocess.run([sys.executable, "-m", "edge_agent.bench.capacity", str(path), str(fps), str(cameras)],
                          capture_output=True, text=True, timeout=120)
    return float(done.stdout.strip()) if done.returncode == 0 else None


def _live(path: Path, fps: float, seconds: float) -> dict:
    """The stream served on loopback at its own pace, decoded as a live camera (auto): CPU per sample."""
    with serve(path) as (url, _proc):
        source = StreamSource("live", url, fps, decode=DecodeConfig(), stall_timeout_s=5, open_timeout_s=5)
        try:
            started, wall = time.process_time(), time.monotonic()
            samples = 0
            while time.monotonic() - wall < seconds and source.read_sampled() is not None:
                samples += 1
            cpu = time.process_time() - started
            stats = source.stats()
        finally:
            source.close()
    return {"seconds": round(time.monotonic() - wall, 1), "samples": samples,
            "decode_ms_per_sample": round(1000 * cpu / max(1, samples), 2), "mode": stats.get("decode_mode"),
            "reconnects": stats["reconnects"]}


def measure_kind(kind: str, seconds: float, fps: float, modes: tuple[str, ...], live_s: float, out: Path,
                 teacher: Detector, student: Path | None, cameras: int = 1, repeats: int = 1,
                 paced_s: float = 0.0, paced_cameras: int | None = None, main_crops: bool = False) -> dict:
    """`student` None: what the agent ships by default, after its calibration on this stream's frames.
    `cameras`: the gateway side (gateway.py) also runs 1 and that many cameras through the agent's loop.
    `main_crops`: there, a sub-stream's cameras cut escalation crops from their main stream (escalation_source)."""
    path = make_stream(kind, seconds)
    ref, ref_cpu, ref_stats = _decode(path, "all", fps)
    if not ref:
        raise RuntimeError(f"{path}: no frame decoded")
    calibration = None
    if student is None:
        student, calibration = shipped_student(ref, out / "int8-self" / kind)
    started = time.process_time()
    ref_dets = [teacher.detect([f.image])[0] for f in ref]
    teacher_ms = 1000 * (time.process_time() - started) / len(ref)
    baseline = Baseline({f.frame_index: f for f in ref}, {f.frame_index: d for f, d in zip(ref, ref_dets, strict=True)},
                        0.0, fps)
    config = agent_config(kind, path, fps, "http://127.0.0.1:9/unused").model_copy(update={"student": str(student)})
    hybrid = run_hybrid(config, out, kind, transport=OracleTransport(baseline), sources=[ReplaySource(kind, ref, fps)])
    pipeline_ms = 1000 * hybrid.cpu_s / len(ref)
    judged = clip_summary(hybrid, baseline, None)  # the hybrid's answers against the teacher on every sample
    presence = {lb: {"recall": v["presence_recall"], "precision": v["presence_precision"]}
                for lb, v in judged["labels"].items()}
    baseline_ms = 1000 * ref_cpu / len(ref) + teacher_ms  # every frame decoded, the teacher on each sample
    rows = []
    for mode in modes:
        frames, cpu, stats = (ref, ref_cpu, ref_stats) if mode == "all" else _decode(path, mode, fps)
        decode_ms = 1000 * cpu / max(1, len(frames))
        edge_ms = decode_ms + pipeline_ms
        rows.append({"mode": mode, "decoded_as": stats["decode_mode"], "samples": len(frames),
                     "decode_ms_per_sample": round(decode_ms, 2), "edge_ms_per_sample": round(edge_ms, 2),
                     "cameras_per_core": round(1000 / (edge_ms * fps), 1),
                     "decode_only_cameras_per_core": round(1000 / (decode_ms * fps), 1),
                     "edge_baseline_cpu": round(edge_ms / baseline_ms, 3),
                     "timestamp_error_max_s": stats["timestamp_error_max_s"],
                     "teacher_presence_agreement": round(_agreement(frames, ref, ref_dets, teacher), 3)})
    best = min(rows, key=lambda r: r["edge_ms_per_sample"])
    oracle = Baseline(baseline.frames, NearestAnswers(baseline.detections), 0.0, fps)
    k = KINDS[kind]
    main = None
    if main_crops and k.main:
        main, m = make_stream(k.main, seconds), KINDS[k.main]
        oracle = scaled_oracle(oracle, m.width / k.width, m.height / k.height)
    gateway = measure_gateway(kind, path, fps, best["mode"], student, oracle, round(baseline_ms, 2), cameras, repeats,
                              paced_s, out, lambda n: _memory_per_camera(path, fps, n), paced_cameras, main)
    return {"kind": kind, "codec": k.codec, "size": f"{k.width}x{k.height}", "stream_fps": k.fps, "gop_s": k.gop_s,
            "bframes": k.bframes, "kbps_cap": k.kbps, **bitrate(path), "seconds": seconds, "file": str(path),
            "teacher_ms_per_sample": round(teacher_ms, 2),
            "pipeline_ms_per_sample": round(pipeline_ms, 2), "baseline_ms_per_sample": round(baseline_ms, 2),
            "escalated": hybrid.counters["escalated"], "escalation_fraction": judged["escalation_fraction"],
            "student_crops_per_sample": round(hybrid.extra.get("student_crops", 0) / len(ref), 2),
            # the replayed file's samples batch with each other (read ahead): not what a lone live camera gets
            "pipeline_student_batch": round(hybrid.extra.get("student_crops", 0) / max(1, hybrid.student_calls), 2),
            "presence": presence, "memory_mb_per_camera": _memory_per_camera(path, fps),
            "student": str(student), "student_calibration": calibration,
            "modes": rows, "best": best, "gateway": gateway, "live": _live(path, fps, live_s) if live_s > 0 else None}


def resolve_student(name: str) -> Path | None:
    """`default`: None, what the agent ships (its student once calibrated on each stream, `shipped_student`);
    `fp32`: the derived student; `int8`: its static INT8 variant, built once into the cache (quantised on the
    calibration scenes, as `edge-agent models derive --int8` does); else a manifest path."""
    if name == "default":
        return None
    if name == "fp32":
        return ensure_derived_student()
    if name != "int8":
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"--student {name}: no such manifest; give default, fp32, int8 or a manifest.json path")
        return path
    from edge_agent.bench.bench import default_clips
    from models.manifest import intact
    from models.paths import cache_dir
    from models.student.data import resolve_clip
    from models.student.derived import build_derived
    from models.student.scenes import load_scene

    manifest = cache_dir() / "models" / "student-derived-int8" / "manifest-int8.json"
    if intact(manifest, "the derived INT8 student"):
        return manifest
    teacher = load_detector(ensure_teacher(), threads=2)
    scenes = [load_scene(p, 1.0, teacher) for p in (resolve_clip(n) for n in default_clips()) if p is not None]
    if not scenes:
        raise ValueError("--student int8 quantises on the calibration scenes, and none was found: run "
                         "`edge-agent models fetch`")
    build_derived(manifest.parent, scenes, int8=True)
    return manifest


def run_capacity(kinds: list[str], seconds: float = 60.0, fps: float = 1.0, modes: tuple[str, ...] = MODES,
                 live_s: float = 12.0, out: Path = Path("out/gateway-capacity"), student: str = "default",
                 escalation_source: bool = False, cameras: int = 8, repeats: int = 3, paced_s: float = 12.0,
                 paced_cameras: int | None = None, main_crops: bool = False) -> dict:
    """`cameras`: the gateway measure's camera count (1: the one-camera measure alone), alternated with one
    camera `repeats` times; `paced_s`: also that long with live-paced cameras at random phases (0: not);
    `main_crops`: the gateway measure's sub-stream cameras cut escalation crops from their main stream."""
    if cameras < 1 or repeats < 1:
        raise ValueError(f"--cameras {cameras} --repeats {repeats}: both must be at least 1 (--cameras 1 measures "
                         "one camera, as a gateway with a single camera runs)")
    if paced_cameras is not None and paced_cameras < 1:
        raise ValueError(f"--paced-cameras {paced_cameras}: give at least 1 (or leave it out: --cameras)")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown stream kinds {unknown}; known: {', '.join(KINDS)}")
    out.mkdir(parents=True, exist_ok=True)
    load_start = [round(x, 2) for x in os.getloadavg()]
    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    student_path = resolve_student(student)
    # A default run takes minutes (per kind: the modes, the agent's calibration, 1 and N cameras alternated)
    results = {k: measure_kind(k, seconds, fps, modes, live_s, out, teacher, student_path, cameras, repeats, paced_s,
                               paced_cameras, main_crops)
               for k in tqdm(kinds, desc="gateway capacity", unit="stream kind")}
    for r in results.values():  # a sub-stream against the baseline that decodes the camera's main stream
        main = results.get(KINDS[r["kind"]].main or "")
        if main:
            base = main["baseline_ms_per_sample"]
            r["vs_main"] = {"kind": main["kind"], "baseline_ms_per_sample": base,
                            "edge_baseline_cpu": round(r["best"]["edge_ms_per_sample"] / base, 3)}
            for key in ("one", "many"):  # the gateway measure's 1 and N cameras, against the main stream
                f = r["gateway"][key]
                r["vs_main"][key] = {"cameras": f["cameras"], "cameras_per_core": f["cameras_per_core"],
                                     "edge_baseline_cpu": round(f["edge_ms_per_camera_sample"] / base, 3)}
    summary = {"schema": SCHEMA, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "fps": fps,
               "cameras": cameras, "load_average_start": load_start,
               "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
               "hwaccel": detect_hwaccel()[1],
               "student": {"asked": student, "manifest": str(student_path) if student_path else
                           "each stream's, after the agent's own calibration"},
               "kinds": results}
    if escalation_source:  # crops from the main stream: the sub-stream's camera on two scenes
        from edge_agent.bench.fullres import measure_escalation_source

        summary["escalation_source"] = [
            measure_escalation_source(clip, min(seconds, length), fps, teacher,
                                      student_path or ensure_derived_student(), out,
                                      live_s=live_s if clip == "vtest.avi" else 0.0)
            for clip, length in (("vtest.avi", 60.0), ("car-detection.mp4", 30.0))]
    (out / "streams.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def format_table(summary: dict) -> str:
    lines = [f"gateway capacity at {summary['fps']:g} fps (load average {summary.get('load_average_start')} at the "
             f"start, {summary['load_average']} at the end, "
             f"{summary['cpus']} CPUs; hardware decoding: {summary['hwaccel']})", "",
             "| stream | mode (decoded as) | decode ms/sample | edge ms/sample | baseline ms/sample | edge/baseline "
             "| cameras/core | ts error max s | teacher presence same | MB/camera |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["kinds"].values():
        for m in r["modes"]:
            star = " **best**" if m is r["best"] or m == r["best"] else ""
            lines.append(f"| {r['kind']} | {m['mode']} ({m['decoded_as']}){star} | {m['decode_ms_per_sample']} | "
                         f"{m['edge_ms_per_sample']} | {r['baseline_ms_per_sample']} | {m['edge_baseline_cpu']} | "
                         f"{m['cameras_per_core']} | {m['timestamp_error_max_s']} | "
                         f"{m['teacher_presence_agreement']:.3f} | {r['memory_mb_per_camera']} |")
    lines.append("")
    for r in summary["kinds"].values():
        if r.get("vs_main"):
            v = r["vs_main"]
            lines.append(f"{r['kind']} as the detect stream of {v['kind']}: edge {r['best']['edge_ms_per_sample']} ms "
                         f"against the main stream's baseline {v['baseline_ms_per_sample']} ms: edge/baseline "
                         f"{v['edge_baseline_cpu']}, {r['best']['cameras_per_core']} cameras per core")
    if gateway := format_gateway(summary):
        lines += [gateway, ""]
    lines.append("streams: " + ", ".join(
        f"{r['kind']} {r['kbps']:g} kbit/s, keyframe {r['keyframe_kb']:g} KB every {1 / r['keyframes_per_s']:.2g} s"
        for r in summary["kinds"].values() if r.get("keyframes_per_s")))
    lines.append(f"student: {summary.get('student', {}).get('manifest', 'the derived fp32')}")
    for r in summary["kinds"].values():
        if c := r.get("student_calibration"):  # the default: the agent's own INT8 calibration on this stream
            check = c.get("check") or {}
            lines.append(f"{r['kind']}: the agent's default student after calibration: {c['precision']} "
                         f"({c.get('reason') or 'passed the gate'}; one-off {c.get('calibration_cpu_s')} CPU s, "
                         f"{c.get('calibration_wall_s')} s wall; agreement {check.get('agreement')}, lost "
                         f"{check.get('lost')} of {check.get('fp32_kept')}, score difference "
                         f"{check.get('score_diff_mean')})")
    lines.append("pipeline (motion, student, cascade) ms/sample: " + ", ".join(
        f"{r['kind']} {r['pipeline_ms_per_sample']}" for r in summary["kinds"].values()))
    for r in summary["kinds"].values():
        if "presence" in r:
            figures = ", ".join(f"{lb} recall {v['recall']} precision {v['precision']}"
                                for lb, v in r["presence"].items())
            lines.append(f"{r['kind']}: escalated {r['escalation_fraction']}, student crops per sample "
                         f"{r['student_crops_per_sample']} (per call in the replayed pipeline: "
                         f"{r.get('pipeline_student_batch')}), presence against the teacher on every sample: {figures}")
    for r in summary["kinds"].values():
        if r["live"]:
            lv = r["live"]
            lines.append(f"live over loopback, {r['kind']}: {lv['samples']} samples in {lv['seconds']} s, decode "
                         f"{lv['decode_ms_per_sample']} ms/sample ({lv['mode']})")
    if summary.get("escalation_source"):
        from edge_agent.bench.fullres import format_fullres

        lines.append(format_fullres(summary["escalation_source"]))
    return "\n".join(lines)


def cameras_per_core(streams_json: Path, kind: str) -> float:
    """The measured cameras per core for a stream kind (the cost model's gateway input): the N-camera gateway
    figure (every camera's regions batched into one student call, as the agent runs a gateway), else the
    one-camera best mode's (a streams.json written before the gateway measure)."""
    return gateway_figure(streams_json, kind)[0]


def gateway_figure(streams_json: Path, kind: str) -> tuple[float, str]:
    """cameras_per_core's figure and a line saying which measure it is."""
    data = json.loads(Path(streams_json).read_text())
    if kind not in data.get("kinds", {}):
        raise ValueError(f"{streams_json} has no stream kind {kind!r}; measured: {', '.join(data.get('kinds', {}))}"
                         f" (run `edge-agent gateway-capacity --kinds {kind}`)")
    row = data["kinds"][kind]
    many = (row.get("gateway") or {}).get("many")
    if many:
        return float(many["cameras_per_core"]), (
            f"{many['cameras_per_core']:g} cameras per core for {kind}, measured with {many['cameras']} camera(s) in "
            f"one agent (student batch {many['mean_student_batch']:g}) by gateway-capacity ({streams_json})")
    best = row["best"]
    return float(best["cameras_per_core"]), (
        f"{best['cameras_per_core']:g} cameras per core for {kind}, measured with one camera ({best.get('mode', '?')} "
        f"decoding) by gateway-capacity ({streams_json}); rerun it to measure many cameras batched")


if __name__ == "__main__":  # the memory probe's fresh process
    print(round(memory_probe(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])), 2))
