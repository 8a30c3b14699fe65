"""The connection to AWS IoT Core: awsiotsdk's MQTT 5 client with mutual TLS (the device certificate
and key `edge-agent provision` wrote), client id = the thing name, QoS 1.

The offline queue is off (FAIL_ALL_ON_DISCONNECT): while the link is down a publish fails at once and
the agent's durable spool keeps the message, instead of the SDK holding it in memory where a crash
would lose it and a reconnect would send it a second time.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from edge_agent.escalation.base import TransportError
from edge_agent.escalation.connection import MqttConnection, Pending

log = logging.getLogger(__name__)
_QOS1 = mqtt5.QoS.AT_LEAST_ONCE


class _CrtPending(Pending):
    def __init__(self, future: Future):
        self.future = future

    def wait(self, timeout_s: float) -> bool:
        try:
            result = self.future.result(timeout_s)
        except FutureTimeout:
            return False
        except Exception as exc:  # awscrt raises its own errors for a dropped connection
            log.debug("publish failed: %s", exc)
            return False
        puback = getattr(result, "puback", None)
        return puback is None or int(puback.reason_code) < 0x80


class IotCoreConnection(MqttConnection):
    kind = "iot-core"

    def __init__(self, endpoint: str, port: int, thing_name: str, cert_file: str, key_file: str,
                 ca_file: str | None = None, keepalive_s: int = 30, publish_timeout_s: float = 5.0):
        super().__init__(thing_name, publish_timeout_s)
        files = {"cert_file": cert_file, "key_file": key_file, "ca_file": ca_file}
        for name, path in files.items():
            if path and not Path(path).expanduser().is_file():
                raise TransportError(f"escalation.mqtt.{name}: {path} does not exist; `edge-agent provision` writes "
                                     "the certificate and key, the CA is Amazon Root CA 1 (or your broker's)")
        if not cert_file or not key_file:
            raise TransportError("iot-core needs escalation.mqtt.cert_file and key_file (mutual TLS); "
                                 "run `edge-agent provision` to create them")
        self.endpoint, self.port = endpoint, port
        self._stopped = threading.Event()
        options = {"ca_filepath": str(Path(ca_file).expanduser())} if ca_file else {}
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint=endpoint, port=port, client_id=thing_name,
            cert_filepath=str(Path(cert_file).expanduser()), pri_key_filepath=str(Path(key_file).expanduser()),
            keep_alive_interval_sec=keepalive_s, session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
            offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT,
            min_reconnect_delay_ms=1000, max_reconnect_delay_ms=30_000, ack_timeout_sec=max(1, int(publish_timeout_s)),
            on_publish_received=self._on_publish,
            on_lifecycle_connection_success=lambda _data: self._up(),
            on_lifecycle_connection_failure=lambda data: self._down(f"connect failed: {data.exception}"),
            on_lifecycle_disconnection=lambda data: self._down(str(data.exception)),
            on_lifecycle_stopped=lambda _data: self._stopped.set(),
            **options,
        )

    def describe(self) -> str:
        return f"iot-core {self.endpoint}:{self.port}"

    def start(self) -> IotCoreConnection:
        self.client.start()
        return self

    def close(self) -> None:
        self._connected.clear()
        self.client.stop()
        self._stopped.wait(5)

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        self._dispatch(packet.topic, bytes(packet.payload or b""))

    def _subscribe(self, topic_filter: str) -> None:
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter=topic_filter, qos=_QOS1)])
        try:
            suback = self.client.subscribe(packet).result(self.publish_timeout_s)
        except Exception as exc:
            raise TransportError(f"subscribe {topic_filter} on {self.describe()}: {exc}") from exc
        codes = [int(c) for c in (suback.reason_codes or [])]
        if any(c >= 0x80 for c in codes):  # IoT Core refuses filters the policy does not allow
            raise TransportError(f"subscribe {topic_filter} refused (reason {codes}); check the thing's IoT policy")

    def _publish(self, topic: str, payload: bytes) -> Pending:
        try:
            future = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=_QOS1))
        except Exception as exc:
            raise TransportError(f"publish to {topic} on {self.describe()}: {exc}") from exc
        return _CrtPending(future)
