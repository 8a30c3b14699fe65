"""The mqtt and iot-core transports: an escalation is published to `{prefix}/{thing}/escalations` and
its Verdict awaited on `{prefix}/{thing}/verdicts`, matched by message_id, within a timeout.

What happens when something fails, and why:
- not connected, or no PUBACK: the escalation goes to the durable spool (the cloud still gets it for
  its records and training data, later) and the edge decides the frame now (TransportError);
- acknowledged but no verdict in time: the edge decides; the message is with the cloud already, so it
  is not spooled again. A verdict that arrives later is counted and dropped;
- an error verdict (the cloud dead-lettered the message): the wait ends at once, the edge decides, counted;
- a malformed verdict, or one for another frame: rejected, logged and counted; the wait goes on.

Per-gateway batching (`batch_window_ms` > 0) is negotiated, so a gateway never sends batches to a cloud
that cannot read them: it sends plain version-1 messages until a verdict says the cloud reads version 2
(the router puts `accepts_v: 2` on every verdict; a verdict batch says so too), and goes back to version 1
when a verdict comes without it (the router was rolled back) or when a batched escalation gets no verdict
while no verdict at all came since it left (a cloud that drops what it cannot read answers nothing).
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from contracts.batch import BATCH_VERSION, VerdictBatch
from contracts.codec import decode
from contracts.wire import EscalationRequest, Verdict, WireError
from edge_agent.config import AgentConfig, ConfigError
from edge_agent.escalation.base import Transport, TransportError, register
from edge_agent.escalation.batcher import Batcher
from edge_agent.escalation.connection import MqttConnection, Topics
from edge_agent.escalation.outbox import SpoolSender
from edge_agent.escalation.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class MqttLink:
    """The gateway's connection with its topics and its spool: what the transport, the event outbox and
    fleet management share."""

    connection: MqttConnection
    topics: Topics
    spool: Spool
    sender: SpoolSender
    site: str = ""

    def send_later(self, kind: str, message_id: str, topic: str, payload: bytes) -> None:
        """Durably queue a message; the sender publishes it as soon as (and as fast as) allowed."""
        self.spool.put(kind, message_id, topic, payload)
        self.sender.notify()

    # What the spool still held when the link closed, by kind: on disk, sent first at the next start
    left_at_close: dict[str, int] = field(default_factory=dict)

    def close(self, drain_s: float = 2.0) -> None:
        """Give the sender a moment to empty the spool (what is left stays on disk for next time), and say
        what is left: a stopped gateway's count that the cloud lacks is there, not lost."""
        connected = self.connection.connected
        if self.spool.rows and drain_s > 0:
            self.sender.drain(drain_s)
        self.sender.close()
        self.connection.close()
        if self.spool.rows:
            self.left_at_close = self.spool.kinds()
            log.warning("%d message(s) still in the spool %s at stop (%s): the broker did not take them before the "
                        "stop (%s); they stay on disk and are sent first at the next start", self.spool.rows,
                        self.spool.path, ", ".join(f"{k}: {v}" for k, v in self.left_at_close.items()),
                        f"connected, drained for {drain_s:g} s" if connected else "not connected",
                        extra={"event": "spool_left", "spool_left": self.left_at_close})
        self.spool.close()


def open_link(config: AgentConfig) -> MqttLink:
    """The connection (not started yet), spool and sender a config describes; ConfigError when a
    certificate or key file it names is missing."""
    esc, m = config.escalation, config.escalation.mqtt
    try:  # first: it holds nothing to close when the connection's files are what is wrong
        spool = Spool(esc.spool.path, esc.spool.max_rows, esc.spool.max_bytes)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"escalation.spool.path: cannot write the spool {esc.spool.path}: {exc}; make its "
                          "folder writable by the agent or point escalation.spool.path elsewhere") from exc
    connection: MqttConnection
    try:
        if esc.transport == "iot-core":
            from edge_agent.escalation.iot_core import IotCoreConnection

            connection = IotCoreConnection(m.host, m.port, esc.thing_name, m.cert_file or "", m.key_file or "",
                                           m.ca_file, m.keepalive_s, m.publish_timeout_s)
        else:
            from edge_agent.escalation.paho_client import PahoConnection

            connection = PahoConnection(m.host, m.port, esc.thing_name, tls=m.tls, ca_file=m.ca_file,
                                        cert_file=m.cert_file, key_file=m.key_file, username=m.username,
                                        password=m.password, keepalive_s=m.keepalive_s,
                                        publish_timeout_s=m.publish_timeout_s)
    except TransportError as exc:
        spool.close()
        raise ConfigError(str(exc)) from exc
    sender = SpoolSender(spool, connection, esc.spool.replay_rate_per_s, ack_timeout_s=2 * m.publish_timeout_s)
    topics = Topics(esc.topic_prefix, esc.thing_name, esc.basic_ingest_rule)
    return MqttLink(connection, topics, spool, sender, config.site)


class _Waiter:
    def __init__(self, request: EscalationRequest):
        self.request = request
        self.event = threading.Event()
        self.verdict: Verdict | None = None
        self.failure: Exception | None = None  # not published: spooled, the edge decides now

    def sent(self, failure: Exception | None) -> None:
        if failure is not None:
            self.failure = failure
            self.event.set()


class MqttTransport(Transport):
    def __init__(self, link: MqttLink, verdict_timeout_s: float = 10.0, owns_link: bool = True,
                 batch_window_ms: int = 0):
        """`owns_link`: close the link with the transport (False where the agent shares it with events and
        fleet management and closes it last). `batch_window_ms` > 0: per-gateway batches (batcher.py)."""
        self.link = link
        self.owns_link = owns_link
        self.verdict_timeout_s = verdict_timeout_s
        self._waiting: dict[str, _Waiter] = {}
        self._lock = threading.Lock()
        self.verdicts = 0
        self.late_verdicts = 0
        self.rejected = 0
        self.timeouts = 0
        self.spooled = 0
        self.error_verdicts = 0  # the cloud's word that it will not answer (dead-lettered)
        self.latencies_s: collections.deque[float] = collections.deque(maxlen=10_000)
        self.batcher = Batcher(batch_window_ms / 1000, self._publish_escalations, self._spool) \
            if batch_window_ms > 0 else None
        self.cloud_batches = False  # the cloud said it reads wire v2; until then every escalation goes as v1
        self.batching_fallbacks = 0  # times batching was switched off (the cloud stopped saying it reads v2)
        self._last_verdict_s = 0.0  # monotonic time of the last verdict of any kind
        self.single_messages = 0  # escalations published one per message, outside the batcher
        link.connection.subscribe(link.topics.verdicts, self._on_verdict)
        link.connection.start()
        link.sender.start()

    def _publish_escalations(self, payload: bytes) -> None:
        self.link.connection.publish(self.link.topics.escalations, payload)

    def escalate(self, request: EscalationRequest) -> Verdict:
        payload = request.to_bytes()
        waiter = _Waiter(request)
        started = time.monotonic()
        with self._lock:
            self._waiting[request.message_id] = waiter
        try:
            batched = self.batcher is not None and self.cloud_batches
            if batched:  # leaves with the gateway's other escalations of this window
                assert self.batcher is not None
                self.batcher.add(request, waiter.sent)
            else:
                try:
                    self.link.connection.publish(self.link.topics.escalations, payload)
                    with self._lock:
                        self.single_messages += 1
                except TransportError as exc:
                    self._spool(request)
                    waiter.sent(exc)  # the edge decides now, not after the verdict timeout
            window_s = self.batcher.window_s if batched and self.batcher is not None else 0.0
            if not waiter.event.wait(self.verdict_timeout_s + window_s):
                with self._lock:
                    self.timeouts += 1
                    if batched and self._last_verdict_s < started:  # nothing answered since: maybe unread
                        self._batching(False, f"no verdict for batched escalation {request.message_id} nor any "
                                              "other since it left")
                raise TransportError(f"no verdict for escalation {request.message_id} within "
                                     f"{self.verdict_timeout_s} s (escalation.verdict_timeout_s)")
            if waiter.failure is not None:
                raise TransportError(f"{waiter.failure}; escalation {request.message_id} spooled, sent when the "
                                     "link is back") from waiter.failure
            assert waiter.verdict is not None
            if waiter.verdict.error:  # dead-lettered by the cloud: no answer will come, decide now
                raise TransportError(f"the cloud will not answer escalation {request.message_id}: "
                                     f"{waiter.verdict.error}")
            self.latencies_s.append(time.monotonic() - started)  # edge to verdict, batching window included
            return waiter.verdict
        finally:
            with self._lock:
                self._waiting.pop(request.message_id, None)

    def _spool(self, request: EscalationRequest) -> None:
        """Durably queued as a version-1 message (also a batch's items): the cloud deduplicates by id."""
        self.link.send_later("escalation", request.message_id, self.link.topics.escalations, request.to_bytes())
        with self._lock:  # escalations are awaited on several worker threads at once
            self.spooled += 1

    def _on_verdict(self, topic: str, payload: bytes) -> None:
        try:
            message = decode(payload, "verdict")
            if isinstance(message, dict) and message.get("type") == "verdict_batch":  # wire v2: a batch's answers
                verdicts = VerdictBatch.from_payload(message).verdicts
                self._told(True, "a verdict batch came")
                for verdict in verdicts:  # each matched by its message id
                    self._deliver(topic, verdict)
                return
            verdict = Verdict.from_payload(message)
        except WireError as exc:
            self.rejected += 1
            log.warning("rejected a message on %s: %s", topic, exc)
            return
        self._told(verdict.accepts_v >= BATCH_VERSION,
                   f"verdict {verdict.message_id} says accepts_v={verdict.accepts_v or 'nothing'}")
        self._deliver(topic, verdict)

    def _told(self, reads_batches: bool, why: str) -> None:
        """A verdict came: what it says of the wire versions the cloud reads."""
        with self._lock:
            self._last_verdict_s = time.monotonic()
            self._batching(reads_batches, why)

    def _batching(self, on: bool, why: str) -> None:
        """Switch batching on or off (under the lock); logged on a change only."""
        if self.batcher is None or on == self.cloud_batches:
            return
        self.cloud_batches = on
        if on:
            log.info("the cloud reads per-gateway batches (%s): escalations now leave in batches of %d ms",
                     why, round(self.batcher.window_s * 1000))
        else:
            self.batching_fallbacks += 1
            log.warning("per-gateway batching off, escalations go one by one (wire v1) until a verdict says the "
                        "cloud reads batches: %s", why)

    def _deliver(self, topic: str, verdict: Verdict) -> None:
        with self._lock:
            waiter = self._waiting.get(verdict.message_id)
        if waiter is None:
            self.late_verdicts += 1
            log.info("verdict for %s arrived after the edge decided (or is not ours); dropped", verdict.message_id)
            return
        req = waiter.request
        if (verdict.camera, verdict.frame_index) != (req.camera, req.frame_index):
            self.rejected += 1
            log.warning("rejected a verdict on %s: message %s is camera %s frame %d, the verdict says %s frame %d",
                        topic, req.message_id, req.camera, req.frame_index, verdict.camera, verdict.frame_index)
            return
        if verdict.error:
            self.error_verdicts += 1
        else:
            self.verdicts += 1
        waiter.verdict = verdict
        waiter.event.set()

    def stats(self) -> dict[str, int]:
        messages_up = self.single_messages + (self.batcher.messages if self.batcher is not None else 0)
        return {"verdicts": self.verdicts, "late_verdicts": self.late_verdicts, "rejected": self.rejected,
                "timeouts": self.timeouts, "spooled": self.spooled, "error_verdicts": self.error_verdicts,
                "messages_up": messages_up,
                **({"batch_messages": self.batcher.messages, "batched_escalations": self.batcher.escalations,
                    "batching_fallbacks": self.batching_fallbacks} if self.batcher is not None else {})}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        if self.owns_link:
            self.link.close()


@register("mqtt")
class PahoTransport(MqttTransport):
    """Any MQTT broker (paho-mqtt)."""


@register("iot-core")
class IotCoreTransport(MqttTransport):
    """AWS IoT Core (awsiotsdk MQTT 5, mutual TLS)."""


def build_mqtt_transport(config: AgentConfig) -> MqttTransport:
    cls = IotCoreTransport if config.escalation.transport == "iot-core" else PahoTransport
    return cls(open_link(config), config.escalation.verdict_timeout_s,
               batch_window_ms=config.escalation.batch_window_ms)
