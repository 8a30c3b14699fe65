"""The AWS side of the gateway's MQTT conversation, played over the real broker by small responders:

- CloudResponder: what the IoT rule + router Lambda do for escalations (answer with a Verdict on the
  thing's verdicts topic), and a reader of the events and telemetry topics; keeps every message id it
  received, so tests can count duplicates and losses;
- ShadowService: the classic device shadow protocol (get, update, accepted/rejected, delta);
- JobsService: the Jobs MQTT API (start-next, {jobId}/update, notify-next).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contracts.batch import BATCH_VERSION, EscalationBatch, VerdictBatch
from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry, message_type
from contracts.wire import CropVerdict, DetectionRecord, EscalationRequest, Verdict
from edge_agent.pipeline.sources import FrameSource, SampledFrame


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class _Client:
    def __init__(self, port: int, client_id: str, filters: list[str], persistent: bool = False):
        self.filters = filters
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._pending_subs: set[int] = set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.ready = threading.Event()
        props = None
        if persistent:  # the broker keeps the subscriptions and queues for us while we are away
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
        self.client.loop_start()
        assert self.ready.wait(10), f"{client_id} could not connect to the broker on port {port}"

    def _on_connect(self, client, _userdata, _flags, _rc, _props) -> None:
        # Ready only once the broker acknowledged every subscription: another client's publish sent
        # right after would otherwise race the SUBSCRIBE and be lost.
        self._pending_subs = set()
        for f in self.filters:
            _rc, mid = client.subscribe(f, qos=1)
            self._pending_subs.add(mid)
        if not self.filters:
            self.ready.set()

    def _on_subscribe(self, _client, _userdata, mid, _reason_codes, _props) -> None:
        self._pending_subs.discard(mid)
        if not self._pending_subs:
            self.ready.set()

    def _on_message(self, _client, _userdata, msg) -> None:
        self.handle(msg.topic, msg.payload)

    def handle(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError

    def publish(self, topic: str, body: dict[str, Any] | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(topic, data, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CloudResponder(_Client):
    def __init__(self, port: int, prefix: str = "framesieve", answer: bool = True, rule: str | None = None,
                 persistent: bool = False, client_id: str = "cloud-test"):
        filters = [f"{prefix}/+/escalations", f"{prefix}/+/events", f"{prefix}/+/telemetry"]
        if rule:  # `#`/`+` never match $aws/...: subscribe to the Basic Ingest topic explicitly
            filters.append(f"$aws/rules/{rule}/{prefix}/+/escalations")
        self.prefix, self.answer = prefix, answer
        self.error = ""  # set: answer every escalation with an error verdict (the router dead-lettered it)
        # True: a router that reads per-gateway batches (wire v2; says accepts_v 2 on its verdicts, answers a
        # batch with one verdict batch); False: an older one, which cannot read a batch and answers nothing
        self.reads_batches = False
        self.batches: list[list[str]] = []  # the message ids of each batch received (read or not)
        self.escalations: list[str] = []
        self.escalation_topics: list[str] = []
        self.events: list[FrameEventMessage] = []
        self.specialization: list[SpecializationEvent] = []
        self.telemetry: list[Telemetry] = []
        self.lock = threading.Lock()
        super().__init__(port, client_id, filters, persistent)

    def handle(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        thing, leaf = parts[-2], parts[-1]
        with self.lock:
            if leaf == "escalations" and b'"escalation_batch"' in payload:
                batch = EscalationBatch.from_bytes(payload)
                self.batches.append([r.message_id for r in batch.escalations])
                self.escalation_topics.append(topic)
                if self.reads_batches:
                    self.escalations.extend(r.message_id for r in batch.escalations)
                    answers = tuple(self._verdict(r) for r in batch.escalations)
                    self.client.publish(f"{self.prefix}/{thing}/verdicts",
                                        VerdictBatch(batch.batch_id, answers).to_bytes(), qos=1)
            elif leaf == "escalations":
                request = EscalationRequest.from_bytes(payload)
                self.escalations.append(request.message_id)
                self.escalation_topics.append(topic)
                if self.error or self.answer:
                    self.client.publish(f"{self.prefix}/{thing}/verdicts", self._verdict(request).to_bytes(), qos=1)
            elif leaf == "events":  # frame events and, from a specializing gateway, its steps
                if message_type(json.loads(payload)) == "specialization":
                    self.specialization.append(SpecializationEvent.from_bytes(payload))
                else:
                    self.events.append(FrameEventMessage.from_bytes(payload))
            elif leaf == "telemetry":
                self.telemetry.append(Telemetry.from_bytes(payload))

    def _verdict(self, request: EscalationRequest) -> Verdict:
        accepts = BATCH_VERSION if self.reads_batches else 0
        if self.error:
            return Verdict(request.message_id, request.camera, request.frame_index, "", (), self.error, accepts)
        crops = tuple(CropVerdict(c.crop_id, (DetectionRecord("person", 0.9, c.box),)) for c in request.crops)
        return Verdict(request.message_id, request.camera, request.frame_index, "teacher@test", crops, "", accepts)


def _merge(doc: dict, patch: dict) -> dict:
    out = dict(doc)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _delta(desired: dict, reported: dict) -> dict:
    out = {}
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(reported.get(key), dict):
            sub = _delta(value, reported[key])
            if sub:
                out[key] = sub
        elif reported.get(key) != value:
            out[key] = value
    return out


class ShadowService(_Client):
    def __init__(self, port: int, thing: str):
        self.base = f"$aws/things/{thing}/shadow"
        self.desired: dict = {}
        self.reported: dict = {}
        self.version = 0
        self.updates: list[dict] = []
        self.lock = threading.Lock()
        super().__init__(port, f"shadow-{thing}", [f"{self.base}/get", f"{self.base}/update"])

    def handle(self, topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        with self.lock:
            if topic.endswith("/get"):
                if not self.version:
                    self.publish(f"{self.base}/get/rejected", {"code": 404, "message": "No shadow exists"})
                    return
                state = {"desired": self.desired, "reported": self.reported}
                delta = _delta(self.desired, self.reported)
                if delta:
                    state["delta"] = delta
                self.publish(f"{self.base}/get/accepted", {"state": state, "version": self.version,
                                                           "clientToken": body.get("clientToken")})
            else:
                self._update(body["state"], body.get("clientToken"))

    def _update(self, state: dict, token: str | None = None) -> None:
        self.updates.append(state)
        previous = {"state": {"desired": self.desired, "reported": self.reported}, "version": self.version}
        self.desired = _merge(self.desired, state.get("desired") or {})
        self.reported = _merge(self.reported, state.get("reported") or {})
        self.version += 1
        self.publish(f"{self.base}/update/accepted", {"state": state, "version": self.version, "clientToken": token})
        current = {"state": {"desired": self.desired, "reported": self.reported}, "version": self.version}
        self.publish(f"{self.base}/update/documents", {"previous": previous, "current": current})
        delta = _delta(self.desired, self.reported)
        if "desired" in state and delta:
            self.publish(f"{self.base}/update/delta", {"state": delta, "version": self.version})

    def set_desired(self, patch: dict) -> int:
        with self.lock:
            self._update({"desired": patch})
            return self.version


class JobsService(_Client):
    def __init__(self, port: int, thing: str):
        self.base = f"$aws/things/{thing}/jobs"
        self.jobs: list[dict] = []
        self.statuses: dict[str, list[tuple[str, dict]]] = {}
        self.lock = threading.Lock()
        super().__init__(port, f"jobs-{thing}", [f"{self.base}/start-next", f"{self.base}/+/update"])

    def _next(self) -> dict | None:
        return next((j for j in self.jobs if j["status"] in ("QUEUED", "IN_PROGRESS")), None)

    def handle(self, topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        with self.lock:
            if topic.endswith("/start-next"):
                job = self._next()
                reply: dict = {"clientToken": body.get("clientToken"), "timestamp": int(time.time())}
                if job:
                    job["status"] = "IN_PROGRESS"
                    job["versionNumber"] += 1
                    reply["execution"] = dict(job)
                self.publish(f"{self.base}/start-next/accepted", reply)
                return
            job_id = topic.split("/")[-2]
            job = next(j for j in self.jobs if j["jobId"] == job_id)
            job["status"] = body["status"]
            self.statuses.setdefault(job_id, []).append((body["status"], body.get("statusDetails", {})))
            self.publish(f"{self.base}/{job_id}/update/accepted", {"clientToken": body.get("clientToken")})
            if body["status"] in ("SUCCEEDED", "FAILED"):
                nxt = self._next()
                self.publish(f"{self.base}/notify-next", {"execution": dict(nxt)} if nxt else {})

    def add(self, job_id: str, document: dict) -> None:
        with self.lock:
            job = {"jobId": job_id, "jobDocument": document, "status": "QUEUED", "versionNumber": 1,
                   "executionNumber": 1}
            self.jobs.append(job)
            if self._next() is job:
                self.publish(f"{self.base}/notify-next", {"execution": dict(job)})

    def final(self, job_id: str) -> tuple[str, dict] | None:
        with self.lock:
            done = [s for s in self.statuses.get(job_id, []) if s[0] in ("SUCCEEDED", "FAILED")]
            return done[-1] if done else None


class PacedSource(FrameSource):
    """Real frames, one sample every `interval_s` of wall time (pts = 1 s per sample), `count` of them."""

    def __init__(self, camera: str, frames: list[np.ndarray], count: int, interval_s: float = 0.0):
        super().__init__(camera, 1.0)
        self.images, self.count, self.interval_s = frames, count, interval_s
        self.live = interval_s > 0  # paced on the wall clock, as a live camera: the agent never waits on it
        self._i = 0

    def _read(self) -> SampledFrame | None:
        if self._i >= self.count or (self.interval_s and self._closed.wait(self.interval_s)):
            return None
        index = self._i
        self._i += 1
        self.frames_seen += 1
        return self._emit(index, float(index), self.images[index % len(self.images)])

    def _release(self) -> None:
        pass
