"""Per-camera specialization from the command line: `models specialize`, `models training-impact`,
`models status`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.paths import ZOO_DIR
from models.student.defaults import DEFAULTS

STUDENT_DIR = ZOO_DIR / "student"


def _cmd_specialize(args: argparse.Namespace) -> int:
    from models.student.defaults import SpecializationDefaults
    from models.student.specialize import specialize

    rules = SpecializationDefaults.model_validate_json(Path(args.rules).read_text()) if args.rules else DEFAULTS
    decision = specialize(args.camera, Path(args.data), Path(args.init_from), Path(args.out), rules,
                          accept=args.accept, reject=args.reject, epochs=args.epochs, target_recall=args.target_recall,
                          min_records=args.min_records)
    verdict = {"promote": "PROMOTE the challenger", "keep": "keep the champion",
               "collect": "keep collecting"}[decision.verdict]
    print(f"camera {args.camera}: {decision.records} records, {decision.frames} held-back frames compared")
    print(f"{verdict}: {decision.why}")
    print(f"decision: {Path(args.out) / 'decision.json'}")
    if args.install and decision.promote:
        from edge_agent.specialization.install import install_in_config

        limits = install_in_config(Path(args.install), args.camera, Path(args.out) / "manifest.json", decision)
        print(f"installed for camera {args.camera} in {args.install} (rolled back above "
              f"{limits['max_escalation']:.0%} escalated); restart the agent or push the config")
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


def add_commands(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("specialize", help="one step of per-camera specialization: fine-tune on the camera's "
                                           "collected teacher answers, then champion/challenger")
    p.add_argument("--camera", required=True, help="camera id (as in the agent config and the records)")
    p.add_argument("--data", required=True, help="folder of training records (the agent's collector or an S3 sync)")
    p.add_argument("--from", dest="init_from", default=str(STUDENT_DIR / "manifest.json"),
                   help="the camera's current student, the champion (default: the shipped student)")
    p.add_argument("--out", required=True, help="output directory for the challenger and decision.json")
    p.add_argument("--rules", help="promotion and guard rules as JSON (models/student/defaults.py's fields; the "
                                   "agent's loop writes its specialization settings there)")
    p.add_argument("--epochs", type=int, help=f"fine-tuning epochs (default: {DEFAULTS.epochs})")
    p.add_argument("--accept", type=float, help=f"the camera's accept threshold to compare at too "
                                                f"(default: {DEFAULTS.accept})")
    p.add_argument("--reject", type=float, help=f"the camera's reject threshold (default: {DEFAULTS.reject})")
    p.add_argument("--target-recall", type=float,
                   help=f"presence recall the lower bound must reach (default: {DEFAULTS.target_recall})")
    p.add_argument("--min-records", type=int, help=f"refuse with fewer records (default: {DEFAULTS.min_records})")
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
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                   help=f"fine-tuning epochs (default: {DEFAULTS.epochs})")
    p.add_argument("--threads", type=int, default=1, help="training threads, as specialization.train_threads")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=_cmd_training_impact)

    p = msub.add_parser("status", help="per camera: the student it runs, its rollback limits and bands, its "
                                       "training records and the specialization loop's last attempts")
    p.add_argument("--config", required=True, help="the agent config (its fleet.models_dir and specialization)")
    p.add_argument("--last", type=int, default=3, help="attempts shown per camera (default: 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead")
    p.set_defaults(func=_cmd_status)
