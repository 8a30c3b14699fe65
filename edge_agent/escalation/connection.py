"""One MQTT connection per gateway, shared by escalations, events, telemetry, shadow and jobs.

Why one: AWS IoT Core allows one connection per client id, and the client id is the thing name, so a
second connection would throw the first one off. Both clients (paho for any broker, awscrt MQTT 5 for
IoT Core) sit behind this small interface:

- `publish()` is QoS 1 and returns once the broker acknowledged (PUBACK), or raises TransportError;
  it never queues a message in memory while offline: the durable spool does that.
- `subscribe()` registers a handler for a topic filter; subscriptions are renewed on every reconnect.
  Handlers run on the client's network thread: they must be quick and never publish-and-wait
  (hand work to a worker thread). A handler that raises is logged and counted, never fatal.
- `on_connect()` callbacks run on a helper thread after each (re)connection and re-subscription.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from contracts.wire import MAX_MESSAGE_BYTES
from edge_agent.escalation.base import TransportError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


class Pending(ABC):
    """A QoS 1 publish on its way; `wait()` is True once the broker acknowledged it."""

    @abstractmethod
    def wait(self, timeout_s: float) -> bool: ...


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (`+` one level, `#` the rest); `$` topics never match a leading wildcard."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


@dataclass(frozen=True)
class Topics:
    """Every topic a gateway uses: its own under `{prefix}/{thing}/`, and the AWS reserved ones."""

    prefix: str
    thing: str
    basic_ingest_rule: str | None = None

    def _own(self, leaf: str) -> str:
        return f"{self.prefix}/{self.thing}/{leaf}"

    @property
    def escalations(self) -> str:
        """Where escalations are published; through Basic Ingest straight to the rule when one is named
        (no broker fan-out, no messaging charge), the rule still sees the plain topic's name."""
        own = self._own("escalations")
        return f"$aws/rules/{self.basic_ingest_rule}/{own}" if self.basic_ingest_rule else own

    @property
    def verdicts(self) -> str:
        return self._own("verdicts")

    @property
    def events(self) -> str:
        return self._own("events")

    @property
    def telemetry(self) -> str:
        return self._own("telemetry")

    def shadow(self, op: str) -> str:
        return f"$aws/things/{self.thing}/shadow/{op}"

    def jobs(self, op: str) -> str:
        return f"$aws/things/{self.thing}/jobs/{op}"


class MqttConnection(ABC):
    kind = "base"

    def __init__(self, client_id: str, publish_timeout_s: float = 5.0):
        self.client_id = client_id
        self.publish_timeout_s = publish_timeout_s
        self._handlers: dict[str, Handler] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self.connects = 0
        self.disconnects = 0
        self.handler_errors = 0

    # -- the interface ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[topic_filter] = handler
            connected = self.connected
        if connected:
            try:
                self._subscribe(topic_filter)
            except TransportError as exc:  # renewed on the next connection anyway
                log.warning("subscribe %s failed: %s", topic_filter, exc)

    def on_connect(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def publish(self, topic: str, payload: bytes, timeout_s: float | None = None) -> None:
        """QoS 1; returns when the broker acknowledged, raises TransportError otherwise."""
        timeout_s = self.publish_timeout_s if timeout_s is None else timeout_s
        if not self.publish_start(topic, payload).wait(timeout_s):
            raise TransportError(f"the broker ({self.describe()}) did not acknowledge {topic} within {timeout_s} s")

    def publish_start(self, topic: str, payload: bytes) -> Pending:
        """Send without waiting (several can be in flight); raises TransportError when it cannot be sent."""
        if len(payload) > MAX_MESSAGE_BYTES:
            raise TransportError(f"a {len(payload)}-byte message to {topic} is over the {MAX_MESSAGE_BYTES}-byte "
                                 "limit; it was not sent")
        if not self.connected:
            raise TransportError(f"not connected to the broker ({self.describe()}); {topic} not sent")
        return self._publish(topic, payload)

    @abstractmethod
    def start(self) -> MqttConnection:
        """Begin connecting in the background (a broker that is down now is retried with backoff)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def _subscribe(self, topic_filter: str) -> None: ...

    @abstractmethod
    def _publish(self, topic: str, payload: bytes) -> Pending: ...

    # -- for the implementations -------------------------------------------------------------------
    def _dispatch(self, topic: str, payload: bytes) -> None:
        with self._lock:
            handlers = [h for f, h in self._handlers.items() if topic_matches(f, topic)]
        if not handlers:
            log.debug("message on %s with no handler", topic)
        for handler in handlers:
            try:
                handler(topic, payload)
            except Exception:  # a bad message must never take the client's thread down
                self.handler_errors += 1
                log.exception("handler for %s failed", topic)

    def _up(self) -> None:
        self.connects += 1
        log.info("connected to %s as %s", self.describe(), self.client_id)
        # `connected` is set only once the subscriptions are back: a publish before that could have its
        # answer (a verdict) arrive while nobody listens for it.
        threading.Thread(target=self._after_connect, name="mqtt-after-connect", daemon=True).start()

    def _down(self, why: str) -> None:
        if self._connected.is_set():
            self.disconnects += 1
            log.warning("disconnected from %s: %s", self.describe(), why)
        self._connected.clear()

    def _after_connect(self) -> None:
        done: set[str] = set()
        try:
            while True:
                with self._lock:
                    todo = [f for f in self._handlers if f not in done]
                    if not todo:
                        self._connected.set()  # under the lock: a subscribe() from now on subscribes itself
                        break
                for topic_filter in todo:
                    self._subscribe(topic_filter)
                    done.add(topic_filter)
        except TransportError as exc:
            log.warning("re-subscribing after connect failed: %s", exc)
            return
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                log.exception("on-connect callback failed")
