#!/bin/sh
# SageMaker starts an inference image as `<image> serve` and sends traffic to port 8080 of the container, so
# `serve` must listen on every interface there (its own default is loopback, for development).
set -eu
if [ "${1:-serve}" = "serve" ]; then
  [ "$#" -gt 0 ] && shift
  exec framesieve-cloud serve --host 0.0.0.0 --port "${SAGEMAKER_BIND_TO_PORT:-8080}" "$@"
fi
exec framesieve-cloud "$@"
