"""Landed objects: which ones an S3 event names, fetching one, and whether the Lambda runs it or hands it to
the Fargate task (a segment longer than `lambda_max_segment_s`, README: the serverless path)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

import cv2

from landed import constants as k
from landed.config import SieveError, epoch_seconds
from landed.run import Sieve

START_METADATA = "start-time"  # x-amz-meta-start-time on the object: when its first frame was recorded


def s3_objects(event: Any) -> list[tuple[str, str]]:
    """(bucket, key) of each object an event names: an S3 notification (Records[].s3, keys URL-encoded) or an
    EventBridge "Object Created" event (detail.bucket / detail.object)."""
    if isinstance(event, dict) and isinstance(event.get("detail"), dict):
        detail = event["detail"]
        return [(detail["bucket"]["name"], detail["object"]["key"])]
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]))
                for r in event["Records"] if isinstance(r, dict) and "s3" in r]
    raise SieveError(f"not an S3 object event: {str(event)[:200]}; expected Records[].s3 or EventBridge detail")


def segment_seconds(path: Path) -> float:
    """The media duration of a video file from its container (frames / fps), or inf when it does not say."""
    cap = cv2.VideoCapture(str(path))
    try:
        frames, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return frames / fps if fps > 0 and frames > 0 and math.isfinite(frames / fps) else math.inf


def _s3():
    import boto3

    return boto3.client("s3")


@dataclass
class Fetched:
    bucket: str
    key: str
    etag: str
    path: Path
    folder: Path
    start_s: float | None = None  # when the segment's first frame was recorded: its `start-time` metadata


    @property
    def origin(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.etag}"

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def fetch(bucket: str, key: str) -> Fetched:
    """The object in a fresh local folder (a Lambda's /tmp holds up to 10 GB), with its ETag."""
    folder = Path(tempfile.mkdtemp(prefix="framesieve-sieve-", dir=os.environ.get(k.WORK_DIR) or None))
    suffix = PurePosixPath(key).suffix[:8] or ".video"
    path = folder / f"segment{suffix}"
    client = _s3()
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        client.download_file(bucket, key, str(path))
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Fetched(bucket, key, str(head.get("ETag", "")).strip('"'), path, folder,
                   start_time(head.get("Metadata", {}).get(START_METADATA), f"s3://{bucket}/{key}"))


def start_time(text: str | None, where: str) -> float | None:
    """The `start-time` metadata of a landed object (x-amz-meta-start-time: epoch seconds or an ISO time with
    its zone): when its first frame was recorded. None when absent; SieveError when not a time."""
    if not text:
        return None
    try:
        return epoch_seconds(text)
    except ValueError:
        raise SieveError(f"{where}: metadata {START_METADATA}={text!r:.60} is not a time; give epoch seconds or an "
                         "ISO time such as 2026-12-03T04:00:00Z") from None


def process_object(sieve: Sieve, bucket: str, key: str, in_lambda: bool = False) -> dict:
    """What the Lambda does with one object: run it, or, when it is longer than the Lambda is sized for,
    start the Fargate task on it. Returns what was done."""
    camera = sieve.config.camera_for_object(bucket, key)
    got = fetch(bucket, key)
    try:
        seconds = segment_seconds(got.path)
        if in_lambda and seconds > sieve.config.lambda_max_segment_s:
            task = hand_off(bucket, key)
            return {"status": "handed_off", "object": got.origin, "segment_s": round(seconds, 3), "task": task}
        starts = {camera.id: got.start_s} if got.start_s is not None else None
        run = sieve.run([(camera, str(got.path))], got.origin, got.folder / "work", starts)
        return {"status": "sieved", "segment_s": round(seconds, 3), **run.to_dict()}
    finally:
        got.close()


def hand_off(bucket: str, key: str) -> str:
    """Start the sieve's Fargate task on one object (`framesieve-cloud sieve --bucket B --key K`); its ARN."""
    import boto3

    cluster, task_def = os.environ.get(k.CLUSTER, ""), os.environ.get(k.TASK_DEFINITION, "")
    if not cluster or not task_def:
        raise SieveError(f"s3://{bucket}/{key} is longer than lambda_max_segment_s and no Fargate task is configured "
                         f"({k.CLUSTER}, {k.TASK_DEFINITION}); deploy with SieveFargate=true or raise the limit")
    subnets = [s for s in os.environ.get(k.SUBNETS, "").split(",") if s]
    groups = [s for s in os.environ.get(k.SECURITY_GROUPS, "").split(",") if s]
    container = os.environ.get(k.CONTAINER) or k.DEFAULT_CONTAINER
    network = {"networkConfiguration": {"awsvpcConfiguration": {
        "subnets": subnets, "securityGroups": groups, "assignPublicIp": "DISABLED"}}} if subnets else {}
    reply = boto3.client("ecs").run_task(
        cluster=cluster, taskDefinition=task_def, launchType="FARGATE", count=1, **network,
        overrides={"containerOverrides": [{"name": container, "command": [
            "framesieve-cloud", "sieve", "--bucket", bucket, "--key", key]}]})
    if reply.get("failures"):
        raise SieveError(f"the Fargate task for s3://{bucket}/{key} did not start: {reply['failures']}")
    return reply["tasks"][0]["taskArn"]
