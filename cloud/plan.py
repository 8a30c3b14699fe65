"""`framesieve-cloud plan`: which teacher backend to deploy for a fleet; prints only the choice (or, with
--json, every option priced). The inputs are the fleet size and the escalation rate, from a bench summary or
given directly; the prices and backend figures come from config/pricing.yaml (costing.planner)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cameras", type=int, required=True, help="fleet size")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bench", help="DIR/summary.json of `edge-agent bench`: its escalation fraction and bytes")
    src.add_argument("--escalation-fraction", type=float, help="escalated share of sampled frames (0..1)")
    p.add_argument("--fps", type=float, help="sampled frames per second per camera (default: the bench's, else 1)")
    p.add_argument("--bytes-per-image", type=float,
                   help="request bytes per image (default: the bench's message bytes, else 100,000)")
    p.add_argument("--images-per-call", type=float,
                   help="images per teacher call and router invocation (per-gateway batching; default: derived "
                        "with --cameras-per-gateway, else 1)")
    p.add_argument("--cameras-per-gateway", type=float,
                   help="derive the images per call from each gateway's batch occupancy (costing.occupancy: "
                        "cameras x fps x escalated share x the agent's default 250 ms window)")
    p.add_argument("--latency-p95-s", type=float, help="latency objective, p95 seconds (default: the price file's)")
    p.add_argument("--pricing", help="price file (default: config/pricing.yaml)")
    p.add_argument("--pricing-overrides", help="YAML merged over the price file")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="every option priced, as JSON")
    out.add_argument("--params", action="store_true",
                     help="the chosen option's stack parameters instead, as `--param KEY=VALUE` for deploy")


def run_from_args(args: argparse.Namespace) -> int:
    from contracts.batch import DEFAULT_BATCH_WINDOW_MS
    from costing.occupancy import occupancy
    from costing.planner import Workload, plan
    from costing.pricing import PricingError, load_pricing
    from costing.summary import SummaryError, load_summary

    try:
        prices = load_pricing(args.pricing, args.pricing_overrides)
        fps, nbytes, fraction = args.fps or 1.0, args.bytes_per_image or 100_000.0, args.escalation_fraction
        if args.bench:
            summary = load_summary(Path(args.bench))
            t = summary.total
            fps = args.fps or summary.fps
            fraction = summary.warmup.steady_escalation_fraction if (
                summary.warmup and summary.warmup.steady_escalation_fraction is not None) else t.escalation_fraction
            nbytes = args.bytes_per_image or t.message_bytes_mean
        if fraction is None or not 0 <= fraction <= 1:
            raise ValueError(f"--escalation-fraction must be in [0, 1]; got {fraction}")
        if not fps > 0:
            raise ValueError(f"--fps must be positive; got {fps}")
        per_call, batching = args.images_per_call, None
        if per_call is None and args.cameras_per_gateway is not None:
            batching = occupancy(args.cameras_per_gateway, fps, fraction, nbytes, DEFAULT_BATCH_WINDOW_MS,
                                 "the agent's default escalation.batch_window_ms")
            per_call = batching.per_message
        per_call = 1.0 if per_call is None else per_call
        w = Workload(args.cameras, args.cameras * fps * fraction, per_call, per_call,
                     nbytes, float(prices.per_escalation.verdict_bytes))
        result = plan(prices, w, args.latency_p95_s)
    except (PricingError, SummaryError, ValueError) as exc:
        print(f"framesieve-cloud plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict() | ({"batching": batching.to_dict()} if batching else {}), indent=1))
    elif args.params:
        print(" ".join(f"--param {k}={v}" for k, v in result.chosen.stack.items()))
    else:
        print(result.chosen.name)
    if not result.met:
        print(f"warning: no backend meets p95 <= {result.objective_p95_s:g} s; {result.chosen.name} is the fastest",
              file=sys.stderr)
    return 0
