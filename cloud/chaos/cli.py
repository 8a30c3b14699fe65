"""`framesieve-cloud chaos`: its arguments and its run."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path


def _cmd_chaos(args: argparse.Namespace) -> int:
    from cloud.chaos.campaign import CampaignOptions, format_table, run_campaign, save

    if args.clip:
        clip = Path(args.clip)
    else:
        from models.fetch import fetch_vtest

        clip = fetch_vtest()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="framesieve-chaos-"))
    for noisy in ("framesieve.router", "framesieve.bridge", "framesieve.local"):
        logging.getLogger(noisy).setLevel(logging.ERROR)  # the campaign provokes their warnings on purpose
    options = CampaignOptions(clip=clip, workdir=workdir, teacher_manifest=Path(args.model) if args.model else None,
                              cameras=args.cameras, fps=args.fps, hang_s=args.hang_s, outage_s=args.outage_s,
                              warmup_s=args.warmup_s, verdict_timeout_s=args.verdict_timeout_s,
                              streams=args.only in (None, "streams"), inputs=args.only in (None, "inputs"))
    rows = run_campaign(options, progress=lambda m: print(f"==> {m}", flush=True))
    print(format_table(rows))
    save(rows, workdir / "chaos.json")
    print(f"logs and chaos.json in {workdir}")
    return 0 if all(r.ok for r in rows) else 1


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chaos", help="the fault campaign on loopback: a real gateway, broker, router and teacher, broken one "
                      "way after another; prints lost / duplicated / stalled per fault (exit 1 if any fails)",
        description="Starts the teacher (its own process), the local cloud with a Mosquitto broker and the IoT "
                    "bridge, and a gateway whose cameras play CLIP in a loop at the pace of a live camera. Then: "
                    "the endpoint hung (SIGSTOP) and killed, the broker killed, the gateway SIGKILLed with a full "
                    "spool; the router fed malformed messages; the server fed pixel bombs and 8 clients mixing "
                    "good and bad input. Takes about hang + 4 x outage + 3 x warm-up seconds, plus the drain.")
    p.add_argument("--clip", help="video played by every camera (default: vtest.avi)")
    p.add_argument("--model", help="teacher manifest (default: the FrameSieve teacher)")
    p.add_argument("--cameras", type=int, default=2, help="cameras on the gateway (default: 2)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate per camera (default: 1)")
    p.add_argument("--hang-s", type=float, default=30.0, help="seconds the endpoint is hung (default: 30)")
    p.add_argument("--outage-s", type=float, default=10.0, help="seconds each outage lasts (default: 10)")
    p.add_argument("--warmup-s", type=float, default=8.0, help="seconds before the first fault (default: 8)")
    p.add_argument("--verdict-timeout-s", type=float, default=10.0,
                   help="the gateway's escalation.verdict_timeout_s (default: 10, the product default)")
    p.add_argument("--only", choices=("streams", "inputs"), help="run only the stream faults or only the input ones")
    p.add_argument("--workdir", help="where logs, databases and chaos.json go (default: a new temp folder)")
    p.set_defaults(func=_cmd_chaos)
