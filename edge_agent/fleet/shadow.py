"""The device shadow (classic, unnamed), over the documented MQTT topics:

- on connect, publish `$aws/things/{thing}/shadow/get`; `.../get/accepted` carries the whole desired
  state (`.../get/rejected` 404: no shadow yet, so the reported state creates one);
- `.../update/delta` carries what desired differs from reported, merged over the last desired state;
- `.../update/documents` carries the whole desired state after every update: the only way a removed
  desired key (null) reaches the device, since a removal leaves no delta;
- the agent reports on `.../update` with `{"state": {"reported": {...}}}`.

The desired document: {"defaults": {camera settings}, "cameras": {"<id>": {camera settings}},
"model_version": "x.y.z"}, where camera settings are any of fps, motion, regions, cascade, tracker,
deep-merged over the config file's values (null removes an override). All of it is validated before
any of it is applied; an invalid desired state is rejected as a whole, reported with the reason
(`config_error`), and the last good settings stay. A valid one is applied live, between batches.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent.config import CAMERA_ONLY_FIELDS, CameraSettings, deep_merge, describe_errors
from edge_agent.control import AgentPort, ApplySettings
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.mqtt import MqttLink
from edge_agent.fleet.worker import Worker

log = logging.getLogger(__name__)
MAX_SHADOW_BYTES = 8 * 1024  # the AWS limit on a classic shadow's desired/reported sections


class DesiredState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: dict[str, Any] = Field(default_factory=dict)
    cameras: dict[str, dict[str, Any]] = Field(default_factory=dict)
    model_version: str | None = None


class InvalidDesired(ValueError):
    """The desired state cannot be applied; the message says what to fix."""


def resolve(agent_bases: dict[str, dict], desired: dict[str, Any]) -> dict[str, CameraSettings]:
    """Desired state -> the full settings of every camera, or InvalidDesired naming each problem."""
    try:
        state = DesiredState.model_validate(desired)
    except ValidationError as exc:
        raise InvalidDesired("; ".join(describe_errors(exc, prefix=("desired",)))) from exc
    unknown = sorted(set(state.cameras) - set(agent_bases))
    if unknown:
        raise InvalidDesired(f"desired.cameras: unknown camera ids {unknown}; this gateway has {sorted(agent_bases)}")
    problems, out = [], {}
    for camera, base in agent_bases.items():
        merged = deep_merge(deep_merge(base, state.defaults), state.cameras.get(camera, {}))
        try:
            out[camera] = CameraSettings.model_validate(merged)
        except ValidationError as exc:
            where = ("desired", "cameras", camera) if camera in state.cameras else ("desired", "defaults")
            problems += [p for p in describe_errors(exc, prefix=where) if p not in problems]
    if problems:
        raise InvalidDesired("; ".join(problems))
    return out


def replace_patch(old: Any, new: Any) -> Any:
    """A shadow update that turns `old` into `new`: keys gone from `new` are sent as null (deleted)."""
    if isinstance(old, dict) and isinstance(new, dict):
        patch = {k: None for k in old if k not in new}
        patch.update({k: replace_patch(old.get(k), v) for k, v in new.items()})
        return patch
    return new


class ShadowSync:
    def __init__(self, agent: AgentPort, link: MqttLink,
                 switch_model: Callable[[str, Callable[[str | None], None]], None] | None = None):
        self.agent, self.link, self.topics = agent, link, link.topics
        self.switch_model = switch_model  # the job runner's: same checks as a model update
        self.model_status: str | None = None
        self._switching: str | None = None
        # Only what the shadow may change: not a camera's identity, source, or its own student.
        only_settings = CAMERA_ONLY_FIELDS
        self.bases = {c.id: CameraSettings.model_validate(c.model_dump(exclude=set(only_settings))).model_dump(
            mode="json") for c in agent.config.cameras}
        self.desired: dict[str, Any] = {}  # the last desired state that was applied
        self.error: dict[str, Any] | None = None
        self.reported: dict[str, Any] = {}
        self.worker = Worker("fleet-shadow")
        self.rejected = 0
        self.applied_versions: list[int] = []
        self.seen_version = -1  # the shadow's version: an answer older than what was applied is stale
        self._refused: dict[str, Any] | None = None  # the last desired state rejected, not to be retried

    def start(self) -> ShadowSync:
        conn = self.link.connection
        conn.subscribe(self.topics.shadow("get/accepted"), self._on("get"))
        conn.subscribe(self.topics.shadow("get/rejected"), self._on("get-rejected"))
        conn.subscribe(self.topics.shadow("update/delta"), self._on("delta"))
        conn.subscribe(self.topics.shadow("update/documents"), self._on("documents"))
        conn.subscribe(self.topics.shadow("update/rejected"), self._on("update-rejected"))
        self.worker.start()
        return self

    def close(self) -> None:
        self.worker.close(1.0)

    def request(self) -> None:
        """Ask for the whole shadow (on every connect: changes made while offline arrive this way)."""
        self.worker.submit(lambda: self._publish("get", {"clientToken": uuid.uuid4().hex}))

    def _on(self, kind: str):
        def handler(topic: str, payload: bytes) -> None:
            try:
                message = json.loads(payload)
                if not isinstance(message, dict):
                    raise ValueError(f"expected a JSON object, got {type(message).__name__}")
            except (ValueError, UnicodeDecodeError) as exc:
                self.rejected += 1
                log.warning("shadow: rejected a message on %s: %s", topic, exc)
                return
            log.debug("shadow: %s message, version %s", kind, message.get("version"))
            self.worker.submit(lambda: self._handle(kind, message))
        return handler

    def _handle(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "documents":  # {"previous": {...}, "current": {"state": ..., "version": n}}
            previous, current = message.get("previous"), message.get("current")
            if not isinstance(current, dict):
                self.rejected += 1
                log.warning("shadow: rejected a documents message without a current document")
                return
            if isinstance(previous, dict) and _desired(previous) == _desired(current):
                return  # a reported-only update (ours, usually): nothing for the agent to do
            message, kind = current, "get"
        version: int = message["version"] if isinstance(message.get("version"), int) else -1
        state = message.get("state")
        if kind in ("get", "delta"):
            if 0 <= version < self.seen_version:
                log.info("shadow: ignoring a %s of version %d, older than version %d", kind, version,
                         self.seen_version)
                return
            self.seen_version = max(self.seen_version, version)
        if kind == "get":
            desired = state.get("desired", {}) if isinstance(state, dict) else {}
            self._consider(desired if isinstance(desired, dict) else {"": desired}, version)
        elif kind == "delta":
            if not isinstance(state, dict):
                self.rejected += 1
                log.warning("shadow: rejected a delta without a state object: %.200s", json.dumps(message))
                return
            self._consider(deep_merge(self.desired, state), version)
        elif kind == "get-rejected":
            log.info("shadow: none yet (%s); reporting the current state", message.get("message"))
            self.report()
        else:
            log.warning("shadow: an update was rejected: %s", message.get("message", message))

    def _consider(self, desired: dict[str, Any], version: int) -> None:
        if (desired == self.desired and self.error is None and self.applied_versions) or desired == self._refused:
            return  # the same desired state again (a delta and its document both came): nothing to do
        try:
            settings = resolve(self.bases, desired)
        except InvalidDesired as exc:
            self._refused = desired
            self.error = {"version": version, "reason": str(exc)[:1000], "t_s": round(time.time(), 3)}
            log.error("shadow: desired state version %d rejected, keeping the last good config: %s", version, exc)
            self.report()
            return
        self.error, self._refused = None, None
        self.desired = desired
        self.agent.submit(ApplySettings(settings)).add_done_callback(lambda f: self._applied(version, f))
        self._consider_model(desired.get("model_version"))

    def _consider_model(self, wanted: str | None) -> None:
        if not wanted or wanted == self.agent.status().student.version or wanted == self._switching:
            return
        if self.switch_model is None:
            self.model_status = f"model {wanted} wanted; model updates (fleet.jobs) are off on this gateway"
            return
        self._switching = wanted
        self.model_status = f"switching to model {wanted}"

        def then(reason: str | None) -> None:
            self._switching = None
            self.model_status = f"model {wanted} not used: {reason}" if reason else None
            (log.error if reason else log.info)("shadow: model %s: %s", wanted, reason or "running")
            self.worker.submit(self.report)

        self.switch_model(wanted, then)

    def _applied(self, version: int, done: Future) -> None:
        if done.cancelled() or done.exception() is not None:  # the agent stopped first: applied at the next start
            log.info("shadow: desired state version %d not applied: %s", version,
                     "cancelled" if done.cancelled() else done.exception())
            return
        self.applied_versions.append(version)
        log.info("shadow: desired state version %d applied", version)
        self.worker.submit(self.report)

    def reported_state(self) -> dict[str, Any]:
        link, status = self.link, self.agent.status()
        return {
            "defaults": self.desired.get("defaults", {}), "cameras": self.desired.get("cameras", {}),
            "model_version": status.student.version, "model": status.student.to_dict(),
            "agent_version": agent_version(), "config_error": self.error, "model_status": self.model_status,
            "health": {"status": "ok" if link.connection.connected and not status.errors else "degraded",
                       "uptime_s": round(time.time() - status.started_s, 1), "errors": status.errors,
                       "spool_rows": link.spool.rows, "spool_evicted": link.spool.evicted()},
            "applied": {cid: {"fps": s.settings.fps, "level": s.settings.cascade.level,
                              "budget_per_hour": s.settings.cascade.budget_per_hour,
                              "labels": {k: [v.accept, v.reject] for k, v in s.settings.cascade.labels.items()}}
                        for cid, s in status.cameras.items()},
        }

    def report(self) -> None:
        new = self.reported_state()
        body = {"state": {"reported": replace_patch(self.reported, new)}, "clientToken": uuid.uuid4().hex}
        if self._publish("update", body):
            self.reported = new

    def _publish(self, op: str, body: dict[str, Any]) -> bool:
        data = json.dumps(body, default=str).encode()
        if len(data) > MAX_SHADOW_BYTES:
            log.error("shadow: a %d-byte %s is over the %d-byte shadow limit; not sent", len(data), op,
                      MAX_SHADOW_BYTES)
            return False
        try:
            self.link.connection.publish(self.topics.shadow(op), data)
            return True
        except TransportError as exc:
            log.info("shadow: %s not sent (%s); sent again on reconnect", op, exc)
            return False


def _desired(document: dict[str, Any]) -> Any:
    state = document.get("state")
    return state.get("desired") if isinstance(state, dict) else None


def agent_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("framesieve-cascade")
    except PackageNotFoundError:
        return "0+unknown"
