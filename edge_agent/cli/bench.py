"""The measuring commands: `bench` (hybrid vs the teacher on every frame), `cost`, `calibrate`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.student.defaults import DEFAULTS


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge_agent.bench.bench import default_clips, run_bench
    from edge_agent.bench.report import plot_specialization, plot_timeline, plot_tradeoff, write_report
    from edge_agent.cli.models import fetch_models

    fetch_models()
    out = Path(args.out)
    cascade = {"level": args.level} if args.level else None
    student = Path(args.student) if args.student else None  # None: the agent's default
    summary = run_bench(args.clips or default_clips(), args.fps, out, cascade, with_sweep=not args.no_sweep,
                        target_recall=args.target_recall, adapt_fraction=args.adapt_fraction, student=student,
                        adapt_epochs=args.adapt_epochs, new_camera=args.new_camera,
                        new_camera_overrides=_new_camera_overrides(args.new_camera_config))
    timelines = json.loads((out / "timeline.json").read_text())
    plot_timeline(timelines, out / "timeline.png")
    plot_tradeoff(summary, out / "tradeoff.png")
    plot_specialization(summary, out / "specialization.png")
    cost_text = _bench_cost(out / "summary.json", out / "cost.png", args.teacher_cpu_s)
    report = write_report(summary, out, cost_text)
    print(report.read_text())
    return 0


def _new_camera_overrides(path: str | None) -> dict | None:
    """`--new-camera-config FILE`: an agent config's `specialization` mapping (and `onboarding`), validated."""
    if path is None:
        return None
    import yaml

    from edge_agent.config import OnboardingSettings, SpecializationSettings

    raw = yaml.safe_load(Path(path).read_text()) or {}
    spec = SpecializationSettings.model_validate(raw.get("specialization", {}))
    camera = {"onboarding": OnboardingSettings.model_validate(raw["onboarding"]).model_dump()} \
        if "onboarding" in raw else {}
    return {"specialization": spec.model_dump(exclude_unset=True), "camera": camera}


def _bench_cost(summary_path: Path, png: Path, teacher_cpu_s: float | None) -> str:
    from edge_agent.bench.cost import report_text

    return report_text(summary_path, png, teacher_cpu_s=teacher_cpu_s)


def _cmd_cost(args: argparse.Namespace) -> int:
    from edge_agent.bench.cost import run_cost_cli
    from edge_agent.bench.cost_model import Inputs

    try:
        inputs = Inputs(args.bytes_per_escalation, args.images_per_call, args.images_per_invocation,
                        args.images_per_verdict, args.training_share, args.rows_per_escalation, args.backend,
                        args.latency_p95_s, args.batch_window_ms)
        per_core = _stream_cameras_per_core(args.gateway_streams, args.stream_kind)
    except ValueError as exc:
        print(f"edge-agent cost: {exc}", file=sys.stderr)
        return 2
    return run_cost_cli(Path(args.bench), args.cameras, Path(args.pricing) if args.pricing else None,
                        Path(args.pricing_overrides) if args.pricing_overrides else None, args.teacher_cpu_s,
                        Path(args.plot) if args.plot else None, inputs, args.json, per_core,
                        Path(args.training_from) if args.training_from else None)


def _stream_cameras_per_core(streams: str | None, kind: str | None) -> float | None:
    if kind is None:
        return None
    from edge_agent.bench.capacity import gateway_figure

    try:
        per_core, note = gateway_figure(Path(streams or "out/gateway-capacity/streams.json"), kind)
        print(f"edge-agent cost: gateway line at {note}", file=sys.stderr)  # stderr: --json stays JSON
        return per_core
    except OSError as exc:
        raise ValueError(f"cannot read {exc.filename}: {exc.strerror}; run `edge-agent gateway-capacity` first") \
            from exc


def _clip(name: str) -> Path | None:
    """The clip a name resolves to, or None after saying on stderr why there is none (the command exits 2)."""
    from models.student.data import resolve_clip

    clip = resolve_clip(name)
    if clip is None:
        print(f"error: clip {name} not found (a path, or a name in the fetch cache or shared footage)",
              file=sys.stderr)
    return clip


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from edge_agent.bench.calibrate import calibrate

    clip = _clip(args.clip)
    if clip is None:
        return 2
    labels = args.label or ["person"]  # append-actions cannot default to a list: the default is here
    result = calibrate(clip, Path(args.config), args.target_recall, args.fps, args.level, tuple(labels),
                       Path(args.out) if args.out else None, tuple(args.min_evidence))
    p = result["point"]
    print(f"accept {p['accept']}, reject {p['reject']}: escalates {p['escalation_fraction']:.1%} of sampled frames")
    for lbl in labels:
        print(f"  {lbl}: presence recall {p[f'{lbl}_presence_recall']:.3f} ({p.get(f'{lbl}_hits')}/"
              f"{p.get(f'{lbl}_positives')} frames), precision {p[f'{lbl}_presence_precision'] or 0:.3f} "
              f"(the best swept point reached {result['best_precision'][lbl]:.3f})")
    print(f"written to {result['written']}")
    return 0


def _cmd_lean(args: argparse.Namespace) -> int:
    from edge_agent.bench.bench import default_clips
    from edge_agent.bench.lean import format_lean, run_lean

    clips = []
    for name in args.clips or default_clips():
        clip = _clip(name)
        if clip is None:
            return 2
        clips.append(clip)
    print(format_lean(run_lean(clips, args.fps, Path(args.out))))
    return 0


def _cmd_bench_batching(args: argparse.Namespace) -> int:
    from edge_agent.bench.batching import format_batching, run_batching_bench

    clip = _clip(args.clip)
    if clip is None:
        return 2
    host, _, port = args.mqtt.rpartition(":")
    if not port.isdigit():
        print(f"error: --mqtt {args.mqtt!r}: expected HOST:PORT (the local stack prints it)", file=sys.stderr)
        return 2
    windows = tuple(int(w) for w in args.windows.split(","))
    if args.poisson:
        return _poisson(args, host or "127.0.0.1", int(port), clip, windows)
    rows = run_batching_bench(host or "127.0.0.1", int(port), args.thing, args.site, args.cameras.split(","), clip,
                              args.fps, args.seconds, windows)
    print(format_batching(rows))
    if args.into:
        from edge_agent.bench.batching import write_into_summary

        try:
            written = write_into_summary(rows, Path(args.into))
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: --into {args.into}: {exc}", file=sys.stderr)
            return 2
        print(f"written into {args.into}: images per call, invocation and verdict from {written}")
    return 0


def _poisson(args: argparse.Namespace, host: str, port: int, clip: Path, windows: tuple[int, ...]) -> int:
    from edge_agent.bench.occupancy_check import format_poisson, run_poisson_bench
    from edge_agent.escalation.base import TransportError

    cams, _, share = args.poisson.partition(":")
    try:
        gateway_cameras, fraction = int(cams), float(share)
        rows = run_poisson_bench(host, port, args.thing, args.site, args.cameras.split(","), clip, gateway_cameras,
                                 fraction, args.fps, args.seconds, windows)
    except ValueError as exc:
        print(f"error: --poisson {args.poisson!r}: {exc} (expected CAMERAS:SHARE, e.g. 42:0.1)", file=sys.stderr)
        return 2
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_poisson(rows))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-batching", help="escalation latency edge to verdict, p50/p95, with and without "
                                              "per-gateway batching, against a running local stack (--mqtt)")
    p.add_argument("--mqtt", required=True, help="the local stack's broker, HOST:PORT")
    p.add_argument("--thing", required=True, help="the gateway's thing name, registered with --gateway")
    p.add_argument("--site", required=True, help="its site")
    p.add_argument("--cameras", required=True, help="its cameras, comma-separated")
    p.add_argument("--clip", default="vtest.avi", help="looped on every camera, live pace (default: vtest.avi)")
    p.add_argument("--fps", type=float, default=1.0, help="per camera (default: 1)")
    p.add_argument("--seconds", type=float, default=30.0, help="per setting (default: 30)")
    p.add_argument("--windows", default="0,250", help="batch_window_ms settings, comma-separated (default: 0,250)")
    p.add_argument("--poisson", metavar="CAMERAS:SHARE",
                   help="check the cost model's batch occupancy instead: a gateway of CAMERAS cameras at --fps "
                        "escalating SHARE of their frames, as Poisson arrivals of real vtest escalations through the "
                        "real transport and batcher; prints predicted vs measured escalations per message per window")
    p.add_argument("--into", help="a bench summary.json: write the largest window's images per endpoint call, "
                                  "router invocation and verdict message into its total (for edge-agent cost)")
    p.set_defaults(func=_cmd_bench_batching)

    p = sub.add_parser("lean", help="bytes per escalation and the teacher's agreement, whole frame vs lean crops at "
                                    "each JPEG quality, on real clips (the per-camera JPEG calibration)")
    p.add_argument("clips", nargs="*", help="clip files or names (default: vtest.avi and the shared footage)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--out", default="out/lean", help="output directory, lean.json (default: out/lean)")
    p.set_defaults(func=_cmd_lean)

    p = sub.add_parser("bench", help="the hybrid against the teacher on every frame, on real clips: "
                                     "summary.json, report.md, per-clip JSONL and plots")
    p.add_argument("clips", nargs="*", help="clip files or names (default: vtest.avi and every clip in the "
                                            "shared footage folder)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--out", default="out/bench", help="output directory (default: out/bench)")
    p.add_argument("--level", choices=["presence", "boxes"], help="cascade level (default: the config default)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep (faster)")
    p.add_argument("--target-recall", type=float, default=DEFAULTS.target_recall,
                   help=f"person presence recall the chosen operating point must reach (default: "
                        f"{DEFAULTS.target_recall})")
    p.add_argument("--teacher-cpu-s", type=float,
                   help="also price the baseline with your own model's CPU seconds per frame")
    p.add_argument("--student", help="student manifest (default: the agent's, the teacher-derived student)")
    p.add_argument("--adapt-fraction", type=float,
                   help="per-camera specialization: adapt on this first fraction of each clip, evaluate on the rest")
    p.add_argument("--adapt-epochs", type=int, default=DEFAULTS.epochs,
                   help=f"fine-tuning epochs of that specialization (default: {DEFAULTS.epochs})")
    p.add_argument("--new-camera", action="store_true",
                   help="the production path from a cold start: onboarding, the loop training synchronously when "
                        "due, promotion on evidence, guard, rollback; <clip>.jsonl with a phase per frame")
    p.add_argument("--new-camera-config", metavar="FILE",
                   help="YAML with `specialization:` (and `onboarding:`) settings for --new-camera (default: the "
                        "agent's defaults); lowering the evidence gate makes a demonstration, not a measurement")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("cost", help="$ per camera-month and per fleet, baseline vs hybrid, from a bench summary")
    p.add_argument("--bench", required=True, help="DIR/summary.json written by `edge-agent bench`")
    p.add_argument("--cameras", type=int, default=1000, help="fleet size (default: 1000)")
    p.add_argument("--pricing", help="price file (default: config/pricing.yaml)")
    p.add_argument("--pricing-overrides", help="YAML merged over the price file (your own prices)")
    p.add_argument("--teacher-cpu-s", type=float,
                   help="your accurate model's CPU seconds per frame, instead of the measured YOLOv3-tiny's")
    p.add_argument("--plot", help="also write the cost plot (PNG) here")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema framesieve.cost/1)")
    p.add_argument("--latency-p95-s", type=float,
                   help="latency objective for the teacher backend, p95 seconds (default: the price file's, 2)")
    p.add_argument("--backend", help="price this backend option instead of the cheapest meeting the objective")
    p.add_argument("--bytes-per-escalation", type=float,
                   help="request bytes per escalation (default: the bench's message bytes; lean messages change it)")
    p.add_argument("--batch-window-ms", type=float,
                   help="the gateways' escalation.batch_window_ms the batch occupancy is derived with (default: the "
                        "agent's own default; 0: no batching, one message per escalation)")
    p.add_argument("--images-per-call", type=float,
                   help="images per teacher call (default: derived from the fleet: each gateway's escalations per "
                        "batch window, capped by what one message holds)")
    p.add_argument("--images-per-invocation", type=float,
                   help="images per router Lambda invocation and IoT message (default: derived from the fleet)")
    p.add_argument("--images-per-verdict", type=float,
                   help="images answered per verdict message (default: derived from the fleet)")
    p.add_argument("--training-share", type=float,
                   help="share of escalations kept as training records in S3 (default: the bench's, else the price "
                        "file's training_sample_rate)")
    p.add_argument("--rows-per-escalation", type=float,
                   help="result rows written per escalation (default: the bench's, else the price file's 1)")
    p.add_argument("--training-from", metavar="SUMMARY",
                   help="take the training share, its counts and tiers and the rows per escalation from this bench "
                        "summary instead of --bench's (the bytes per kept record stay --bench's), e.g. one over every "
                        "clip: `edge-agent bench --no-sweep --fps 5 --out out/bench-all-5fps`")
    p.add_argument("--stream-kind", help="price gateways at the cameras per core measured for this stream kind "
                                         "(edge-agent gateway-capacity) instead of the bench's clips")
    p.add_argument("--gateway-streams", help="streams.json of gateway-capacity (default: "
                                             "out/gateway-capacity/streams.json)")
    p.set_defaults(func=_cmd_cost)

    p = sub.add_parser("calibrate", help="pick cascade thresholds on a calibration clip for a target recall "
                                         "and write them into an agent config")
    p.add_argument("clip", help="calibration clip (path or name)")
    p.add_argument("--config", required=True, help="agent config to update (a .bak copy is kept)")
    p.add_argument("--out", help="write the calibrated config here instead of over --config")
    p.add_argument("--target-recall", type=float, default=DEFAULTS.target_recall,
                   help=f"presence recall to reach (default: {DEFAULTS.target_recall})")
    p.add_argument("--label", action="append", choices=["person", "vehicle"],
                   help="labels that must reach the target (default: person; repeatable)")
    p.add_argument("--level", choices=["presence", "boxes"], default="presence", help="cascade level")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--min-evidence", type=int, nargs=2, metavar=("WITH", "WITHOUT"), default=[30, 10],
                   help="frames the reference must have with and without each label before a threshold is chosen "
                        "(default: 30 10); lowering it makes a demonstration, not a calibration")
    p.set_defaults(func=_cmd_calibrate)
