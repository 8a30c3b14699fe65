"""`edge-agent`: the gateway's command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge_agent.bench import loso_cli
from edge_agent.config import ConfigError
from edge_agent.pipeline.sources import SourceError
from models.exceptions import ModelError
from models.paths import ZOO_DIR

STUDENT_DIR = ZOO_DIR / "student"


def _cmd_fetch(args: argparse.Namespace) -> int:
    from models.fetch import fetch_vtest
    from models.teacher.build import ensure_teacher

    print(f"teacher manifest: {ensure_teacher(force=args.force)}")
    print(f"vtest.avi:        {fetch_vtest(force=args.force)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from models.student.config import load_train_config
    from models.student.train import train_student

    overrides = {"epochs": args.epochs}
    if args.smoke:
        # Proves the pipeline end to end in about a minute; its model is not for use.
        overrides.update(epochs=args.epochs or 1, max_frames_per_clip=16, batch_size=8)
    cfg = load_train_config(args.config, **overrides)
    result = train_student(cfg, Path(args.out), init_from=getattr(args, "init_from", None),
                           version=args.version)
    _print_training(result, Path(args.out))
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from models.student.config import load_train_config
    from models.student.train import train_student

    cfg = load_train_config(args.config, epochs=args.epochs, clips=args.clip, held_out_clips=[],
                            learning_rate=args.learning_rate)
    result = train_student(cfg, Path(args.out), init_from=Path(args.init_from), version=args.version)
    _print_training(result, Path(args.out))
    return 0


def _cmd_specialize(args: argparse.Namespace) -> int:
    from models.student.specialize import specialize

    decision = specialize(args.camera, Path(args.data), Path(args.init_from), Path(args.out), epochs=args.epochs,
                          accept=args.accept, reject=args.reject, target_recall=args.target_recall,
                          min_records=args.min_records)
    verdict = "PROMOTE the challenger" if decision["promote"] else "keep the champion"
    print(f"camera {args.camera}: {decision['records']} records, {decision['frames']} held-back frames compared")
    print(f"{verdict}: {decision['why']}")
    print(f"challenger: {Path(args.out) / 'manifest.json'}; decision: {Path(args.out) / 'decision.json'}")
    if args.install and decision["promote"]:
        from edge_agent.config import load_config
        from models.student.specialize import install

        limit = install(Path(args.install), args.camera, Path(args.out) / "manifest.json", decision)
        load_config(args.install)  # the rewritten config must still be valid
        print(f"installed for camera {args.camera} in {args.install} (rolled back above {limit:.0%} escalated); "
              "restart the agent or push the config")
    return 0


def _cmd_training_impact(args: argparse.Namespace) -> int:
    from edge_agent.bench.training_impact import format_impact, measure
    from models.fetch import fetch_vtest

    clip = Path(args.clip) if args.clip else fetch_vtest()
    result = measure(clip, Path(args.data), args.camera, Path(args.init_from), frames=args.frames,
                     epochs=args.epochs, threads=args.threads)
    print(format_impact(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from edge_agent.config import load_config
    from edge_agent.specialization.status import camera_status, format_status

    status = camera_status(load_config(args.config))
    print(json.dumps(status, indent=2) if args.json else format_status(status, args.last))
    return 0


def _cmd_recalibrate(args: argparse.Namespace) -> int:
    from models.student.train import recalibrate

    out = Path(args.student)
    _print_training(recalibrate(out), out)
    return 0


def _print_training(result: dict, out: Path) -> None:
    for precision, variant in result["variants"].items():
        held = variant["metrics"].get("trained_scenes_held_back", {}).get("labels", {})
        person = held.get("person", {})
        print(f"{precision}: person recall {person.get('presence_recall')} precision "
              f"{person.get('presence_precision')} box F1 {person.get('box_f1_iou50')} on held-back frames; "
              f"{variant['metrics']['latency_ms_1_thread']} ms/frame")
    print(f"shipped variant: {result['shipped']}  ->  {out / 'manifest.json'}")


def _cmd_models_bench(args: argparse.Namespace) -> int:
    from models.bench import format_bench, run_models_bench
    from models.fetch import fetch_vtest

    clip = Path(args.clip) if args.clip else fetch_vtest()
    result = run_models_bench(Path(args.student), clip, frames=args.frames)
    print(format_bench(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from models.manifest import load_manifest

    m = load_manifest(args.manifest)
    print(f"ok: {m.name} {m.version} ({m.kind}, {m.precision}) sha256 {m.sha256} matches {m.model_path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo import format_summary, run_demo
    from models.fetch import fetch_vtest
    from models.teacher.build import ensure_teacher

    ensure_teacher()  # fetched and converted once, silently reused after
    clip = Path(args.clip) if args.clip else fetch_vtest()
    summary = run_demo(clip, Path(args.out), fps=args.fps)
    print(format_summary(summary))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge_agent.bench.bench import default_clips, run_bench
    from edge_agent.bench.report import plot_specialization, plot_timeline, plot_tradeoff, write_report

    _cmd_fetch(argparse.Namespace(force=False))
    out = Path(args.out)
    cascade = {"level": args.level} if args.level else None
    student = Path(args.student) if args.student else STUDENT_DIR / "manifest.json"
    summary = run_bench(args.clips or default_clips(), args.fps, out, cascade, with_sweep=not args.no_sweep,
                        target_recall=args.target_recall, adapt_fraction=args.adapt_fraction, student=student,
                        adapt_epochs=args.adapt_epochs)
    timelines = json.loads((out / "timeline.json").read_text())
    plot_timeline(timelines, out / "timeline.png")
    plot_tradeoff(summary, out / "tradeoff.png")
    plot_specialization(summary, out / "specialization.png")
    cost_text = _bench_cost(out / "summary.json", out / "cost.png", args.teacher_cpu_s)
    report = write_report(summary, out, cost_text)
    print(report.read_text())
    return 0


def _bench_cost(summary_path: Path, png: Path, teacher_cpu_s: float | None) -> str:
    from edge_agent.bench.cost import report_text

    return report_text(summary_path, png, teacher_cpu_s=teacher_cpu_s)


def _cmd_cost(args: argparse.Namespace) -> int:
    from edge_agent.bench.cost import run_cost_cli

    return run_cost_cli(Path(args.bench), args.cameras, Path(args.pricing) if args.pricing else None,
                        Path(args.pricing_overrides) if args.pricing_overrides else None, args.teacher_cpu_s,
                        Path(args.plot) if args.plot else None)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from edge_agent.bench.calibrate import calibrate
    from models.student.data import resolve_clip

    clip = resolve_clip(args.clip)
    if clip is None:
        print(f"error: clip {args.clip} not found (a path, or a name in the fetch cache or shared footage)",
              file=sys.stderr)
        return 2
    result = calibrate(clip, Path(args.config), args.target_recall, args.fps, args.level, tuple(args.label),
                       Path(args.out) if args.out else None)
    p = result["point"]
    print(f"accept {p['accept']}, reject {p['reject']}: escalates {p['escalation_fraction']:.1%} of sampled frames, "
          + ", ".join(f"{lbl} presence recall {p[f'{lbl}_presence_recall']:.3f}" for lbl in args.label)
          + f"\nwritten to {result['written']}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from edge_agent.config import load_config

    config = load_config(args.config)
    print(f"ok: {args.config}: site {config.site!r}, {len(config.cameras)} camera(s): "
          + ", ".join(f"{c.id} ({c.source}, {c.fps} fps, {c.cascade.level})" for c in config.cameras))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import signal

    from edge_agent.app import Agent
    from edge_agent.config import load_config

    config = load_config(args.config)
    agent = Agent(config, jsonl=args.detections_out)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop())
    logging.getLogger(__name__).info("agent started: %d camera(s)", len(config.cameras))
    summary = agent.run()
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="FrameSieve gateway agent: decide most camera frames locally with a distilled "
                    "student, escalate only the uncertain ones to the accurate cloud model.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-format", choices=["text", "json"],
                        help="log lines as text or JSON objects (default: json for `run`, text otherwise)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the agent on the cameras of a config file until stopped")
    p.add_argument("--config", required=True, help="agent config YAML (see config/agent.example.yaml)")
    p.add_argument("--detections-out", help="also write every sampled frame's decision to this JSONL file")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("validate-config", help="check an agent config file and print what it sets up")
    p.add_argument("config")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("bench", help="the hybrid against the teacher on every frame, on real clips: "
                                     "summary.json, report.md, per-clip JSONL and plots")
    p.add_argument("clips", nargs="*", help="clip files or names (default: vtest.avi and every clip in the "
                                            "shared footage folder)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--out", default="out/bench", help="output directory (default: out/bench)")
    p.add_argument("--level", choices=["presence", "boxes"], help="cascade level (default: the config default)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep (faster)")
    p.add_argument("--target-recall", type=float, default=0.97,
                   help="person presence recall the chosen operating point must reach (default: 0.97)")
    p.add_argument("--teacher-cpu-s", type=float,
                   help="also price the baseline with your own model's CPU seconds per frame")
    p.add_argument("--student", help="student manifest (default: the shipped student)")
    p.add_argument("--adapt-fraction", type=float,
                   help="per-camera specialization: adapt on this first fraction of each clip, evaluate on the rest")
    p.add_argument("--adapt-epochs", type=int, default=60,
                   help="fine-tuning epochs of that specialization (default: 60, as `models specialize`)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("cost", help="$ per camera-month and per fleet, baseline vs hybrid, from a bench summary")
    p.add_argument("--bench", required=True, help="DIR/summary.json written by `edge-agent bench`")
    p.add_argument("--cameras", type=int, default=1000, help="fleet size (default: 1000)")
    p.add_argument("--pricing", help="price file (default: config/pricing.yaml)")
    p.add_argument("--pricing-overrides", help="YAML merged over the price file (your own prices)")
    p.add_argument("--teacher-cpu-s", type=float,
                   help="your accurate model's CPU seconds per frame, instead of the measured YOLOv3-tiny's")
    p.add_argument("--plot", help="also write the cost plot (PNG) here")
    p.set_defaults(func=_cmd_cost)

    p = sub.add_parser("calibrate", help="pick cascade thresholds on a calibration clip for a target recall "
                                         "and write them into an agent config")
    p.add_argument("clip", help="calibration clip (path or name)")
    p.add_argument("--config", required=True, help="agent config to update (a .bak copy is kept)")
    p.add_argument("--out", help="write the calibrated config here instead of over --config")
    p.add_argument("--target-recall", type=float, default=0.97, help="presence recall to reach (default: 0.97)")
    p.add_argument("--label", action="append", choices=["person", "vehicle"],
                   help="labels that must reach the target (default: person; repeatable)")
    p.add_argument("--level", choices=["presence", "boxes"], default="presence", help="cascade level")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("demo", help="the whole pipeline on real footage with a local teacher server, "
                                    "compared with the teacher on every frame")
    p.add_argument("--clip", help="video file (default: vtest.avi)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    p.set_defaults(func=_cmd_demo)

    models = sub.add_parser("models", help="fetch, train, fine-tune, benchmark and verify models")
    msub = models.add_subparsers(dest="models_command", required=True)
    loso_cli.add_parsers(msub)

    p = msub.add_parser("fetch", help="fetch the teacher weights and vtest.avi, convert the teacher to ONNX")
    p.add_argument("--force", action="store_true", help="fetch and convert again even if cached")
    p.set_defaults(func=_cmd_fetch)

    p = msub.add_parser("train", help="distil the teacher into a new student (minutes of CPU)")
    p.add_argument("--config", help="training config YAML (default: config/train.yaml)")
    p.add_argument("--out", default=str(STUDENT_DIR), help=f"output directory (default: {STUDENT_DIR})")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--version", default="1.0.0", help="version written into the manifest")
    p.add_argument("--smoke", action="store_true", help="tiny run that proves the pipeline, not a model")
    p.set_defaults(func=_cmd_train)

    p = msub.add_parser("finetune", help="adapt a student to one camera's teacher-labelled footage")
    p.add_argument("--from", dest="init_from", default=str(STUDENT_DIR / "manifest.json"),
                   help="student manifest to start from (default: the shipped student)")
    p.add_argument("--clip", action="append", required=True, help="the camera's clip (repeatable)")
    p.add_argument("--out", required=True, help="output directory for the fine-tuned student")
    p.add_argument("--epochs", type=int, default=15, help="epochs (default: 15)")
    p.add_argument("--learning-rate", type=float, default=0.002, help="peak learning rate (default: 0.002)")
    p.add_argument("--config", help="base training config YAML (default: config/train.yaml)")
    p.add_argument("--version", default="1.0.0-ft", help="version written into the manifest")
    p.set_defaults(func=_cmd_finetune)

    p = msub.add_parser("specialize", help="one step of per-camera specialization: fine-tune on the camera's "
                                           "collected teacher answers, then champion/challenger")
    p.add_argument("--camera", required=True, help="camera id (as in the agent config and the records)")
    p.add_argument("--data", required=True, help="folder of training records (the agent's collector or an S3 sync)")
    p.add_argument("--from", dest="init_from", default=str(STUDENT_DIR / "manifest.json"),
                   help="the camera's current student, the champion (default: the shipped student)")
    p.add_argument("--out", required=True, help="output directory for the challenger and decision.json")
    p.add_argument("--epochs", type=int, default=60, help="fine-tuning epochs (default: 60)")
    p.add_argument("--accept", type=float, default=0.5, help="cascade accept threshold to compare at (default: 0.5)")
    p.add_argument("--reject", type=float, default=0.2, help="cascade reject threshold to compare at (default: 0.2)")
    p.add_argument("--target-recall", type=float, default=0.97, help="person presence recall to reach (default: 0.97)")
    p.add_argument("--min-records", type=int, default=8, help="refuse with fewer records (default: 8)")
    p.add_argument("--install", metavar="CONFIG",
                   help="if promoted, give the camera this student in this agent config (a .bak is kept)")
    p.set_defaults(func=_cmd_specialize)

    p = msub.add_parser("training-impact", help="what specializing on this gateway costs its cameras: the "
                                                "agent's pipeline idle and while `models specialize` trains, "
                                                "side by side")
    p.add_argument("--data", required=True, help="a camera's training records (as for `models specialize`)")
    p.add_argument("--camera", required=True, help="the records' camera id")
    p.add_argument("--from", dest="init_from", default=str(STUDENT_DIR / "manifest.json"),
                   help="the student to run and to fine-tune from (default: the shipped student)")
    p.add_argument("--clip", help="footage for the pipeline (default: vtest.avi)")
    p.add_argument("--frames", type=int, default=200, help="frames per pass (default: 200)")
    p.add_argument("--epochs", type=int, default=60, help="fine-tuning epochs (default: 60)")
    p.add_argument("--threads", type=int, default=1, help="training threads, as specialization.train_threads")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=_cmd_training_impact)

    p = msub.add_parser("status", help="per camera: the student it runs, its rollback limits and bands, its "
                                       "training records and the specialization loop's last attempts")
    p.add_argument("--config", required=True, help="the agent config (its fleet.models_dir and specialization)")
    p.add_argument("--last", type=int, default=3, help="attempts shown per camera (default: 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead")
    p.set_defaults(func=_cmd_status)

    p = msub.add_parser("recalibrate", help="redo calibration, thresholds, export and metrics of a trained "
                                            "student without training it again")
    p.add_argument("--student", default=str(STUDENT_DIR), help=f"student directory (default: {STUDENT_DIR})")
    p.set_defaults(func=_cmd_recalibrate)

    p = msub.add_parser("bench", help="teacher vs student latency and agreement, side by side")
    p.add_argument("--student", default=str(STUDENT_DIR), help="directory with manifest-fp32/int8.json")
    p.add_argument("--clip", help="clip for latency frames (default: vtest.avi)")
    p.add_argument("--frames", type=int, default=20, help="frames timed per model (default: 20)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=_cmd_models_bench)

    p = msub.add_parser("verify", help="check a model file against its manifest's sha256")
    p.add_argument("manifest")
    p.set_defaults(func=_cmd_verify)

    from edge_agent.fleet.commands import add_commands

    add_commands(sub, msub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "label", "unset") is None:
        args.label = ["person"]
    from edge_agent.logs import setup_logging

    setup_logging(logging.DEBUG if args.verbose else logging.INFO,
                  args.log_format or ("json" if args.command == "run" else "text"))
    try:
        return args.func(args)
    except (ModelError, ConfigError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
