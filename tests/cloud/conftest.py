"""Real parts for the cloud tests, started and stopped here, loopback only: `moto_server` (S3, DynamoDB,
SNS, SQS, iot-data) as a child process, and the project's own inference server as the SageMaker endpoint.
boto3 reaches them through AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME and dummy credentials."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import pytest

from cloud import constants as c
from cloud.devaws import DUMMY_ENV, MotoServer, Resources, dev_client, provision
from cloud.router.config import RouterConfig
from cloud.router.service import Router
from cloud.stores import open_store
from contracts.registry import Registration
from contracts.wire import Crop, EscalationRequest

CAMERA, SITE, THING = "plaza", "site-1", "gw-plaza"
CAMERAS = (CAMERA, "plaza-2", "empty-cam")  # registered to THING in every stack
PERSON_RULE = [{"name": "any-person", "labels": ["person"], "cameras": ["plaza*"], "min_score": 0.3,
                "cooldown_s": 300}]


@pytest.fixture(scope="session")
def moto(tmp_path_factory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "recording.jsonl")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def teacher_endpoint(teacher_server_url) -> str:
    """Base URL of the teacher inference server (boto3 appends /endpoints/{name}/invocations)."""
    return teacher_server_url.rsplit("/invocations", 1)[0]


@pytest.fixture()
def aws_env(monkeypatch, moto, teacher_endpoint, tmp_path) -> dict[str, str]:
    """The process environment a Lambda would see, pointed at moto and the teacher server."""
    env = {**DUMMY_ENV, "AWS_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": teacher_endpoint,
           "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in (c.ALERT_RULES_FILE,):
        monkeypatch.delenv(key, raising=False)
    return env


def aws(service: str, endpoint_url: str) -> Any:
    return dev_client(service, endpoint_url)


@dataclass
class Stack:
    """A fresh set of AWS resources on moto, and a Router configured through the environment for them."""

    moto: MotoServer
    resources: Resources
    router: Router
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return aws(service, self.moto.url)

    def alerts(self, wait_s: int = 0) -> list[dict]:
        """Alerts delivered to the queue subscribed to the topic (deleted once read)."""
        sqs, out = self.client("sqs"), []
        while True:
            reply = sqs.receive_message(QueueUrl=self.resources.queue_url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=wait_s)
            msgs = reply.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(json.loads(m["Body"])["Message"]))
                sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=m["ReceiptHandle"])
            wait_s = 0

    def training_keys(self) -> list[str]:
        reply = self.client("s3").list_objects_v2(Bucket=self.resources.bucket)
        return [o["Key"] for o in reply.get("Contents", [])]

    def result_items(self) -> list[dict]:
        items = self.client("dynamodb").scan(TableName=self.resources.table)["Items"]
        return [i for i in items if i["pk"]["S"].startswith("CAM#")]


def make_stack(monkeypatch, moto: MotoServer, env: dict[str, str], **settings: str) -> Stack:
    resources = provision(moto.url, name=f"t{uuid.uuid4().hex[:10]}")
    router_env = {**resources.router_env(), c.ALERT_RULES: json.dumps(PERSON_RULE), c.ENDPOINT_BACKOFF_S: "0.01",
                  **settings}
    for key, value in router_env.items():
        monkeypatch.setenv(key, value)
    router = Router(RouterConfig.from_env())
    router.store.register_gateway(Registration(THING, SITE, CAMERAS))
    return Stack(moto, resources, router, {**env, **router_env})


@pytest.fixture()
def stack(monkeypatch, moto, aws_env) -> Iterator[Stack]:
    made = make_stack(monkeypatch, moto, aws_env)
    yield made
    made.router.store.close()


@pytest.fixture(scope="session")
def plaza_crops(vtest_frames) -> tuple[Crop, ...]:
    """Two real crops of a vtest frame with people in both halves, as the edge would send them."""
    frame = vtest_frames[1]
    crops = []
    for crop_id, (x1, x2) in enumerate(((0, 384), (384, 768))):
        jpeg = cv2.imencode(".jpg", frame[:, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        crops.append(Crop(crop_id, (float(x1), 0.0, float(x2), 576.0), jpeg, (x2 - x1, 576)))
    return tuple(crops)


def escalation_event(crops: tuple[Crop, ...], *, message_id: str | None = None, camera: str = CAMERA,
                     created_s: float = 1_764_400_000.0, thing: str = THING, site: str = SITE,
                     received_s: float | None = None, student: tuple = (), reason: str = "uncertain") -> dict[str, Any]:
    """The escalation as the older `SELECT *` IoT rule delivers it: the edge's JSON plus the rule's fields
    (received 0.25 s after created_s unless told)."""
    request = EscalationRequest(message_id=message_id or str(uuid.uuid4()), camera=camera, frame_index=150,
                                pts_s=15.0, reason=reason, crops=crops, site=site, created_s=created_s,
                                student=student)
    received = created_s + 0.25 if received_s is None else received_s
    return {**request.to_payload(), **rule_fields(thing, received)}


def rule_fields(thing: str, received_s: float) -> dict[str, Any]:
    return {"topic": f"framesieve/{thing}/escalations", "thing_name": thing, "received_ms": int(received_s * 1000),
            "client_id": thing}


def rule_event(payload: dict[str, Any] | bytes, thing: str, received_s: float) -> dict[str, Any]:
    """The escalation as the IoT rule of infra/ delivers it: the message base64-encoded beside the rule's
    fields, so nothing in the message can stand for them."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"payload_b64": base64.b64encode(raw).decode(), **rule_fields(thing, received_s)}


@pytest.fixture(params=["sqlite", "dynamodb"])
def any_store(request, tmp_path, monkeypatch, moto):
    """Each results store backend: SQLite in a temp file, DynamoDB on moto (a fresh table)."""
    if request.param == "sqlite":
        store = open_store(f"sqlite://{tmp_path / 'results.sqlite'}")
    else:
        for key, value in DUMMY_ENV.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
        from cloud.stores.dynamodb import create_table

        table = f"t{uuid.uuid4().hex[:10]}"
        create_table(aws("dynamodb", moto.url), table)
        store = open_store(f"dynamodb://{table}")
    yield store
    store.close()
