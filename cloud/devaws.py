"""AWS on loopback for development and tests: `moto_server` as a child process, and the resources the
router needs (table, bucket, SNS topic with an SQS queue subscribed to read the alerts back).

moto's iot-data keeps what is published in memory with no API to read it back, so the server runs with
moto's request recorder on: `published()` reads the verdicts from the recording (what moto received
over HTTP). moto_server comes with the dev extra (`pip install 'framesieve-cascade[dev]'`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cloud.exceptions import ConfigError

DUMMY_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# moto_server answers each request on a thread of its own and its backends take no lock, so two concurrent
# conditional writes can both pass their condition, which DynamoDB itself never allows (a router test saw
# two alerts for one message that way). Serving one request at a time keeps moto as atomic as the service it
# stands in for; moto's own server module is used, only without threads.
_SERIAL_MOTO = (
    "import sys\n"
    "from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app\n"
    "from werkzeug.serving import run_simple\n"
    "run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app), threaded=False,\n"
    "           request_handler=MotoRequestHandler)\n"
)


class MotoServer:
    """`moto_server` on a loopback port, recording the requests it receives into `recording`."""

    def __init__(self, recording: Path, host: str = "127.0.0.1", port: int = 0):
        beside = Path(sys.executable).with_name("moto_server")  # this environment's moto, before any on PATH
        exe = str(beside) if beside.exists() else shutil.which("moto_server")
        if exe is None or not Path(exe).exists():
            raise ConfigError("moto_server is not installed; pip install 'framesieve-cascade[dev]' "
                              "(it brings moto[server])")
        self.host, self.port, self.recording = host, port or free_port(host), Path(recording)
        self.recording.parent.mkdir(parents=True, exist_ok=True)
        self.recording.write_text("")
        env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(self.recording)}
        self.log_path = self.recording.with_suffix(".log")  # moto logs every request: a file, not a pipe
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen([sys.executable, "-c", _SERIAL_MOTO, host, str(self.port)], env=env,
                                            stdout=log_file, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.log_path.read_text(errors="replace")[-800:]
                raise ConfigError(f"moto_server exited with code {self.process.returncode} on port {self.port}: {err}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ConfigError(f"moto_server did not answer on {self.url} within {timeout_s} s")

    def requests(self) -> list[dict[str, Any]]:
        """Every request moto received since it started, in order (method, url, headers, body).

        moto appends to the recording from its own process while we read it, so a read can meet a record
        still being written (cut short, or run into the next one): records are decoded one after the
        other, and a trailing partial one is left for the next read."""
        text = self.recording.read_text()
        decoder = json.JSONDecoder()
        out, i = [], 0
        while i < len(text):
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            try:
                record, i = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                break  # the record moto is writing right now
            out.append(record)
        return out

    def published(self, topic_prefix: str = "") -> list[tuple[str, bytes]]:
        """(topic, payload) of each iot-data Publish moto received."""
        out = []
        for req in self.requests():
            path = urlsplit(req["url"]).path
            if req["method"] == "POST" and path.startswith("/topics/"):
                topic = unquote(path[len("/topics/"):])
                body = req.get("body") or ""
                payload = base64.b64decode(body) if req.get("body_encoded") else body.encode()
                if topic.startswith(topic_prefix):
                    out.append((topic, payload))
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Resources:
    table: str
    bucket: str
    topic_arn: str
    queue_url: str  # subscribed to the topic: the alerts can be read back from it

    def router_env(self) -> dict[str, str]:
        from cloud import constants as c

        return {c.STORE_URL: f"dynamodb://{self.table}", c.TRAINING_BUCKET: self.bucket,
                c.ALERT_TOPIC_ARN: self.topic_arn}


_session: Any = None
_session_lock = threading.Lock()


def dev_client(service: str, endpoint_url: str, region: str = "us-east-1") -> Any:
    """A boto3 client for moto with dummy credentials, from one shared Session (a new Session per client
    reloads the service models: ~0.2 s each)."""
    import boto3

    global _session
    with _session_lock:
        _session = _session or boto3.session.Session()
        return _session.client(service, endpoint_url=endpoint_url, region_name=region,
                               aws_access_key_id="testing", aws_secret_access_key="testing")


def provision(endpoint_url: str, name: str = "framesieve", region: str = "us-east-1") -> Resources:
    """Create the table, the training bucket, the alert topic and a queue subscribed to it."""
    from cloud.stores.dynamodb import create_table

    def make(service: str) -> Any:
        return dev_client(service, endpoint_url, region)

    table, bucket = f"{name}-results", f"{name}-training"
    create_table(make("dynamodb"), table)
    make("s3").create_bucket(Bucket=bucket)
    sns, sqs = make("sns"), make("sqs")
    topic_arn = sns.create_topic(Name=f"{name}-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Resources(table, bucket, topic_arn, queue_url)


def provision_streams(endpoint_url: str, bucket: str, name: str = "framesieve", region: str = "us-east-1",
                      packed_prefix: str = "training-packed/") -> dict[str, str]:
    """The Firehose sink's delivery streams (one per lifecycle, to `bucket` under `<packed_prefix><lifecycle>/`,
    as infra/ deploys them); returns the router's settings for them. moto delivers each PutRecordBatch at
    once, as one uncompressed object (real Firehose buffers and gzips): readers take both."""
    from cloud import constants as c
    from contracts.training import LIFECYCLES

    firehose = dev_client("firehose", endpoint_url, region)
    template = f"{name}-training-{{lifecycle}}"
    for life in LIFECYCLES:
        firehose.create_delivery_stream(
            DeliveryStreamName=template.format(lifecycle=life), DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/framesieve-firehose", "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": f"{packed_prefix}{life}/", "ErrorOutputPrefix": f"{packed_prefix}errors/",
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900}, "CompressionFormat": "GZIP"})
    return {c.TRAINING_SINK: "firehose", c.TRAINING_STREAM: template, c.TRAINING_PACKED_PREFIX: packed_prefix}
