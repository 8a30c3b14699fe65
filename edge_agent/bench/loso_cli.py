"""`edge-agent models derive` and `edge-agent models loso`: the generic student that transfers, and
the leave-one-scene-out evaluation that judges any student family by scenes it never saw."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_agent.bench.bench import default_clips
from models.paths import CENTERNET_STUDENT_MANIFEST

FAMILIES = ("derived", "centernet", "fixed")


def _cmd_derive(args: argparse.Namespace) -> int:
    from models.runtime import load_detector
    from models.student.data import resolve_clip
    from models.student.derived import build_derived, write_recipe
    from models.student.scenes import load_scene
    from models.teacher.build import ensure_teacher

    teacher = load_detector(ensure_teacher(), threads=2)
    names = args.scenes or default_clips()
    scenes = [load_scene(p, args.fps, teacher) for p in (resolve_clip(n) for n in names) if p is not None]
    if not scenes:
        print(f"error: none of the calibration scenes {names} was found; run `edge-agent models fetch`",
              file=sys.stderr)
        return 2
    manifest = build_derived(Path(args.out), scenes, (args.width, args.height), int8=args.int8)
    print(f"derived student: {manifest} (calibrated on {sum(len(s) for s in scenes)} frames of "
          f"{len(scenes)} scenes)")
    if args.write_recipe:
        write_recipe(manifest)
        print("recipe written: gateways derive this student with `edge-agent models fetch`")
    return 0


def _builder(args: argparse.Namespace):
    from models.student.derived import build_derived

    if args.family == "derived":
        return lambda fold, others: build_derived(fold, others, (args.width, args.height), int8=args.int8)
    if args.family == "fixed":
        # One student for every fold, as shipped: honest only on scenes it never trained on, which the
        # report marks from its manifest.
        manifest = Path(args.student).resolve()
        return lambda fold, others: manifest

    from models.student.config import load_train_config
    from models.student.train import train_student

    def centernet(fold: Path, others) -> Path:
        cfg = load_train_config(args.config, epochs=args.epochs)
        kept = [c for c in cfg.clips if c in {s.name for s in others}]
        cfg = cfg.model_copy(update={"clips": kept, "held_out_clips": []})
        train_student(cfg, fold, progress=False)
        return fold / "manifest.json"

    return centernet


def _cmd_loso(args: argparse.Namespace) -> int:
    from edge_agent.bench.loso import run_loso
    from edge_agent.bench.loso_report import write_report

    scenes = args.scenes or default_clips()
    cascade = json.loads(args.cascade) if args.cascade else None
    result = run_loso(scenes, _builder(args), args.family, Path(args.out), fps=args.fps, cascade=cascade,
                      with_sweep=not args.no_sweep, keep_students=args.keep_students,
                      regions={"max_downscale": args.max_downscale} if args.max_downscale else None,
                      judge=args.judge, judge_after=args.judge_after or (1 / 3 if args.int8_self else None),
                      self_int8=args.int8_self, gated=not args.no_gate)
    report = write_report(result, Path(args.out))
    pooled = result["pooled"]
    for label in ("person", "vehicle"):
        rate, worst = pooled["labels"][label]["presence_recall"], pooled["worst"][label]
        pooled_text = "n/a" if rate["value"] is None else f"{rate['value']:.3f} ({rate['k']}/{rate['n']})"
        worst_text = "n/a" if worst is None else f"{worst['value']:.3f} on {worst['scene']} ({worst['k']}/{worst['n']})"
        print(f"{label}: pooled recall {pooled_text}, worst {worst_text}")
    esc, worst_esc = pooled["escalated"], pooled["worst"]["escalated"]
    print(f"escalated: pooled {esc['value']:.3f} ({esc['k']}/{esc['n']}), worst {worst_esc['value']:.3f} "
          f"on {worst_esc['scene']}")
    print(f"report: {report}")
    return 0


def add_parsers(msub) -> None:
    p = msub.add_parser("derive", help="derive the generic student from the teacher's weights (reduced input, "
                                       "product classes) and calibrate it on footage; no training")
    p.add_argument("--scenes", nargs="*", help="calibration clips (default: vtest.avi and the shared footage)")
    p.add_argument("--out", default="out/student-derived", help="output directory (default: out/student-derived)")
    p.add_argument("--fps", type=float, default=1.0, help="frames per second sampled for calibration (default 1)")
    p.add_argument("--width", type=int, default=320, help="input width, a multiple of 32 (default 320)")
    p.add_argument("--height", type=int, default=192, help="input height, a multiple of 32 (default 192)")
    p.add_argument("--int8", action="store_true", help="also build and measure a static INT8 variant")
    p.add_argument("--write-recipe", action="store_true",
                   help="record this calibration in models/zoo/derived/recipe.json (what gateways derive)")
    p.set_defaults(func=_cmd_derive)

    p = msub.add_parser("loso", help="leave one scene out: per scene a student built without it, judged through "
                                     "the real pipeline; per scene, pooled and worst with 95%% intervals")
    p.add_argument("--family", choices=FAMILIES, default="derived",
                   help="derived: the teacher-derived student (calibrated on the other scenes); centernet: the "
                        "from-scratch student trained on the other scenes (slow: --epochs per fold); fixed: one "
                        "--student for every scene (scenes it trained on are marked)")
    p.add_argument("--scenes", nargs="*", help="clips (default: vtest.avi and every clip in the shared footage)")
    p.add_argument("--out", default="out/loso", help="output directory (default: out/loso)")
    p.add_argument("--judge", action="append", help="judge only this scene (repeatable); the other scenes "
                                                    "still build each fold's student")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default 1)")
    p.add_argument("--cascade", help='cascade override as JSON, e.g. \'{"labels": {"person": {"accept": 0.6, '
                                     '"reject": 0.1}}}\' (default: the shipped bands)')
    p.add_argument("--max-downscale", type=float,
                   help="regions.max_downscale for every camera (default: the agent's, 3; 16 turns tiling off)")
    p.add_argument("--width", type=int, default=320, help="derived: input width (default 320)")
    p.add_argument("--height", type=int, default=192, help="derived: input height (default 192)")
    p.add_argument("--int8", action="store_true", help="derived: use the INT8 variant (calibrated on the other scenes)")
    p.add_argument("--int8-self", action="store_true",
                   help="the fold's student quantised to INT8 on the left-out scene's own first frames (unlabelled, up "
                        "to 64 from its first third, as the agent's student.precision: auto does on its cameras), "
                        "kept only where it passes the agent's default gate, judged on the later frames only")
    p.add_argument("--no-gate", action="store_true",
                   help="with --int8-self: judge INT8 on every scene, also where the agent's gate (student.gate, "
                        "on every 4th calibration frame) would have kept fp32")
    p.add_argument("--judge-after", type=float, metavar="SHARE",
                   help="judge only the frames after this share of each scene's duration (default with --int8-self: "
                        "1/3); run the fp32 with the same value to compare like for like")
    p.add_argument("--student", default=str(CENTERNET_STUDENT_MANIFEST),
                   help="fixed: the student manifest judged on every scene (default: the CenterNet in the package)")
    p.add_argument("--config", help="centernet: training config (default: config/train.yaml)")
    p.add_argument("--epochs", type=int, default=10, help="centernet: epochs per fold (default 10)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep (no escalation-for-recall)")
    p.add_argument("--keep-students", action="store_true", help="keep each fold's student under OUT/students")
    p.set_defaults(func=_cmd_loso)
