"""The agent's own commands: `run`, `validate-config`, `demo`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path


def _cmd_run(args: argparse.Namespace) -> int:
    import signal

    from edge_agent.app import Agent
    from edge_agent.config import load_config

    config = load_config(args.config)
    logging.getLogger("edge_agent.frames").setLevel(logging.INFO if config.output.log_frames else logging.WARNING)
    agent = Agent(config, jsonl=args.detections_out)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop())
    log = logging.getLogger(__name__)
    log.info("agent started: %d camera(s)", len(config.cameras),
             extra={"event": "start", "site": config.site, "cameras": [c.id for c in config.cameras]})
    started = time.monotonic()
    summary = agent.run()
    total = summary.get("total", {})
    # Frame events the cloud lacks at stop are either here (on disk, sent first at the next start) or lost.
    left = summary.get("mqtt", {}).get("spool_left", {})
    log.info("agent stopped after %.0f s: %s sampled, %s escalated; %s", time.monotonic() - started,
             total.get("sampled", 0), total.get("escalated", 0),
             ", ".join(f"{v} {k}(s)" for k, v in left.items()) + " still spooled for the next start" if left
             else "nothing left in the spool" if "mqtt" in summary else "no spool (no mqtt link)",
             extra={"event": "stop", "uptime_s": round(time.monotonic() - started, 1), "counters": total,
                    "spool_left": left})
    # The counters: a table for a person at a terminal, one JSON line for anything that reads them.
    print(format_counters(summary) if sys.stdout.isatty() else json.dumps(summary, separators=(",", ":")))
    return 0


def format_counters(summary: dict) -> str:
    """Per camera and in total, the counters that are not zero anywhere, as aligned columns."""
    rows = {**summary.get("cameras", {}), "total": summary.get("total", {})}
    keys = [k for k in summary.get("total", {}) if isinstance(summary["total"][k], int | float)
            and any(r.get(k) for r in rows.values())]
    width = max((len(k) for k in rows), default=5) + 2
    lines = ["camera".ljust(width) + "".join(k.rjust(max(len(k), 6) + 2) for k in keys)]
    for name, counters in rows.items():
        lines.append(name.ljust(width) + "".join(str(counters.get(k, 0)).rjust(max(len(k), 6) + 2) for k in keys))
    return "\n".join(lines)


def _cmd_validate(args: argparse.Namespace) -> int:
    from edge_agent.config import ConfigError, load_config
    from edge_agent.redact import redact_url

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        if _looks_like_sieve_config(args.config):
            raise ConfigError(f"{args.config} looks like a sieve config (config/sieve.example.yaml: thing, "
                              "s3_prefix, stream, kvs), not an agent config (config/agent.example.yaml): check it "
                              f"with `framesieve-cloud sieve --config {args.config} --check`") from exc
        raise
    # What `run` would stop on at its first frame: a file or folder source that is not there.
    missing = [f"camera {c.id}: source {c.source} does not exist (a video file, an image folder, or an "
               "rtsp:// or http(s):// URL)" for c in config.cameras
               if "://" not in c.source and not Path(c.source).expanduser().exists()]
    missing += [f"camera {c.id}: escalation_source {c.escalation_source.url} does not exist (the main stream: an "
                "rtsp:// or http(s):// URL, or a video file)" for c in config.cameras
                if c.escalation_source is not None and "://" not in c.escalation_source.url
                and not Path(c.escalation_source.url).expanduser().is_file()]
    if missing:
        print(f"error: {args.config}:\n" + "\n".join(f"  {m}" for m in missing), file=sys.stderr)
        return 2
    print(f"ok: {args.config}: site {config.site!r}, {len(config.cameras)} camera(s): "
          + ", ".join(f"{c.id} ({redact_url(c.source)}, {c.fps} fps, {c.cascade.level})" for c in config.cameras))
    return 0


def _looks_like_sieve_config(path: str) -> bool:
    """Keys only the sieve's config has (landed/config.py): its thing, landed-video cameras, Kinesis settings."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(errors="replace"))
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(raw, dict):
        return False
    cams = raw.get("cameras")
    cams = cams if isinstance(cams, list) else []
    return bool({"thing", "lambda_max_segment_s", "kvs", "stream_groups"} & set(raw)) or any(
        isinstance(c, dict) and ("s3_prefix" in c or "stream" in c) for c in cams)


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo import format_summary, run_demo
    from models.fetch import fetch_vtest
    from models.teacher.build import ensure_teacher

    ensure_teacher()  # fetched and converted once, silently reused after
    clip = Path(args.clip) if args.clip else fetch_vtest()
    summary = run_demo(clip, Path(args.out), fps=args.fps)
    print(format_summary(summary))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the agent on the cameras of a config file until stopped")
    p.add_argument("--config", required=True, help="agent config YAML (see config/agent.example.yaml)")
    p.add_argument("--detections-out", help="also write every sampled frame's decision to this JSONL file")
    p.set_defaults(func=_cmd_run)

    what = "check an agent config file and print what it sets up"
    p = sub.add_parser("validate-config", help=what, description=what + " (a sieve config: framesieve-cloud sieve "
                                                                      "--config FILE --check)")
    p.add_argument("config", help="agent config YAML (see config/agent.example.yaml)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("demo", help="the whole pipeline on real footage with a local teacher server, "
                                    "compared with the teacher on every frame")
    p.add_argument("--clip", help="video file (default: vtest.avi)")
    p.add_argument("--fps", type=float, default=1.0, help="sampling rate (default: 1)")
    p.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    p.set_defaults(func=_cmd_demo)
