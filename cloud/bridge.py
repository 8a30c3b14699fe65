"""The AWS IoT Core hop on loopback, so a real gateway (transport `mqtt`) talks to the local cloud:

- `IotRuleBridge`: subscribes to every gateway's `{prefix}/+/escalations` on a broker and hands each message
  to the router as the topic rule does (the message base64-encoded in `payload_b64` beside `topic`, `topic(2)`
  as `thing_name`, `received_ms`, `client_id`; rule SQL in infra/cloudformation/framesieve.yaml), on a few
  workers (Lambda's concurrency);
- the events and telemetry rules: each gateway's `{prefix}/+/events` (frame events and specialization steps)
  and `/telemetry` into the results store (cloud/dashboard/ingest.py), which the dashboard reads;
- `IotDataServer`: the iot-data Publish API (`POST /topics/{topic}?qos=N`) that the router calls for
  verdicts, forwarding each to the broker, where the gateway waits for it as it would on IoT Core.
Neither is AWS: they stand in for its contracts, and the router's code runs unchanged between them.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cloud import constants as c
from cloud.dashboard.ingest import ingest
from cloud.exceptions import ConfigError
from cloud.httpjson import send_json
from cloud.router.service import Router
from contracts.codec import MAX_MESSAGE_BYTES

log = logging.getLogger("framesieve.bridge")


def _paho() -> Any:
    try:
        import paho.mqtt.client as paho
    except ImportError as exc:  # the cloud extra alone has no MQTT client
        raise ConfigError("the local IoT bridge needs paho-mqtt: pip install 'framesieve-cascade[edge]'") from exc
    return paho


class BrokerClient:
    """One MQTT connection (persistent session, so QoS 1 messages wait in the broker while we are away),
    reconnecting by itself; `on_message(topic, payload)` for the filters subscribed."""

    def __init__(self, port: int, client_id: str, filters: list[str], on_message: Any = None,
                 host: str = "127.0.0.1"):
        paho = _paho()
        self.filters, self.on_message = filters, on_message
        self.connected = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.2, 2.0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a, **_k: self.connected.clear()
        self.client.on_message = lambda _c, _u, msg: self.on_message and self.on_message(msg.topic, msg.payload)
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            return
        for topic_filter in self.filters:
            client.subscribe(topic_filter, qos=1)
        self.connected.set()

    def publish(self, topic: str, payload: bytes, qos: int = 1, timeout_s: float = 5.0) -> bool:
        if not self.connected.is_set():
            return False
        info = self.client.publish(topic, payload, qos=qos)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class IotRuleBridge:
    """The escalation rule: broker -> router. `routed` counts outcomes by status."""

    def __init__(self, router: Router, port: int, prefix: str = "framesieve", workers: int = 4):
        self.router, self.prefix = router, prefix
        self.routed: dict[str, int] = {}
        self.received: dict[str, tuple[str, int]] = {}  # message id -> (camera, frame_index), for the campaign
        self.deliveries = 0  # every delivery, repeats included (at-least-once)
        self.frame_events: set[str] = set()  # message ids of the gateways' frame events
        self.specialization_events: set[str] = set()  # and of their cameras' specialization steps
        self.ingested: dict[str, int] = {}  # events and telemetry into the store (the dashboard's), by outcome
        self.ingested_by_topic: dict[str, dict[str, int]] = {}  # the same, by topic ("events", "telemetry")
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="iot-rule")
        # events and telemetry on their own worker: a slow teacher holding the rule's workers must not keep the
        # dashboard's counts behind (on AWS they are separate rules and Lambdas too)
        self._ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="iot-ingest")
        self.client = BrokerClient(port, "framesieve-iot-rule", [f"{prefix}/+/escalations", f"{prefix}/+/events",
                                                                         f"{prefix}/+/telemetry"],
                                   self._received)

    def _received(self, topic: str, payload: bytes) -> None:
        if topic.endswith(("/events", "/telemetry")):
            if topic.endswith("/events"):
                self._count_event(payload)
            self._ingest_pool.submit(self._ingest, topic, payload)
            return
        self._pool.submit(self._route, topic, payload, int(time.time() * 1000))

    def _count_event(self, payload: bytes) -> None:
        try:
            body = json.loads(payload)
            mid, kind = body.get("message_id"), body.get("type")
        except (ValueError, RecursionError, AttributeError):
            return
        if kind == "specialization":  # a camera's specialization step shares the topic; not a frame
            with self._lock:
                self.specialization_events.add(str(mid))
        elif isinstance(mid, str):
            with self._lock:
                self.frame_events.add(mid)

    def _ingest(self, topic: str, payload: bytes) -> None:
        """The events and telemetry rules (cloud/dashboard/ingest.py): into the store, for the dashboard."""
        parts = topic.split("/")
        try:
            status = ingest(self.router.store, parts[1] if len(parts) > 2 else "", parts[-1], payload)
        except Exception as exc:  # the store refusing: logged and counted, as a Lambda error would be
            log.error(json.dumps({"event": "ingest_failed", "topic": topic, "error": repr(exc)[:300]}))
            status = "failed"
        with self._lock:
            self.ingested[status] = self.ingested.get(status, 0) + 1
            kind = self.ingested_by_topic.setdefault(parts[-1], {})
            kind[status] = kind.get(status, 0) + 1

    def _route(self, topic: str, payload: bytes, received_ms: int) -> None:
        parts = topic.split("/")
        rule = {c.EVENT_TOPIC: topic, c.EVENT_THING: parts[1] if len(parts) > 2 else "",
                c.EVENT_RECEIVED_MS: received_ms, "client_id": parts[1] if len(parts) > 2 else ""}
        try:
            body = json.loads(payload) if len(payload) <= MAX_MESSAGE_BYTES else None
        except (ValueError, RecursionError):  # read here only to count what the campaign sent
            body = None
        # As the rule does: the message, whatever it is, base64-encoded beside the rule's own fields.
        event: Any = {c.EVENT_PAYLOAD: base64.b64encode(payload).decode(), **rule}
        if isinstance(body, dict):
            items = body.get("escalations") if body.get("type") == "escalation_batch" else [body]  # v2: a batch
            with self._lock:
                self.deliveries += 1
                for item in items if isinstance(items, list) else []:
                    mid, cam, idx = (item.get("message_id"), item.get("camera"), item.get("frame_index")) \
                        if isinstance(item, dict) else (None, None, None)
                    if isinstance(mid, str) and isinstance(cam, str) and isinstance(idx, int):
                        self.received[mid] = (cam, idx)
        try:
            status = self.router.process(event).status
        except Exception as exc:  # Lambda would retry; here it is logged and counted, the bridge goes on
            log.error(json.dumps({"event": "router_failed", "topic": topic, "error": repr(exc)[:300]}))
            status = "failed"
        with self._lock:
            self.routed[status] = self.routed.get(status, 0) + 1

    def summary_line(self) -> str:
        """What the events rule got and did, to set beside the gateways' own counts (their event logs, and the
        `spool_left` of their stop lines: events a stopped gateway still spools reach the cloud at its next start)."""
        with self._lock:
            outcomes = "; ".join(f"{topic} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                 for topic, counts in sorted(self.ingested_by_topic.items())) or "nothing"
            return (f"events rule      {len(self.frame_events)} frame event(s) received (distinct message ids), "
                    f"{len(self.specialization_events)} specialization step(s); into the store: {outcomes}")

    def close(self) -> None:
        self.client.close()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._ingest_pool.shutdown(wait=True, cancel_futures=False)


class IotDataServer(ThreadingHTTPServer):
    """iot-data's Publish on loopback: the router's `iot-data` client (FRAMESIEVE_IOT_DATA_ENDPOINT) -> broker."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], port: int):
        self.broker = BrokerClient(port, "framesieve-iot-data", [])
        self.published = 0
        super().__init__(address, _IotDataHandler)

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def server_close(self) -> None:
        super().server_close()
        self.broker.close()


class _IotDataHandler(BaseHTTPRequestHandler):
    server: IotDataServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        url = urlsplit(self.path)
        length = self.headers.get("Content-Length", "0")
        if not url.path.startswith("/topics/") or not length.isdigit() or int(length) > MAX_MESSAGE_BYTES:
            return send_json(self, 400, {"message": "expected POST /topics/{topic} with a body of at most "
                                                    f"{MAX_MESSAGE_BYTES} bytes"})
        body = self.rfile.read(int(length))
        topic = unquote(url.path[len("/topics/"):])
        qos = parse_qs(url.query).get("qos", ["1"])[0]
        if not self.server.broker.publish(topic, body, qos=1 if qos != "0" else 0):
            return send_json(self, 503, {"message": "the broker is not reachable; publish again later"})
        self.server.published += 1
        send_json(self, 200, {})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)
