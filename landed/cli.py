"""`framesieve-cloud sieve`: the sieve on one landed object (`--bucket B --key K`, what the Fargate task runs)
or on Kinesis Video streams (`--stream NAME`, `--group NAME`: one worker per stream group), as the Lambda and
the Fargate task run it. AWS is whatever the environment points at (AWS_ENDPOINT_URL: moto_server locally);
the router's settings (store, endpoint, training bucket, alerts) come from the same variables as the router
Lambda's (cloud/constants.py). Prints what it did as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from landed import constants as k
from landed.config import epoch_seconds

if TYPE_CHECKING:
    from landed.config import SieveConfig


def _time(text: str) -> float:
    try:
        return epoch_seconds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give epoch seconds or an ISO time (2026-12-03T04:00:00Z)") \
            from None


def add_parser(sub) -> None:
    what = ("the edge pipeline in the cloud over landed video: an S3 object (--bucket/--key) or Kinesis Video "
            "streams (--stream/--group); results to the results store")
    p = sub.add_parser("sieve", help=what, description=what + ". --local CLIP tries it on one machine; --check only "
                                                              "validates the config.")
    p.add_argument("--config", default=os.environ.get(k.CONFIG),
                   help=f"the sieve config, a file or s3://bucket/key (default: ${k.CONFIG}); "
                        "see config/sieve.example.yaml")
    p.add_argument("--bucket", help="a landed object's bucket (with --key)")
    p.add_argument("--key", help="a landed object's key; its camera is the one whose s3_prefix starts it")
    p.add_argument("--stream", action="append", help="a Kinesis Video stream (repeatable: one worker for all)")
    p.add_argument("--group", help="a stream group of the config: its streams, in one worker")
    p.add_argument("--start", type=_time, help="streams: from this producer time (epoch s or ISO; default: now - 60 s)")
    p.add_argument("--end", type=_time, help="streams: to this time (default: follow the stream until stopped)")
    p.add_argument("--store", help="the results store URL (default: $FRAMESIEVE_STORE, as the router's)")
    p.add_argument("--local", type=Path, metavar="CLIP",
                   help="land CLIP in a loopback stack (moto_server, the teacher server) under the first camera's "
                        "s3_prefix and sieve it as the Lambda would: the whole path on one machine")
    p.add_argument("--out", type=Path, help="also write each run's per-frame decisions (JSONL) and summary here")
    p.add_argument("--check", action="store_true",
                   help="only validate the config and print its cameras, groups and the thing it escalates as")
    p.set_defaults(func=run_from_args)


def run_from_args(args: argparse.Namespace) -> int:
    from cloud import constants as c
    from landed.config import SieveError, load_sieve_config

    if not args.config:
        print(f"error: give --config FILE (or set {k.CONFIG}); see config/sieve.example.yaml", file=sys.stderr)
        return 2
    if args.check:
        try:
            print(_describe(load_sieve_config(args.config), args.config))
        except SieveError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if problem := _source_problem(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    import logging

    logging.getLogger("edge_agent.frames").setLevel(logging.WARNING)  # a line per frame: the JSON says it all
    if args.local:
        from landed.local import sieve_local

        try:
            result, run = sieve_local(load_sieve_config(args.config), args.local)
        except SieveError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.out:
            _write_out(args.out, [run] if run is not None else [], [result])
        print(json.dumps(result, indent=2))
        return 0
    if args.store:
        os.environ[c.STORE_URL] = args.store
    try:
        from landed.run import Sieve

        sieve = Sieve(load_sieve_config(args.config))
        if args.key:
            from landed.s3 import process_object

            results = [process_object(sieve, args.bucket, args.key)]
            runs = [sieve.last_run] if sieve.last_run is not None else []  # none: handed to the Fargate task
        else:
            from landed.kvs import run_streams

            cameras = sieve.config.group(args.group) if args.group else []
            cameras += [sieve.config.camera_for_stream(s) for s in args.stream or []]
            if args.end is None:  # following: ECS stops a task with SIGTERM; end the run cleanly on it
                import signal

                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: sieve.stop())
            runs = run_streams(sieve, cameras, args.start, args.end)
            results = [r.to_dict() for r in runs]
    except SieveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        _write_out(args.out, runs, results)
    print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    return 0


def _write_out(out: Path, runs: list, results: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs):
        (out / f"decisions-{i}.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in run.lines))
    (out / "sieve.json").write_text(json.dumps(results, indent=2) + "\n")


def _source_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the video source flags, naming the flag and the fix; None when they make sense."""
    if args.local:
        if extra := [f for f, v in (("--bucket", args.bucket), ("--key", args.key), ("--stream", args.stream),
                                    ("--group", args.group), ("--store", args.store)) if v]:
            return (f"--local makes its own loopback stack, bucket and store: drop {' '.join(extra)}, or drop --local "
                    "to sieve real landed video")
        return None
    streams = bool(args.stream or args.group)
    if args.bucket and not args.key:
        return f"--bucket {args.bucket} needs --key KEY, the landed object's key (e.g. landed/depot-1/cam/x.mp4)"
    if args.key and not args.bucket:
        return f"--key {args.key} needs --bucket BUCKET, the bucket the object landed in"
    if args.key and streams:
        return "give either --bucket B --key K (a landed object) or --stream NAME / --group NAME (Kinesis Video), " \
               "not both"
    if not args.key and not streams:
        return ("give what to sieve: --bucket B --key K (a landed object), --stream NAME / --group NAME (Kinesis "
                "Video), or --local CLIP (one machine)")
    return None


def _describe(config: SieveConfig, source: str) -> str:
    """`--check`: what the config sets up, one line per camera."""
    lines = [f"ok: {source}: thing {config.thing!r}, student {config.student!r}, {len(config.cameras)} camera(s), "
             f"{len(config.stream_groups)} stream group(s)"]
    for cam in config.cameras:
        video = ", ".join(x for x in ((f"s3 {cam.bucket or '*'}/{cam.s3_prefix}" if cam.s3_prefix else ""),
                                      (f"stream {cam.stream}" if cam.stream else "")) if x)
        lines.append(f"  {cam.id} (site {cam.site}): {video}; {cam.fps:g} fps, {cam.cascade.level}")
    lines += [f"  group {g.name}: {', '.join(g.streams)}" for g in config.stream_groups]
    return "\n".join(lines)
