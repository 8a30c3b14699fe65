"""`framesieve-cloud`: the cloud side's command line. `serve` is also the container entry point:
SageMaker starts an inference image as `<image> serve`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from models.exceptions import ModelError


def _cmd_serve(args: argparse.Namespace) -> int:
    from cloud.inference.server import serve_forever

    serve_forever(args.model, args.host, args.port, args.threads, max_batch=args.max_batch,
                  max_wait_ms=args.max_wait_ms, max_body_bytes=args.max_body_bytes,
                  max_images=args.max_images)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cloud.inference.server import MAX_BODY_BYTES

    parser = argparse.ArgumentParser(
        prog="framesieve-cloud",
        description="FrameSieve cloud side: the SageMaker-compatible endpoint the edge escalates to.",
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
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Bare messages: the request log lines are JSON, one per line, as CloudWatch Logs reads them.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
