"""The sieve Lambda (a container image: the agent's pipeline, onnxruntime and OpenCV exceed a zip's 250 MB):
invoked by S3 ObjectCreated (a bucket notification, or EventBridge) for each landed object. It sieves an
object whose media is at most the config's lambda_max_segment_s long, and hands a longer one to the sieve's
Fargate task (`framesieve-cloud sieve --bucket B --key K`), so no run meets the Lambda's 900 s limit.

Thin on purpose, as the router's handler: the Sieve (config, router, store, student) is built once per
container from the environment ($FRAMESIEVE_SIEVE_CONFIG, and the router's own variables), then each event is
handed to `process_object`. A failure raises, so Lambda's asynchronous retries take over; message ids derived
from the object make a retry store nothing twice.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from landed import constants as k
from landed.config import SieveError, load_sieve_config
from landed.run import Sieve
from landed.s3 import process_object, s3_objects

log = logging.getLogger("framesieve.sieve")
_sieve: Sieve | None = None


def get_sieve() -> Sieve:
    global _sieve
    if _sieve is None:
        logging.getLogger("framesieve").setLevel(logging.INFO)
        logging.getLogger("edge_agent.frames").setLevel(logging.WARNING)
        where = os.environ.get(k.CONFIG)
        if not where:
            raise SieveError(f"{k.CONFIG} is not set: point it at the sieve config (a file in the image or "
                             "s3://bucket/key)")
        _sieve = Sieve(load_sieve_config(where))
    return _sieve


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    sieve = get_sieve()
    done = [process_object(sieve, bucket, key, in_lambda=True) for bucket, key in s3_objects(event)]
    log.info(json.dumps({"event": "sieve_invocation", "objects": len(done),
                         "statuses": [d["status"] for d in done]}))
    return {"objects": done}
