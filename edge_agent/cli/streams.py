"""Camera-stream commands: `gateway-capacity` (what a gateway of HD cameras spends, per stream kind and decode
mode) and `detect-streams` (what a smaller detect sub-stream costs in accuracy)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _cmd_capacity(args: argparse.Namespace) -> int:
    from edge_agent.bench.capacity import format_table, run_capacity
    from edge_agent.cli.models import fetch_models

    fetch_models()
    # A line per sampled frame (about 180 a run), and each measured agent's start lines, would bury the table,
    # which holds what they say.
    for name in ("edge_agent.frames", "edge_agent.app.wiring"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        summary = run_capacity(args.kinds, args.seconds, args.fps, tuple(args.modes), args.live_seconds, Path(args.out),
                               args.student, args.escalation_source, args.cameras, args.repeats, args.paced_seconds,
                               args.paced_cameras, args.main_crops)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"edge-agent gateway-capacity: {exc}", file=sys.stderr)
        return 2
    print(format_table(summary))
    print(f"\nwritten: {Path(args.out) / 'streams.json'}")
    return 0


def _cmd_detect_streams(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge_agent.bench.bench import default_clips
    from edge_agent.bench.capacity import resolve_student
    from edge_agent.bench.detect_stream import format_detect_streams, measure_detect_streams
    from edge_agent.cli.models import fetch_models
    from models.runtime import load_detector
    from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

    fetch_models()
    for name in ("edge_agent.frames", "edge_agent.app.wiring"):
        logging.getLogger(name).setLevel(logging.WARNING)
    clips = args.clips or default_clips()
    out = Path(args.out)
    try:
        teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
        student = resolve_student(args.student)
        with tqdm(total=len(clips) * len(args.kinds) * len(args.crops_from), desc="detect streams",
                  unit="run") as bar:
            result = measure_detect_streams(clips, tuple(args.kinds), args.seconds, args.fps, teacher, student, out,
                                            tuple(args.crops_from), progress=bar.update)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"edge-agent detect-streams: {exc}", file=sys.stderr)
        return 2
    (out / "detect-streams.json").write_text(json.dumps(result, indent=1) + "\n")
    print(format_detect_streams(result))
    print(f"\nwritten: {out / 'detect-streams.json'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway-capacity", help="cameras per core for each camera stream kind and decode mode, "
                                                "edge and baseline decoding both measured (test streams made "
                                                "from vtest.avi with ffmpeg, cached)")
    p.add_argument("--kinds", nargs="+", default=list(_capacity_kinds()),
                   help="stream kinds (default: %(default)s; all: " + ", ".join(_all_kinds()) + ")")
    p.add_argument("--modes", nargs="+", default=["all", "reference", "keyframes", "auto"],
                   choices=["all", "reference", "keyframes", "auto"], help="decode modes (default: all four)")
    p.add_argument("--seconds", type=float, default=60.0, help="stream length (default: 60)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--live-seconds", type=float, default=12.0,
                   help="also decode each kind live over loopback this long (0: not; default: 12)")
    p.add_argument("--student", default="default",
                   help="the edge's student: default (what the agent ships: the derived student, quantised to INT8 "
                        "on each stream's own frames and checked as student.precision: auto does; the calibration's "
                        "one-off CPU is reported), fp32 (the derived student as is), int8 (its INT8 variant "
                        "calibrated on the footage scenes, built once into the cache) or a manifest path "
                        "(default: %(default)s)")
    p.add_argument("--cameras", type=int, default=8, help="cameras per kind in one agent, each its own decoder, "
                   "batched by its loop; alternated with 1 camera, both printed (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="alternated 1/N-camera runs, medians (default: 3)")
    p.add_argument("--paced-seconds", type=float, default=12.0, help="also N live-paced cameras at random phases "
                   "this long: the batches live cameras reach (0: not; default: %(default)s)")
    p.add_argument("--paced-cameras", type=int, help="cameras in the paced run (default: --cameras)")
    p.add_argument("--escalation-source", action="store_true",
                   help="also measure escalation crops from the main stream (the 360p sub-stream's camera with "
                        "its 1080p main stream as escalation_source, on vtest and car-detection): the teacher's "
                        "agreement with main-stream vs detect-frame crops, the time difference, the extra CPU")
    p.add_argument("--main-crops", action="store_true",
                   help="in the 1/N-camera gateway measure, each sub-stream camera names its 1080p main stream as "
                        "escalation_source: the main stream's demuxing and a picture decoded per escalation are in "
                        "its CPU (the way to run a detect stream at about the student's input)")
    p.add_argument("--out", default="out/gateway-capacity", help="output directory (default: %(default)s)")
    p.set_defaults(func=_cmd_capacity)

    p = sub.add_parser("detect-streams", help="what a smaller detect sub-stream costs in accuracy: the agent on each "
                                              "sub-stream kind of each scene, judged against the teacher on the "
                                              "camera's 1080p main stream, per scene, pooled and the worst")
    p.add_argument("--clips", nargs="+", help="scenes (names or paths; default: vtest.avi and the shared footage)")
    p.add_argument("--kinds", nargs="+", default=list(_detect_kinds()),
                   help="detect stream kinds, the first the one the others are compared with frame by frame "
                        "(default: %(default)s)")
    p.add_argument("--crops-from", nargs="+", choices=["detect", "main"], default=["detect"],
                   help="where escalation crops are cut: the detect frame, or the main stream as escalation_source "
                        "(default: %(default)s)")
    p.add_argument("--fps", type=float, default=5.0,
                   help="sampling rate (default: %(default)s: more judged frames from the short clips)")
    p.add_argument("--seconds", type=float, default=60.0, help="at most this much of each clip (default: 60)")
    p.add_argument("--student", default="default", help="as gateway-capacity's --student (default: %(default)s)")
    p.add_argument("--out", default="out/detect-streams", help="output directory (default: %(default)s)")
    p.set_defaults(func=_cmd_detect_streams)


def _capacity_kinds() -> tuple[str, ...]:
    from edge_agent.bench.streams import DEFAULT_KINDS

    return DEFAULT_KINDS


def _all_kinds() -> list[str]:
    from edge_agent.bench.streams import KINDS

    return list(KINDS)


def _detect_kinds() -> tuple[str, ...]:
    from edge_agent.bench.streams import DEFAULT_DETECT_KINDS

    return DEFAULT_DETECT_KINDS
