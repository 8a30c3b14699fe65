"""Model updates as AWS IoT jobs, over the documented Jobs MQTT API:

- subscribe `$aws/things/{thing}/jobs/notify-next` and `.../jobs/start-next/accepted|rejected`;
- on every connect and after each job, publish `.../jobs/start-next`: the service answers with the
  next pending execution (none: no `execution` key), and marks it IN_PROGRESS;
- report progress and the outcome on `.../jobs/{jobId}/update` with status IN_PROGRESS, SUCCEEDED or
  FAILED and `statusDetails.reason`.

The job document: {"operation": "model-update", "version": "1.1.0", "url": "https://.../bundle.tar.gz",
"sha256": "<the bundle's sha256>"} (`edge-agent models pack` prints one). With "camera": "<id>" (and
optionally "max_escalation", "max_audit_disagreement") it is a specialized student for that camera only.
Download, verify, install, health check on live frames, swap, probation, then SUCCEEDED, or FAILED with
the reason and the previous model still running. Jobs run one at a time on their own thread.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.jobs import ModelJob
from edge_agent.config import describe_errors
from edge_agent.control import AgentPort, AgentStopped, CommandFailed, InstallCameraStudent, InstallStudent, outcome
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.mqtt import MqttLink
from edge_agent.fleet.worker import Worker
from edge_agent.students.guard import Limits
from edge_agent.students.store import ModelStore, UpdateError, camera_store, load_camera_student
from models.exceptions import ModelError
from models.runtime import Detector, load_detector

log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class JobRunner:
    def __init__(self, agent: AgentPort, link: MqttLink, swap_timeout_s: float = 600.0):
        self.agent, self.link = agent, link
        self.topics = link.topics
        self.store = ModelStore(agent.config.fleet.models_dir)
        self.swap_timeout_s = swap_timeout_s
        self.worker = Worker("fleet-jobs")
        self.current: str | None = None
        self.finished: set[str] = set()  # start-next may answer twice (two asks in flight): run a job once
        self.rejected = 0
        self.outcomes: list[tuple[str, str, str]] = []  # (job id, status, reason), for tests and telemetry
        self.on_outcome: Callable[[], object] | None = None  # e.g. the shadow reporting the model now running

    def start(self) -> JobRunner:
        conn = self.link.connection
        conn.subscribe(self.topics.jobs("notify-next"), self._on_notify)
        conn.subscribe(self.topics.jobs("start-next/accepted"), self._on_start_next)
        conn.subscribe(self.topics.jobs("start-next/rejected"), self._on_rejected)
        conn.subscribe(self.topics.jobs("+/update/rejected"), self._on_rejected)
        self.worker.start()
        return self

    def ask_for_next(self) -> None:
        self.worker.submit(self._start_next)

    def close(self) -> None:
        self.worker.close(1.0)

    # -- the protocol ------------------------------------------------------------------------------------
    def _start_next(self) -> None:
        if self.current is not None:
            return
        body = {"clientToken": uuid.uuid4().hex}
        try:
            self.link.connection.publish(self.topics.jobs("start-next"), json.dumps(body).encode())
        except TransportError as exc:
            log.info("jobs: start-next not sent (%s); asked again on reconnect", exc)

    def _parse(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(payload)
            if not isinstance(message, dict):
                raise ValueError(f"expected a JSON object, got {type(message).__name__}")
            return message
        except (ValueError, UnicodeDecodeError) as exc:
            self.rejected += 1
            log.warning("jobs: rejected a message on %s: %s", topic, exc)
            return None

    def _on_notify(self, topic: str, payload: bytes) -> None:
        message = self._parse(topic, payload)
        if message is not None and isinstance(message.get("execution"), dict):
            self.ask_for_next()

    def _on_start_next(self, topic: str, payload: bytes) -> None:
        message = self._parse(topic, payload)
        if message is None or "execution" not in message:
            return  # nothing pending
        execution = message["execution"]
        job_id = execution.get("jobId") if isinstance(execution, dict) else None
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            self.rejected += 1
            log.warning("jobs: rejected an execution on %s: jobId %r is not a job id", topic, job_id)
            return
        if job_id != self.current:
            self.worker.submit(lambda: self._run(job_id, execution.get("jobDocument")))

    def _on_rejected(self, topic: str, payload: bytes) -> None:
        log.warning("jobs: the service rejected a request on %s: %.300s", topic, payload.decode(errors="replace"))

    def _update(self, job_id: str, status: str, **details: str) -> None:
        body = {"status": status, "statusDetails": {k: v[:1000] for k, v in details.items()},
                "clientToken": uuid.uuid4().hex}
        for _attempt in range(3):
            try:
                self.link.connection.publish(self.topics.jobs(f"{job_id}/update"), json.dumps(body).encode())
                return
            except TransportError as exc:
                log.info("jobs: status of %s not sent yet: %s", job_id, exc)
                self.link.connection.wait_connected(5.0)
        log.warning("jobs: could not report %s for job %s; the service offers the job again on reconnect",
                    status, job_id)

    # -- one job ---------------------------------------------------------------------------------------
    def _run(self, job_id: str, document: Any) -> None:
        if self.current is not None or job_id in self.finished:
            return
        self.current = job_id
        try:
            status, reason = self._update_model(job_id, document)
            if status is None:
                return  # the agent is stopping: the job stays IN_PROGRESS and is offered again
            self.outcomes.append((job_id, status, reason))
            self.finished.add(job_id)
            (log.info if status == "SUCCEEDED" else log.error)("job %s %s: %s", job_id, status, reason)
            self._update(job_id, status, reason=reason)
            if self.on_outcome is not None:
                self.on_outcome()
        finally:
            self.current = None
        self._start_next()

    def _update_model(self, job_id: str, document: Any) -> tuple[str | None, str]:
        try:
            job = ModelJob.model_validate(document)
        except ValidationError as exc:
            return "FAILED", "invalid job document: " + "; ".join(describe_errors(exc, prefix=("jobDocument",)))
        if job.camera is not None:
            return self._update_camera_model(job_id, job)
        running = self.agent.status().student
        if running.version == job.version and self.store.manifest_of(job.version) == self.store.active_manifest():
            return "SUCCEEDED", f"model {job.version} is already running"
        self._update(job_id, "IN_PROGRESS", step="downloading", version=job.version)
        installed = None
        try:
            bundle = self.store.download(job.url, job.sha256)
            installed = self.store.install(bundle, job.version)
            try:
                detector = load_detector(installed, threads=self.agent.config.student_threads)
            except ModelError as exc:  # the model inside does not match its manifest: never runs
                raise UpdateError(f"the bundle's model was refused: {exc}") from exc
            if detector.manifest.version != job.version:
                raise UpdateError(f"the bundle holds model version {detector.manifest.version}, "
                                  f"the job says {job.version}")
            self._update(job_id, "IN_PROGRESS", step="health-check", version=job.version)
            failure = self._swap(detector, installed)
        except UpdateError as exc:
            failure = str(exc)
        if failure is None:
            return None, ""
        if failure:
            if installed is not None and installed != self.store.active_manifest():
                shutil.rmtree(installed.parent, ignore_errors=True)
            return "FAILED", failure
        return "SUCCEEDED", f"model {job.version} installed, passed its health check and probation"

    def _update_camera_model(self, job_id: str, job: ModelJob) -> tuple[str | None, str]:
        """One camera's own student: installed in its own store, checked on its frames, watched by its guard."""
        cameras = sorted(c.id for c in self.agent.config.cameras)
        if job.camera not in cameras:
            return "FAILED", f"camera {job.camera!r} is not on this gateway (it runs {cameras})"
        config = self.agent.config
        store = camera_store(config.fleet.models_dir, job.camera)
        self._update(job_id, "IN_PROGRESS", step="downloading", version=job.version, camera=job.camera)
        limits = None
        if job.max_escalation is not None or job.max_audit_disagreement is not None or job.recall_threshold:
            limits = Limits(job.max_escalation, job.max_audit_disagreement, job.audit_fraction, job.recall_threshold,
                            job.recall_weight, tuple(job.recall_labels or ("person",)))
        try:
            installed = store.install(store.download(job.url, job.sha256), job.version)
            detector = load_camera_student(installed, job.camera, config.student_threads)
            install = InstallCameraStudent(job.camera, detector, installed, limits, job.bands, note=f"job {job_id}")
            outcome(self.agent.submit(install), self.swap_timeout_s, f"camera {job.camera}'s student {job.version}")
        except (UpdateError, CommandFailed) as exc:
            return "FAILED", f"{exc}; camera {job.camera} kept its student"
        except AgentStopped:
            return None, ""
        return "SUCCEEDED", f"model {job.version} runs for camera {job.camera}, watched for rollback"

    def switch_to(self, version: str, then: Callable[[str | None], None]) -> None:
        """Run an installed model version (the shadow's desired model_version: a pin or a roll-back),
        through the same health check and probation as an update; `then(reason or None)`."""
        def task() -> None:
            manifest = self.store.manifest_of(version)
            if manifest is None:
                then(f"model version {version} is not installed here (installed: {self.store.installed()}); "
                     "send a model-update job with its URL and sha256")
                return
            try:
                detector = load_detector(manifest, threads=self.agent.config.student_threads)
            except ModelError as exc:
                then(f"installed model {version} was refused: {exc}")
                return
            reason = self._swap(detector, manifest)
            if reason is not None:  # a timeout too: the shadow must not wait for this switch for ever
                then(reason or None)
        self.worker.submit(task)

    def _swap(self, detector: Detector, manifest: Path) -> str | None:
        """'' on success, the failure reason (a timeout included: then it was cancelled and never swaps
        in later), or None if the agent stopped before the verdict."""
        version = detector.manifest.version
        try:
            outcome(self.agent.submit(InstallStudent(detector, manifest)), self.swap_timeout_s, f"model {version}")
        except CommandFailed as exc:
            return str(exc)
        except AgentStopped:
            return None
        return ""
