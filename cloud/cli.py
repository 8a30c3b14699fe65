"""`framesieve-cloud`: the cloud side's command line. `serve` is also the container entry point:
SageMaker starts an inference image as `<image> serve`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cloud.exceptions import CloudError, ConfigError
from models.exceptions import ModelError


def _cmd_serve(args: argparse.Namespace) -> int:
    from cloud.inference.server import serve_forever

    serve_forever(args.model, args.host, args.port, args.threads, max_batch=args.max_batch,
                  max_wait_ms=args.max_wait_ms, max_body_bytes=args.max_body_bytes,
                  max_images=args.max_images, max_image_pixels=args.max_image_pixels,
                  max_connections=args.max_connections, request_deadline_s=args.request_deadline_s,
                  input_size=args.input_size, variant_name=args.variant_name)
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    from cloud.api import read_token, serve_forever

    serve_forever(args.store, args.host, args.port, read_token(args.token_file, args.no_auth, args.host),
                  max_connections=args.max_connections, request_deadline_s=args.request_deadline_s)
    return 0


def _cmd_local(args: argparse.Namespace) -> int:
    from cloud.local import LocalOptions, run_local

    if not args.challenger_url:
        given = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in ("challenger_weight", "shadow_share",
                                                                          "champion_instance", "challenger_instance")
                 if getattr(args, n) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --challenger-url URL (a second `framesieve-cloud "
                              "serve` as the challenger variant); add it, or drop the flag")
    ab_defaults = {"challenger_weight": 0.5, "shadow_share": 0.0, "champion_instance": "ml.g4dn.xlarge",
                   "challenger_instance": "ml.g4dn.xlarge"}
    for name, value in ab_defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for flag, share in (("--challenger-weight", args.challenger_weight), ("--shadow-share", args.shadow_share)):
        if not 0 <= share <= 1:
            raise ConfigError(f"{flag} {share:g}: expected a share of the traffic in [0, 1], e.g. 0.1")
    run_local(LocalOptions(args.host, model=args.model, store_url=args.store, rules_file=args.alert_rules,
                           state_dir=args.state_dir, threads=args.threads, router_port=args.router_port,
                           api_port=args.api_port, mqtt=args.mqtt or bool(args.mqtt_port),
                           mqtt_port=args.mqtt_port or 0, gateways=args.gateway or [],
                           endpoint_url=args.champion_url or "", challenger_url=args.challenger_url or "",
                           challenger_weight=args.challenger_weight, shadow_share=args.shadow_share,
                           champion_instance=args.champion_instance, challenger_instance=args.challenger_instance,
                           training_sink=args.training_sink))
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from cloud.local import parse_gateway
    from cloud.stores import open_store

    entry = parse_gateway(f"{args.thing}={args.site}:{','.join(args.camera)}")
    store = open_store(args.store)
    try:
        store.register_gateway(entry)
    finally:
        store.close()
    print(f"registered {entry.thing}: site {entry.site}, cameras {', '.join(entry.cameras)} in {args.store}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from cloud.inference.bench import bench, report

    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        print(f"error: --batches {args.batches!r} must be whole numbers separated by commas, e.g. 1,2,4,8",
              file=sys.stderr)
        return 2
    if not batches or min(batches) < 1 or args.clients < 1 or args.duration <= 0:
        print("error: --batches must be >= 1, --clients >= 1 and --duration > 0", file=sys.stderr)
        return 2
    logging.getLogger("cloud.inference.server").setLevel(logging.WARNING)  # not one line per bench request
    rows, provider, model = bench(args.model, args.duration, args.clients, batches, args.threads, args.max_wait_ms,
                                  ["CPUExecutionProvider"] if args.cpu else None)
    print(report(rows, provider, model))
    return 0


def _limits(p: argparse.ArgumentParser) -> None:
    from cloud.httpserve import MAX_CONNECTIONS, REQUEST_DEADLINE_S

    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help=f"open connections at once; more are answered 503 (default: {MAX_CONNECTIONS})")
    p.add_argument("--request-deadline-s", type=float, default=REQUEST_DEADLINE_S,
                   help=f"seconds for a whole request to arrive, however slowly (default: {REQUEST_DEADLINE_S:g})")


def _cmd_bench_lambda(args: argparse.Namespace) -> int:
    if args.invocations < 1 or not 128 <= args.memory_mb <= 10240 or args.threads < 1:
        print("error: --invocations must be >= 1, --memory-mb in [128, 10240] and --threads >= 1", file=sys.stderr)
        return 2
    try:
        import awslambdaric  # noqa: F401 - the runtime the bench runs the handler under
    except ImportError:
        print("error: bench-lambda needs awslambdaric (pip install -e '.[lambda]')", file=sys.stderr)
        return 2
    from cloud.lambda_teacher.bench import bench_lambda

    print(bench_lambda(args.invocations, args.memory_mb, args.threads, args.model).report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cloud.inference.images import MAX_IMAGE_PIXELS
    from cloud.inference.server import MAX_BODY_BYTES

    parser = argparse.ArgumentParser(
        prog="framesieve-cloud",
        description="FrameSieve cloud side: the SageMaker-compatible endpoint the edge escalates to, the "
                    "results API, the local stack and the endpoint benchmark.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve GET /ping and POST /invocations (one JSON log line per request)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080)),
                   help="port (default: $SAGEMAKER_BIND_TO_PORT or 8080)")
    p.add_argument("--model", help="model manifest or its folder (default: $SM_MODEL_DIR/manifest.json, "
                                   "/opt/ml/model/manifest.json, else the FrameSieve teacher)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: its own choice)")
    p.add_argument("--max-batch", type=int, default=8, help="images per model call (default: 8)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a batch waits for more requests (default: 5)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                   help=f"largest request body (default: {MAX_BODY_BYTES}, SageMaker's limit)")
    p.add_argument("--max-images", type=int, default=32, help="most images in one request (default: 32)")
    p.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS,
                   help=f"largest image, width x height, read from its header before decoding (default: "
                        f"{MAX_IMAGE_PIXELS}, 4096x4096)")
    # champion/challenger (cloud/ab/)
    p.add_argument("--variant-name", default=os.environ.get("FRAMESIEVE_VARIANT_NAME", "AllTraffic"),
                   help="the production variant this server is, returned in x-Amzn-Invoked-Production-Variant "
                        "(default: $FRAMESIEVE_VARIANT_NAME or AllTraffic)")
    p.add_argument("--input-size", type=int,
                   help="serve the FrameSieve teacher converted at this square input size (a multiple of 32, e.g. "
                        "320; default: its own 416), e.g. as a challenger variant; not with --model")
    _limits(p)
    p.set_defaults(func=_cmd_serve)

    from cloud import constants as c

    p = sub.add_parser("api", help="the results API (JSON over HTTP) over the results store")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=int(os.environ.get(c.API_PORT, c.DEFAULT_API_PORT)),
                   help=f"port (default: ${c.API_PORT} or {c.DEFAULT_API_PORT})")
    p.add_argument("--store", default=os.environ.get(c.STORE_URL, c.DEFAULT_STORE_URL),
                   help=f"dynamodb://TABLE or sqlite:///path (default: ${c.STORE_URL} or {c.DEFAULT_STORE_URL})")
    p.add_argument("--token-file", help="file whose first line is the bearer token every request must send "
                                        "(default: $FRAMESIEVE_API_TOKEN; at least 16 characters)")
    p.add_argument("--no-auth", action="store_true", help="serve without a token: loopback addresses only")
    _limits(p)
    p.set_defaults(func=_cmd_api)

    p = sub.add_parser("local", help="the whole cloud side on loopback: moto_server, inference server, router, "
                                     "results API (needs the dev extra for moto_server)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--model", help="model manifest for the endpoint (default: the FrameSieve teacher)")
    p.add_argument("--store", help="results store URL (default: a DynamoDB table on moto_server)")
    p.add_argument("--alert-rules", help="JSON file of alert rules (default: a person anywhere, 300 s cooldown)")
    p.add_argument("--state-dir", help="where moto's request recording goes (default: a new temp folder)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads for the endpoint")
    p.add_argument("--router-port", type=int, default=0, help="router port (default: a free one)")
    p.add_argument("--api-port", type=int, default=0, help="results API port (default: a free one)")
    p.add_argument("--mqtt", action="store_true",
                   help="also start a Mosquitto broker and the IoT rule / iot-data bridge, so a gateway on "
                        "transport mqtt talks to this stack (needs mosquitto, which ./dev.sh installs)")
    p.add_argument("--mqtt-port", type=int, help="with --mqtt: the broker's port (default: a free one)")
    p.add_argument("--training-sink", choices=c.TRAINING_SINKS, default="s3",
                   help="where the router keeps training records: s3, an object per escalation or gateway batch "
                        "(default), or firehose, delivery streams on moto as the AWS stack deploys them")
    p.add_argument("--gateway", action="append", metavar="THING=SITE:CAM[,CAM...]",
                   help="register a gateway: the router refuses every other thing, site and camera (repeatable)")
    # champion/challenger (cloud/ab/): two `framesieve-cloud serve` processes as the endpoint's variants
    p.add_argument("--champion-url", help="a running `framesieve-cloud serve` as the endpoint (with --challenger-url: "
                                          "the champion variant; default: a teacher started in this process)")
    p.add_argument("--challenger-url", help="a running `framesieve-cloud serve` as the challenger variant: the "
                                            "endpoint gets two production variants, routed by weight")
    p.add_argument("--challenger-weight", type=float,
                   help="with --challenger-url: the challenger's initial share of the traffic (default: 0.5)")
    p.add_argument("--shadow-share", type=float,
                   help="with --challenger-url: share of escalations also asked of the other variant, its answer "
                        "stored beside the served one (default: 0)")
    p.add_argument("--champion-instance",
                   help="with --challenger-url: the champion's instance type on the endpoint config, for the "
                        "report's cost (default: ml.g4dn.xlarge)")
    p.add_argument("--challenger-instance",
                   help="with --challenger-url: the challenger's instance type (default: ml.g4dn.xlarge)")
    p.set_defaults(func=_cmd_local)

    p = sub.add_parser("register", help="record which site and cameras a gateway (IoT thing) may write for, in "
                                        "the results store the router reads (edge-agent provision does it too)")
    p.add_argument("--store", default=os.environ.get(c.STORE_URL, c.DEFAULT_STORE_URL),
                   help=f"dynamodb://TABLE or sqlite:///path (default: ${c.STORE_URL} or {c.DEFAULT_STORE_URL})")
    p.add_argument("--thing", required=True, help="the gateway's IoT thing name")
    p.add_argument("--site", required=True, help="its site")
    p.add_argument("--camera", action="append", required=True, help="a camera id it sends (repeatable)")
    p.set_defaults(func=_cmd_register)

    from cloud.chaos.cli import add_command as add_chaos

    add_chaos(sub)

    from cloud.ab.cli import add_command as add_ab  # champion/challenger

    add_ab(sub)

    p = sub.add_parser("bench-endpoint", help="throughput and latency at batch 1 and the best batch size, "
                                              "over HTTP against the real inference server")
    p.add_argument("--model", help="model manifest (default: the FrameSieve teacher)")
    p.add_argument("--duration", type=float, default=30.0, help="total seconds, shared by the settings (default: 30)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients, one image per request (default: 8)")
    p.add_argument("--batches", default="1,2,4,8", help="--max-batch settings to try (default: 1,2,4,8)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="batcher wait (default: 5)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: its own choice)")
    p.add_argument("--cpu", action="store_true", help="CPU provider only, even where CUDA is available")
    p.set_defaults(func=_cmd_bench)

    from cloud import plan

    p = sub.add_parser("plan", help="the cheapest teacher backend for a fleet that meets the latency objective; "
                                    "prints its name (--json: every option priced)")
    plan.add_arguments(p)
    p.set_defaults(func=plan.run_from_args)

    p = sub.add_parser("bench-lambda", help="the teacher inside the router Lambda, run by awslambdaric against a "
                                            "loopback Runtime API: cold start, latency, GB-seconds per image")
    p.add_argument("--invocations", type=int, default=30, help="warm escalations to time (default: 30)")
    p.add_argument("--memory-mb", type=int, default=1769, help="the function's memory size (default: 1769)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: 1)")
    p.add_argument("--model", help="model manifest (default: the FrameSieve teacher)")
    p.set_defaults(func=_cmd_bench_lambda)

    from cloud.deploy import add_arguments, run_from_args

    p = sub.add_parser("deploy", help="package the router and the teacher, upload them, create or update the "
                                      "AWS stack (infra/cloudformation/framesieve.yaml), streaming its events")
    add_arguments(p)
    p.set_defaults(func=run_from_args)

    from cloud import specialize

    p = sub.add_parser("specialize", help="one step of per-camera specialization in the cloud: sync the camera's "
                                          "training records from S3, fine-tune, champion/challenger, and if "
                                          "promoted upload the bundle and create the gateway's IoT job")
    specialize.add_arguments(p)
    p.set_defaults(func=specialize.run_from_args)

    # The sieve for landed video (issue 20): the edge pipeline and the router together, so it lives in `landed`,
    # above both; this is the one import pyproject.toml lets through from cloud (import-linter's ignore_imports).
    from landed.cli import add_parser as add_sieve_parser

    add_sieve_parser(sub)
    _describe_commands(parser)
    return parser


def _describe_commands(parser: argparse.ArgumentParser) -> None:
    """Each command's `--help` opens with what it does: its one-line help from the command list, where it has
    no description of its own (argparse shows a sub-command's help only in its parent's list)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                if child.description is None and choice.help:
                    child.description = choice.help.replace("%%", "%")  # help is %-formatted, this is not
                _describe_commands(child)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Bare messages: the request log lines are JSON, one per line, as CloudWatch Logs reads them.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):  # their INFO lines are not JSON and say little
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except (ModelError, CloudError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        where = f" on {args.host}:{args.port}" if hasattr(args, "port") else ""
        print(f"error: cannot serve{where}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
