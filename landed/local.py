"""`framesieve-cloud sieve --local CLIP`: the whole S3 path on one machine, for trying it and for measuring it.
The loopback stack of `framesieve-cloud local` (moto_server: S3, DynamoDB, SNS; the router's environment), the
teacher as `framesieve-cloud serve` in its own process (so the sieve's CPU time counts the pipeline alone),
the clip landed in a bucket under the first camera's s3_prefix, then sieved as the Lambda would."""

from __future__ import annotations

import time
from pathlib import Path

from cloud.devaws import dev_client
from cloud.local import LocalCloud, LocalOptions
from edge_agent.bench.runner import local_inference_server
from landed.config import SieveConfig, SieveError
from landed.run import Sieve, SieveRun
from landed.s3 import process_object

BUCKET = "landed-video"


def sieve_local(config: SieveConfig, clip: Path) -> tuple[dict, SieveRun | None]:
    """What the run did (the JSON the command prints) and the run itself (its per-frame lines)."""
    if not clip.is_file():
        raise SieveError(f"--local {clip}: no such file; give a video file to land and sieve")
    camera = next((c for c in config.cameras if c.s3_prefix), None)
    if camera is None:
        raise SieveError("--local needs a camera with an s3_prefix in the sieve config")
    with local_inference_server() as url, \
            LocalCloud(LocalOptions(endpoint_url=url.rsplit("/invocations", 1)[0])) as cloud:
        s3 = dev_client("s3", cloud.moto.url)
        s3.create_bucket(Bucket=camera.bucket or BUCKET)
        key = f"{camera.s3_prefix}{clip.name}"
        s3.upload_file(str(clip), camera.bucket or BUCKET, key,
                       ExtraArgs={"Metadata": {"start-time": f"{time.time() - 60:.3f}"}})
        started = time.perf_counter()
        sieve = Sieve(config)
        result = process_object(sieve, camera.bucket or BUCKET, key)
        result["total_wall_s"] = round(time.perf_counter() - started, 3)  # with the start: the store, the model
        result["store"] = sieve.router.config.store_url
        return result, sieve.last_run
