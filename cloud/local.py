"""`framesieve-cloud local`: the cloud side on loopback, for development, with no AWS account.

- moto_server: S3, DynamoDB, SNS (+ an SQS queue subscribed to the alert topic), iot-data;
- the inference server (the teacher) as the SageMaker endpoint;
- the router, invoked once per escalation POSTed to it: the stand-in for the IoT rule -> Lambda hop;
- with --mqtt, a Mosquitto broker and the IoT rule / iot-data bridge (cloud/bridge.py), so a gateway on
  transport `mqtt` escalates, and gets its verdicts, as it would through AWS IoT Core;
- the results API over the same store, and the operator dashboard at its `/`;
- with --mqtt, the gateways' frame events and telemetry into the store (the dashboard's fleet view).
One line per service says where it listens; Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloud import constants as c
from cloud.devaws import DUMMY_ENV, MotoServer, provision, provision_streams
from cloud.exceptions import ConfigError
from cloud.httpjson import send_json
from cloud.httpserve import LimitedHandler, LimitedServer
from cloud.router.config import RouterConfig
from cloud.router.service import Router
from contracts.codec import MAX_MESSAGE_BYTES, WireError
from contracts.registry import Registration

log = logging.getLogger("framesieve.local")
CHAMPION, CHALLENGER = "champion", "challenger"  # the production variants' names with --challenger-url
DEFAULT_RULES = [{"name": "person-anywhere", "labels": ["person"], "min_score": 0.5, "cooldown_s": 300}]


class RouterServer(LimitedServer):
    """POST /escalations (the escalation JSON; ?thing=NAME, else the X-Thing-Name header, else "local-gw")."""

    def __init__(self, address: tuple[str, int], router: Router):
        self.router = router
        super().__init__(address, _RouterHandler)


class _RouterHandler(LimitedHandler):
    server: RouterServer

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        url = urlsplit(self.path)
        if url.path != "/escalations":
            return self._send(404, {"error": f"no route POST {url.path}; POST the escalation JSON to /escalations"})
        length = self.headers.get("Content-Length", "")
        if not re.match(r"^[0-9]{1,7}$", length) or int(length) > 2 * MAX_MESSAGE_BYTES:
            self.close_connection = True
            return self._send(411 if not length else 413, {
                "error": f"send the escalation with a Content-Length of at most {2 * MAX_MESSAGE_BYTES} bytes"})
        body = self.rfile.read(int(length))
        thing = parse_qs(url.query).get("thing", [self.headers.get("X-Thing-Name") or "local-gw"])[0]
        # As the IoT rule of infra/ does: the message base64-encoded beside the rule's fields (the thing name
        # here is whatever the caller says: the local stack is for loopback development, not a trust boundary)
        event: Any = {c.EVENT_PAYLOAD: base64.b64encode(body).decode(), c.EVENT_THING: thing,
                      c.EVENT_TOPIC: f"framesieve/{thing}/escalations", c.EVENT_RECEIVED_MS: int(time.time() * 1000)}
        outcome = self.server.router.process(event)
        self._send(200 if outcome.status != "dead_letter" else 422, outcome.to_dict())

    def _send(self, status: int, payload: dict) -> None:
        send_json(self, status, payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)


def _serve(server: Any, name: str) -> None:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True).start()


@dataclass
class LocalOptions:
    host: str = "127.0.0.1"
    model: str | None = None
    store_url: str | None = None
    rules_file: str | None = None
    state_dir: str | None = None
    threads: int | None = None
    router_port: int = 0
    api_port: int = 0
    mqtt: bool = False  # a Mosquitto broker and the IoT rule / iot-data bridge, for gateways on transport mqtt
    mqtt_port: int = 0  # with mqtt: this port (0: a free one)
    endpoint_url: str = ""  # an inference server already running (else one is started in this process)
    gateways: list[str] = field(default_factory=list)  # THING=SITE:CAM,...: the router refuses all others
    # champion/challenger: a second `framesieve-cloud serve` as the challenger variant; the endpoint (on moto's
    # sagemaker) then has two production variants, routed by weight by the stand-in of cloud/ab/standin.py
    challenger_url: str = ""
    challenger_weight: float = 0.5  # the challenger's initial share of the traffic
    shadow_share: float = 0.0  # share of escalations also asked of the other variant
    champion_instance: str = "ml.g4dn.xlarge"
    challenger_instance: str = "ml.g4dn.xlarge"
    # where the router keeps training records: "s3" (an object per escalation or gateway batch) or "firehose"
    # (moto's delivery streams, one per lifecycle, which deliver every call at once, uncompressed)
    training_sink: str = "s3"


def parse_gateway(text: str) -> Registration:
    """THING=SITE:CAMERA[,CAMERA...], as `--gateway` takes it."""
    thing, _, rest = text.partition("=")
    site, _, cameras = rest.partition(":")
    try:
        return Registration(thing, site, tuple(c for c in cameras.split(",") if c))
    except WireError as exc:
        raise ConfigError(f"--gateway {text!r}: {exc}; expected THING=SITE:CAMERA[,CAMERA...]") from exc


class LocalCloud:
    """The local stack as a context manager: `framesieve-cloud local` and the fault campaign use it."""

    def __init__(self, options: LocalOptions):
        if options.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"--host {options.host}: the local router takes any thing name it is given; bind it "
                              "to 127.0.0.1")
        self.options = options
        self.state = Path(options.state_dir or tempfile.mkdtemp(prefix="framesieve-local-"))
        self.servers: list[Any] = []
        self.router: Router | None = None
        self.broker: Any = None
        self.bridge: Any = None
        self.lines: list[str] = []

    def __enter__(self) -> LocalCloud:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _start(self) -> None:
        from cloud.api import ApiServer
        from cloud.inference.server import start_in_thread as start_inference

        o, host = self.options, self.options.host
        self.moto = MotoServer(self.state / "moto-recording.jsonl", host)
        resources = self.resources = provision(self.moto.url)
        endpoint, model_name = o.endpoint_url, "(external)"
        if not endpoint:
            variant = {"variant_name": CHAMPION} if o.challenger_url else {}
            inference, inference_port = start_inference(o.model, host, threads=o.threads, **variant)
            self.servers.append(inference)
            endpoint, model_name = f"http://{host}:{inference_port}", inference.model_name
        self.standin = None
        if o.challenger_url:
            endpoint, model_name = self._start_variants(endpoint, model_name)
        rules = Path(o.rules_file).read_text() if o.rules_file else json.dumps(DEFAULT_RULES)
        env = {**DUMMY_ENV, "AWS_ENDPOINT_URL": self.moto.url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint,
               **resources.router_env(), c.ALERT_RULES: rules}
        if o.training_sink == "firehose":
            env.update(provision_streams(self.moto.url, resources.bucket))
        elif o.training_sink == "s3":
            env[c.TRAINING_SINK] = "s3"
        else:
            raise ConfigError(f"--training-sink {o.training_sink!r}: expected s3 or firehose")
        if o.mqtt:
            from cloud.bridge import IotDataServer
            from cloud.devmqtt import Mosquitto

            self.broker = Mosquitto(self.state / "mosquitto", o.mqtt_port)
            iot_data = IotDataServer((host, 0), self.broker.port)
            _serve(iot_data, "framesieve-iot-data")
            self.servers.append(iot_data)
            env[c.IOT_DATA_ENDPOINT] = iot_data.url
        if self.standin is not None:
            env.update({c.AB_VARIANTS: f"{CHAMPION},{CHALLENGER}", c.SHADOW_SHARE: repr(o.shadow_share)})
        os.environ.update(env)
        os.environ.pop(c.ALERT_RULES_FILE, None)
        if o.store_url:
            os.environ[c.STORE_URL] = o.store_url
        entries = [parse_gateway(g) for g in o.gateways]
        self.router = Router(RouterConfig.from_env())
        for entry in entries:  # what `edge-agent provision --registry-table` does in AWS
            self.router.store.register_gateway(entry)
        registered = ", ".join(f"{e.thing} ({e.site}: {len(e.cameras)} cameras)" for e in entries) or \
            "none registered: every escalation is refused; pass --gateway THING=SITE:CAM,..."
        router_server = RouterServer((host, o.router_port), self.router)
        self.token_file = self.state / "api-token"
        token = secrets.token_urlsafe(32)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        from cloud.dashboard.web import s3_reader

        self.api = ApiServer((host, o.api_port), self.router.store, token, training_reader=s3_reader())
        for server, name in ((router_server, "framesieve-router"), (self.api, "framesieve-api")):
            _serve(server, name)
            self.servers.append(server)
        self.lines = [
            f"moto_server      http://{host}:{self.moto.port}  (S3, DynamoDB, SNS, SQS, iot-data; AWS_ENDPOINT_URL)",
            f"inference        {endpoint}  (SageMaker endpoint {self.router.config.endpoint_name!r}, "
            f"model {model_name})",
            f"router           http://{host}:{router_server.server_address[1]}/escalations  (POST escalation "
            "JSON; stands in for the IoT rule -> Lambda)",
            f"results API      http://{host}:{self.api.server_address[1]}/health  (Authorization: Bearer <the token "
            f"in {self.token_file}>)",
            f"dashboard        http://{host}:{self.api.server_address[1]}/  (log in with the same token)",
            f"store            {os.environ[c.STORE_URL]}; training data s3://{resources.bucket}/"
            + (f"{self.router.config.training_packed_prefix} (through Firehose streams "
               f"{self.router.config.training_stream!r})" if self.router.config.training_sink == "firehose"
               else self.router.config.training_prefix)
            + f"; alerts {resources.topic_arn} -> {resources.queue_url}",
        ]
        if self.broker is not None:
            from cloud.bridge import IotRuleBridge

            self.bridge = IotRuleBridge(self.router, self.broker.port)
            self.lines.append(
                f"mqtt broker      {self.broker.url}  (gateways: escalation.transport mqtt, mqtt.host {host}, "
                f"mqtt.port {self.broker.port}; the IoT rule and iot-data bridge route and answer)")
        if self.standin is not None:
            self.lines += self.ab_lines
        self.lines.append(f"gateways         {registered}")
        self.lines.append(f"state            {self.state}")

    def _start_variants(self, champion: str, model_name: str) -> tuple[str, str]:
        """The endpoint with two production variants, as the stack deploys it with a challenger: created on moto's
        sagemaker (so `framesieve-cloud ab promote` works on it), served by the variant stand-in at its weights."""
        from cloud.ab.standin import Variant, endpoint_weights
        from cloud.ab.standin import start_in_thread as start_standin
        from cloud.devaws import dev_client

        o = self.options
        if not 0 <= o.challenger_weight <= 1:
            raise ConfigError(f"--challenger-weight {o.challenger_weight}: expected the challenger's share of the "
                              "traffic in [0, 1]")
        name = os.environ.get(c.ENDPOINT_NAME) or c.DEFAULT_ENDPOINT_NAME
        sagemaker = dev_client("sagemaker", self.moto.url)
        role = "arn:aws:iam::123456789012:role/framesieve-endpoint"
        variants = []
        for variant, weight, itype in ((CHAMPION, 1 - o.challenger_weight, o.champion_instance),
                                       (CHALLENGER, o.challenger_weight, o.challenger_instance)):
            sagemaker.create_model(ModelName=f"{name}-{variant}", ExecutionRoleArn=role, PrimaryContainer={
                "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/framesieve-inference:local",
                "ModelDataUrl": f"s3://framesieve-local/{variant}/model.tar.gz"})
            variants.append({"VariantName": variant, "ModelName": f"{name}-{variant}", "InstanceType": itype,
                             "InitialInstanceCount": 1, "InitialVariantWeight": weight})
        sagemaker.create_endpoint_config(EndpointConfigName=f"{name}-ab", ProductionVariants=variants)
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-ab")
        self.standin = start_standin(name, [Variant(CHAMPION, champion), Variant(CHALLENGER, o.challenger_url)],
                                     self.options.host, weights=lambda: endpoint_weights(sagemaker, name))
        self.servers.append(self.standin)
        self.ab_lines = [f"variants         {CHAMPION} {champion} ({o.champion_instance}), {CHALLENGER} "
                         f"{o.challenger_url} ({o.challenger_instance}); weights {endpoint_weights(sagemaker, name)} "
                         f"on moto's sagemaker (framesieve-cloud ab promote); shadow share {o.shadow_share:g}"]
        return self.standin.url, f"{model_name} + challenger"

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts SNS delivered to the stack's queue since the last call (read and removed)."""
        from cloud.devaws import dev_client

        sqs = dev_client("sqs", self.moto.url)
        got = sqs.receive_message(QueueUrl=self.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        out = []
        for message in got.get("Messages", []):
            sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
            try:
                out.append(json.loads(json.loads(message["Body"])["Message"]))
            except (KeyError, TypeError, ValueError):
                log.warning("an alert that is not FrameSieve's: %.200s", message.get("Body"))
        return out

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
        for server in reversed(self.servers):  # API, router, then the endpoint the router may still be calling
            if hasattr(server, "drain"):
                server.drain(10)  # in-flight requests answered, new ones 503
            server.shutdown()
            server.server_close()
        if self.router is not None:
            self.router.store.close()
        if self.broker is not None:
            self.broker.stop()
        if getattr(self, "moto", None) is not None:
            self.moto.stop()


def run_local(options: LocalOptions, stop: threading.Event | None = None) -> None:
    """Bring everything up, print where each part listens, and wait for Ctrl-C/SIGTERM (or `stop`)."""
    stop = stop or threading.Event()
    with LocalCloud(options) as cloud:
        print("\n".join([*cloud.lines, "ready; Ctrl-C stops everything"]), flush=True)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            for alert in cloud.alerts():  # what an SNS subscriber would get, shown where the user looks
                hits = ", ".join(f"{a['rule']} ({a['label']} {a['score']})" for a in alert.get("alerts", []))
                print(f"alert            {alert.get('time_utc')} camera {alert.get('camera')} (site "
                      f"{alert.get('site')}, gateway {alert.get('thing')}): {hits}", flush=True)
        print("stopping", flush=True)
    if cloud.bridge is not None:  # closed: its workers finished, so these are what the store got
        print(cloud.bridge.summary_line(), flush=True)
