"""`edge-agent models ...`: fetch, train, fine-tune, recalibrate, benchmark and verify students."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.paths import ZOO_DIR

STUDENT_DIR = ZOO_DIR / "student"


def fetch_models(force: bool = False) -> None:
    """The teacher's weights and vtest.avi (cached), the teacher converted to ONNX, and the agent's
    student derived from the teacher's weights with the committed recipe."""
    from models.fetch import fetch_vtest
    from models.student.derived import ensure_derived_student
    from models.teacher.build import ensure_teacher

    print(f"teacher manifest: {ensure_teacher(force=force)}")
    # the student before the reference clip: a gateway needs the one, only benches and tests the other
    print(f"student:          {ensure_derived_student(force=force)} (derived from the teacher's weights)")
    print(f"vtest.avi:        {fetch_vtest(force=force)}")


def _cmd_fetch(args: argparse.Namespace) -> int:
    fetch_models(args.force)
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
    from models.student.derived import ensure_derived_student

    derived = Path(args.derived) if args.derived else ensure_derived_student().parent
    result = run_models_bench(Path(args.student), clip, frames=args.frames, derived_dir=derived)
    print(format_bench(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from models.manifest import load_manifest

    m = load_manifest(args.manifest)
    print(f"ok: {m.name} {m.version} ({m.kind}, {m.precision}) sha256 {m.sha256} matches {m.model_path}")
    return 0


def add_commands(msub: argparse._SubParsersAction) -> None:
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

    p = msub.add_parser("recalibrate", help="redo calibration, thresholds, export and metrics of a trained "
                                            "student without training it again")
    p.add_argument("--student", default=str(STUDENT_DIR), help=f"student directory (default: {STUDENT_DIR})")
    p.set_defaults(func=_cmd_recalibrate)

    p = msub.add_parser("bench", help="teacher vs student latency and agreement, side by side")
    p.add_argument("--student", default=str(STUDENT_DIR), help="directory with manifest-fp32/int8.json")
    p.add_argument("--derived", help="the teacher-derived student's directory (default: the agent's, in the "
                                     "cache; `models derive --int8 --out DIR` adds its INT8 variant)")
    p.add_argument("--clip", help="clip for latency frames (default: vtest.avi)")
    p.add_argument("--frames", type=int, default=20, help="frames timed per model (default: 20)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=_cmd_models_bench)

    p = msub.add_parser("verify", help="check a model file against its manifest's sha256")
    p.add_argument("manifest")
    p.set_defaults(func=_cmd_verify)
