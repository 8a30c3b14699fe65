"""`framesieve-cloud specialize`: the per-camera specialization loop run in the cloud, one step per call
(a schedule runs it: cron, EventBridge, a CI job).

1. sync: the router's training records of one camera (`<prefix><site>/<camera>/<day>/<id>.json` in the
   training bucket) and the site's batch objects (`<prefix><site>/=batches/...`, one per gateway batch, its
   records of several cameras) into a local folder, downloading only what is new;
2. specialize: fine-tune the camera's current student (the champion) on them, champion/challenger on the
   newest records (models/student/specialize.py; needs the train extra);
3. roll out, if promoted: the bundle (models/bundle.py) is uploaded content-addressed, a presigned URL is
   made, and an AWS IoT job whose document (contracts/jobs.py) names the camera and its rollback limits
   targets the gateway's thing. The gateway installs it for that camera only, checks it on live frames and
   rolls it back itself if it does worse (edge_agent/specialization/).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.exceptions import CloudError
from contracts.training import BATCH_FOLDER, LIFECYCLES, PACKED_SUFFIX
from models.student.decision import Decision
from models.student.defaults import DEFAULTS, SpecializationDefaults

log = logging.getLogger(__name__)
PRESIGN_S = 7 * 24 * 3600  # a gateway offline for a week can still fetch its update
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class Options:
    bucket: str
    site: str
    camera: str
    champion: Path
    out: Path
    thing: str | None = None
    prefix: str = "training-data/"
    models_prefix: str = "models/cameras/"
    epochs: int = DEFAULTS.epochs
    target_recall: float = DEFAULTS.target_recall
    min_records: int = DEFAULTS.min_records
    endpoint_url: str | None = None
    region: str | None = None
    rules: SpecializationDefaults = DEFAULTS  # promotion and guard rules; epochs etc. above override them
    packed_prefix: str = "training-packed/"  # where the Firehose sink's streams deliver (one folder per lifecycle)
    records: Path | None = None  # the synced records' folder (default: out/records); share it between cameras


def sync_records(s3: Any, bucket: str, prefix: str, dest: Path, packed: bool = False) -> tuple[int, int]:
    """Download the objects under `prefix` that `dest` lacks (same relative path and size); returns
    (objects there now, downloaded). `packed`: the Firehose sink's objects (any name; kept as `<name>.jsonl`)."""
    total = fetched = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not packed and not obj["Key"].endswith(".json"):
                continue
            total += 1
            name = obj["Key"][len(prefix):]
            local = dest / (name + PACKED_SUFFIX if packed and not name.endswith(PACKED_SUFFIX) else name)
            if local.is_file() and local.stat().st_size == obj["Size"]:
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_suffix(".part")
            s3.download_file(bucket, obj["Key"], str(tmp))
            tmp.replace(local)
            fetched += 1
    return total, fetched


def publish(s3: Any, iot: Any, options: Options, challenger: Path, decision: Decision) -> dict:
    """Upload the promoted challenger's bundle and create the camera's model-update job (or, without a
    thing, just return the job document)."""
    from models.bundle import pack_bundle

    version = json.loads(challenger.read_text())["version"]
    bundle = options.out / "bundle.tar.gz"
    sha256 = pack_bundle(challenger, bundle)
    key = f"{options.models_prefix}{options.camera}/{sha256}.tar.gz"  # content-addressed: a re-run re-uses it
    s3.upload_file(str(bundle), options.bucket, key)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": options.bucket, "Key": key},
                                    ExpiresIn=PRESIGN_S)
    document = decision.camera_job(version, url, sha256).model_dump(exclude_none=True)
    out = {"bundle": f"s3://{options.bucket}/{key}", "document": document}
    if options.thing:
        thing_arn = iot.describe_thing(thingName=options.thing)["thingArn"]
        job_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"specialize-{options.camera}-{int(time.time())}")[:64]
        iot.create_job(jobId=job_id, targets=[thing_arn], document=json.dumps(document),
                       description=f"specialized student {version} for camera {options.camera}"[:2028])
        out["job_id"] = job_id
    return out


def run(options: Options) -> dict:
    from cloud.awscalls import client

    for what, value in (("--site", options.site), ("--camera", options.camera)):
        if not _NAME.match(value):
            raise CloudError(f"{what} {value!r} must be 1-64 letters, digits, '_', '.' or '-'")
    try:
        from models.student.specialize import specialize
    except ImportError as exc:
        raise CloudError("training needs PyTorch, the train extra (pip install 'framesieve-cascade[train]'): "
                         f"{exc}") from exc
    s3 = client("s3", endpoint_url=options.endpoint_url, region_name=options.region)
    # a packed object holds the whole fleet's records: one folder shared by every camera's run fetches it once
    records = options.records or options.out / "records"
    prefix = f"{options.prefix}{options.site}/{options.camera}/"
    total, fetched = sync_records(s3, options.bucket, prefix, records)
    log.info("camera %s: %d training records in s3://%s/%s (%d new)", options.camera, total, options.bucket,
             prefix, fetched)
    # the router's per-batch objects hold the records of every camera of a gateway batch: the site's are synced
    # (incrementally, as above) and load_records keeps this camera's
    batches = f"{options.prefix}{options.site}/{BATCH_FOLDER}/"
    batch_objects, batch_fetched = sync_records(s3, options.bucket, batches, records / BATCH_FOLDER)
    log.info("site %s: %d batch training objects in s3://%s/%s (%d new)", options.site, batch_objects,
             options.bucket, batches, batch_fetched)
    # the Firehose sink's packed objects hold the whole fleet's records (no per-site folder: Firehose's dynamic
    # partitioning would bill extra): every new one is synced once into this folder and read for this camera's
    packed_objects = packed_fetched = 0
    for life in LIFECYCLES:
        n, got = sync_records(s3, options.bucket, f"{options.packed_prefix}{life}/", records / "=packed" / life,
                              packed=True)
        packed_objects, packed_fetched = packed_objects + n, packed_fetched + got
    log.info("%d packed training objects in s3://%s/%s (%d new)", packed_objects, options.bucket,
             options.packed_prefix, packed_fetched)
    decision = specialize(options.camera, records, options.champion, options.out / "challenger", options.rules,
                          epochs=options.epochs, target_recall=options.target_recall, min_records=options.min_records)
    result = {"camera": options.camera, "records": total, "downloaded": fetched, "batch_objects": batch_objects,
              "batch_objects_downloaded": batch_fetched, "packed_objects": packed_objects,
              "packed_objects_downloaded": packed_fetched, "promote": decision.promote,
              "verdict": decision.verdict, "why": decision.why}
    if decision.promote:
        iot = client("iot", endpoint_url=options.endpoint_url, region_name=options.region) if options.thing else None
        result.update(publish(s3, iot, options, options.out / "challenger" / "manifest.json", decision))
    return result


def add_arguments(p: Any) -> None:
    p.add_argument("--bucket", required=True, help="the training bucket the router writes records to")
    p.add_argument("--site", required=True, help="the gateway's site (as in its agent config)")
    p.add_argument("--camera", required=True, help="the camera id")
    p.add_argument("--from", dest="champion", required=True,
                   help="the camera's current student manifest, the champion (the fleet's student at first)")
    p.add_argument("--out", required=True, help="working folder: synced records, the challenger, the bundle")
    p.add_argument("--thing", help="the gateway's IoT thing: create a model-update job for it if promoted "
                                   "(without it, the job document is printed only)")
    p.add_argument("--prefix", default="training-data/", help="the router's training prefix (default: "
                                                               "training-data/)")
    p.add_argument("--packed-prefix", default="training-packed/",
                   help="where the router's Firehose delivery streams put packed records, a folder per lifecycle "
                        "(default: training-packed/; FRAMESIEVE_TRAINING_SINK=firehose)")
    p.add_argument("--records", help="the folder records are synced into (default: OUT/records); give every "
                                      "camera's run the same one, so each packed object is fetched once")
    p.add_argument("--models-prefix", default="models/cameras/", help="where bundles go in the bucket")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                   help=f"fine-tuning epochs (default: {DEFAULTS.epochs})")
    p.add_argument("--target-recall", type=float, default=DEFAULTS.target_recall,
                   help=f"presence recall the lower bound must reach (default: {DEFAULTS.target_recall})")
    p.add_argument("--min-records", type=int, default=DEFAULTS.min_records,
                   help=f"refuse with fewer records (default: {DEFAULTS.min_records})")
    p.add_argument("--rules", help="promotion and guard rules as JSON (models/student/defaults.py's fields)")
    p.add_argument("--endpoint-url", help="AWS endpoint override (e.g. a moto_server for a dry run)")
    p.add_argument("--region", help="AWS region (default: your AWS configuration's)")


def run_from_args(args: Any) -> int:
    options = Options(args.bucket, args.site, args.camera, Path(args.champion), Path(args.out), args.thing,
                      args.prefix, args.models_prefix, args.epochs, args.target_recall, args.min_records,
                      args.endpoint_url, args.region,
                      SpecializationDefaults.model_validate_json(Path(args.rules).read_text()) if args.rules
                      else DEFAULTS, packed_prefix=args.packed_prefix,
                      records=Path(args.records) if args.records else None)
    result = run(options)
    print(json.dumps(result, indent=2))
    return 0
