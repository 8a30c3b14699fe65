"""The connection for any MQTT broker (Mosquitto, EMQX, HiveMQ, ...): paho-mqtt 2, MQTT 5, TLS optional
(server-verified, with a client certificate when the broker asks for one)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import paho.mqtt.client as paho

from edge_agent.escalation.base import TransportError
from edge_agent.escalation.connection import MqttConnection, Pending

log = logging.getLogger(__name__)


class _PahoPending(Pending):
    def __init__(self, info: paho.MQTTMessageInfo, refused: dict[int, str]):
        self.info, self.refused = info, refused

    def wait(self, timeout_s: float) -> bool:
        try:
            self.info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):  # dropped from paho's queue, or the connection went away
            return False
        reason = self.refused.pop(self.info.mid, None)
        if reason:  # an MQTT 5 PUBACK with a failure code (not authorised, quota, ...): not delivered
            log.warning("the broker refused message %d: %s", self.info.mid, reason)
            return False
        return self.info.is_published()


def _check_files(**paths: str | None) -> None:
    for name, path in paths.items():
        if path and not Path(path).expanduser().is_file():
            raise TransportError(f"escalation.mqtt.{name}: {path} does not exist; point it at the PEM file "
                                 "(`edge-agent provision` writes them for IoT Core)")


def _expand(path: str | None) -> str | None:
    return str(Path(path).expanduser()) if path else None


class PahoConnection(MqttConnection):
    kind = "mqtt"

    def __init__(self, host: str, port: int, client_id: str, *, tls: bool = False, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, username: str | None = None,
                 password: str | None = None, keepalive_s: int = 30, publish_timeout_s: float = 5.0):
        super().__init__(client_id, publish_timeout_s)
        self.host, self.port = host, port
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        if tls:
            _check_files(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
            client.tls_set(ca_certs=_expand(ca_file), certfile=_expand(cert_file), keyfile=_expand(key_file),
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if username:
            client.username_pw_set(username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(64)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda _c, _u, msg: self._dispatch(msg.topic, bytes(msg.payload))
        client.on_publish = self._on_publish
        self._refused: dict[int, str] = {}
        self.client = client
        self.keepalive_s = keepalive_s
        self._tls = tls

    def describe(self) -> str:
        return f"mqtt{'s' if self._tls else ''}://{self.host}:{self.port}"

    def start(self) -> PahoConnection:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive_s, clean_start=True)
        self.client.loop_start()
        return self

    def close(self) -> None:
        self._connected.clear()
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _on_connect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("%s refused the connection: %s", self.describe(), reason_code)
            return
        self._up()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._down(str(reason_code))

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._refused[mid] = str(reason_code)

    def _subscribe(self, topic_filter: str) -> None:
        # The broker handles a connection's packets in order, so a subscription sent before a publish
        # is in place before any answer to that publish can come back: no need to wait for SUBACK.
        rc, _mid = self.client.subscribe(topic_filter, qos=1)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise TransportError(f"subscribe {topic_filter}: {paho.error_string(rc)}")

    def _publish(self, topic: str, payload: bytes) -> Pending:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} on {self.describe()}: {paho.error_string(info.rc)}")
        return _PahoPending(info, self._refused)
