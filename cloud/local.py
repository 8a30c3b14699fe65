"""`framesieve-cloud local`: the cloud side on loopback, for development, with no AWS account.

- moto_server: S3, DynamoDB, SNS (+ an SQS queue subscribed to the alert topic), iot-data;
- the inference server (the teacher) as the SageMaker endpoint;
- the router, invoked once per escalation POSTed to it: the stand-in for the IoT rule -> Lambda hop;
- the results API over the same store.
One line per service says where it listens; Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloud import constants as c
from cloud.devaws import DUMMY_ENV, MotoServer, provision
from cloud.exceptions import ConfigError
from cloud.httpjson import send_json
from cloud.router.config import RouterConfig
from cloud.router.service import Router

log = logging.getLogger("framesieve.local")
DEFAULT_RULES = [{"name": "person-anywhere", "labels": ["person"], "min_score": 0.5, "cooldown_s": 300}]


class RouterServer(ThreadingHTTPServer):
    """POST /escalations (the escalation JSON; ?thing=NAME, else the X-Thing-Name header, else "local-gw")."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], router: Router):
        self.router = router
        super().__init__(address, _RouterHandler)


class _RouterHandler(BaseHTTPRequestHandler):
    server: RouterServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        url = urlsplit(self.path)
        if url.path != "/escalations":
            return self._send(404, {"error": f"no route POST {url.path}; POST the escalation JSON to /escalations"})
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self._send(411, {"error": "send the escalation with a Content-Length header"})
        body = self.rfile.read(int(length))
        thing = parse_qs(url.query).get("thing", [self.headers.get("X-Thing-Name") or "local-gw"])[0]
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        # As the IoT rule does: the message's JSON plus the topic and the thing name; raw text if not JSON.
        event: Any = {**payload, c.EVENT_TOPIC: f"framesieve/{thing}/escalations", c.EVENT_THING: thing,
                      c.EVENT_RECEIVED_MS: int(time.time() * 1000)} if isinstance(payload, dict) else body
        outcome = self.server.router.process(event)
        self._send(200 if outcome.status != "dead_letter" else 422, outcome.to_dict())

    def _send(self, status: int, payload: dict) -> None:
        send_json(self, status, payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)


def _serve(server: ThreadingHTTPServer, name: str) -> None:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True).start()


def run_local(host: str = "127.0.0.1", model: str | None = None, store_url: str | None = None,
              rules_file: str | None = None, state_dir: str | None = None, threads: int | None = None,
              router_port: int = 0, api_port: int = 0, stop: threading.Event | None = None) -> None:
    """Bring everything up, print where each part listens, and wait for Ctrl-C/SIGTERM (or `stop`)."""
    from cloud.api import ApiServer
    from cloud.inference.server import start_in_thread as start_inference

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"--host {host}: the local stack has no authentication; bind it to 127.0.0.1")
    stop = stop or threading.Event()
    state = Path(state_dir or tempfile.mkdtemp(prefix="framesieve-local-"))
    moto = MotoServer(state / "moto-recording.jsonl", host)
    servers: list[Any] = []
    router: Router | None = None
    try:
        resources = provision(moto.url)
        inference, inference_port = start_inference(model, host, threads=threads)
        servers.append(inference)
        rules = Path(rules_file).read_text() if rules_file else json.dumps(DEFAULT_RULES)
        os.environ.update({**DUMMY_ENV, "AWS_ENDPOINT_URL": moto.url,
                           "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://{host}:{inference_port}",
                           **resources.router_env(), c.ALERT_RULES: rules})
        os.environ.pop(c.ALERT_RULES_FILE, None)
        if store_url:
            os.environ[c.STORE_URL] = store_url
        router = Router(RouterConfig.from_env())
        router_server = RouterServer((host, router_port), router)
        api = ApiServer((host, api_port), router.store)
        for server, name in ((router_server, "framesieve-router"), (api, "framesieve-api")):
            _serve(server, name)
            servers.append(server)
        lines = [
            f"moto_server      http://{host}:{moto.port}  (S3, DynamoDB, SNS, SQS, iot-data; AWS_ENDPOINT_URL)",
            f"inference        http://{host}:{inference_port}  (SageMaker endpoint "
            f"{router.config.endpoint_name!r}, model {inference.model_name})",
            f"router           http://{host}:{router_server.server_address[1]}/escalations  (POST escalation "
            "JSON; stands in for the IoT rule -> Lambda)",
            f"results API      http://{host}:{api.server_address[1]}/health",
            f"store            {os.environ[c.STORE_URL]}; training data s3://{resources.bucket}/"
            f"{router.config.training_prefix}; alerts {resources.topic_arn} -> {resources.queue_url}",
            f"state            {state}",
            "ready; Ctrl-C stops everything",
        ]
        print("\n".join(lines), flush=True)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
        print("stopping", flush=True)
    finally:
        for server in reversed(servers):
            server.shutdown()
            server.server_close()
        if router is not None:
            router.store.close()
        moto.stop()
