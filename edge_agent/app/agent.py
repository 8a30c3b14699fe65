"""The agent loop: frames of every camera in batches; per batch, queued commands first, then each camera
looks (camera.py), the students run batched over cameras (detect.py), and each camera settles its frame
(camera.py, escalate.py) into the event log. `wiring.py` builds the parts; fleet management and
specialization drive the agent only through its AgentPort (control.py): `status()` and `submit()`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from contextlib import ExitStack
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge_agent.app import report, wiring
from edge_agent.app.camera import CameraPipeline
from edge_agent.app.commands import CommandQueue
from edge_agent.app.detect import Students
from edge_agent.app.inflight import InFlight, Slot, camera_of, ready
from edge_agent.app.look import Look
from edge_agent.config import AgentConfig, ConfigError
from edge_agent.control import (
    AgentStatus,
    ApplySettings,
    Command,
    CommandFailed,
    EndWarmup,
    InstallCameraStudent,
    InstallStudent,
    ModelInfo,
)
from edge_agent.escalation.base import Transport
from edge_agent.events import FrameEvent, FrameSink
from edge_agent.feeder import FrameFeeder
from edge_agent.metrics import serve_metrics
from edge_agent.pipeline.detector import BatchedStudent
from edge_agent.pipeline.sources import FrameSource, SampledFrame
from edge_agent.students.guard import Limits
from edge_agent.students.health import health_check
from edge_agent.students.store import ModelStore, camera_store

log = logging.getLogger(__name__)
# Asked to stop, the agent waits at most this long for escalations on their way, then decides them at the
# edge and writes every frame: well inside systemd's TimeoutStopSec (30 s), after which nothing is written.
STOP_WAIT_S = 10.0


class Agent:
    def __init__(self, config: AgentConfig, transport: Transport | None = None, jsonl: Path | str | None = None,
                 events_db: Path | str | None = None, sources: list[FrameSource] | None = None):
        """`transport` and `sources` default to what the config says; the bench injects its own."""
        self.config = config
        self.stop_event = threading.Event()
        self.errors = 0
        self.student_rollbacks = 0
        self.started_s = time.time()
        self.metrics_server: ThreadingHTTPServer | None = None
        self._commands = CommandQueue()
        self._loop_thread: int | None = None  # the thread in run(): the one that changes the cameras
        with ExitStack() as stack:  # a failed start closes what it opened
            parts = wiring.assemble(self, stack, transport, jsonl, events_db, sources)
            self.link, self.transport = parts.link, parts.transport
            self.events: FrameSink = parts.events
            self.cameras: dict[str, CameraPipeline] = parts.cameras
            self.sources, self.specialization = parts.sources, parts.specialization
            self.steps = parts.steps  # each camera's specialization steps, to the cloud
            self.quantizer = parts.quantizer  # student.precision: the INT8 student made on these cameras' frames
            self.students = Students(parts.student, self._follow_agent_student)
            self.escalator = wiring.escalator(config, self.transport, self.sources, stack)
            self.inflight = InFlight()
            # Cameras that run in real time (streams, files at media pace) never wait for the cloud; a
            # replayed file waits, so a clip gives the same decisions however fast the machine is.
            self._live = {s.camera for s in self.sources if s.live or s.realtime}
            self.fleet = wiring.start_fleet(self, self.link, stack)
            self._closing = stack.pop_all()

    @property
    def student(self) -> BatchedStudent:
        """The agent's student: every camera without its own runs it."""
        return self.students.shared

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self, max_batch: int = 8) -> dict:
        out = self.config.output
        if out.metrics_port is not None:
            try:
                self.metrics_server = serve_metrics(self.summary, out.metrics_port, out.metrics_host)
            except OSError as exc:
                self.close()
                raise ConfigError(f"output.metrics_port: cannot serve metrics on {out.metrics_host}:"
                                  f"{out.metrics_port}: {exc.strerror}; another process holds it: choose another "
                                  "port or stop that process") from exc
        self._loop_thread = threading.get_ident()
        feeder = FrameFeeder(self.sources, self.stop_event).start()
        if self.specialization is not None:
            self.specialization.start()
        last: dict[str, SampledFrame] = {}  # each camera's latest frame
        try:
            while (frames := feeder.batch(max_batch, idle_s=0.1 if len(self.inflight) else None)) is not None:
                self._commands.run(frames, self._handle)
                try:
                    self.process(frames)
                except Exception:  # one bad batch must not stop a gateway that watches many cameras
                    self.errors += 1
                    log.exception("processing %d frame(s) failed; continuing", len(frames))
                last.update((f.camera, f) for f in frames)
            if not self.stop_event.is_set():
                self._finish_specialization(list(last.values()))
        finally:
            asked_to_stop = self.stop_event.is_set()  # else the sources ended: wait for every answer
            self.stop_event.set()
            feeder.join()
            try:
                self._drain(STOP_WAIT_S if asked_to_stop else None)
            except Exception:
                log.exception("finishing the frames that awaited the cloud failed")
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
                self.metrics_server.server_close()
            self.close()
        return self.summary()

    def stop(self) -> None:
        self.stop_event.set()

    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def _finish_specialization(self, frames: list[SampledFrame]) -> None:
        """The sources ended (files) while a camera was specializing: let it finish, and check a promoted
        student on each camera's last frames, so the next run starts with it. A stop request ends the wait."""
        loop = self.specialization
        if loop is None or loop.busy is None:
            return
        log.info("the sources ended while camera %s was specializing; waiting for it (stop the agent to skip)",
                 loop.busy)
        while loop.busy is not None and not self.stop_event.wait(0.2):
            self._commands.run(frames, self._handle)
        self._commands.run(frames, self._handle)

    def process(self, frames: list[SampledFrame]) -> list[FrameEvent]:
        """One batch: the final events finished now (this batch's, and earlier frames the cloud has answered
        since), written to the event log. Every frame gets exactly one event, whatever fails."""
        events = [self._finish(slot) for slot in self.inflight.take_ready()]
        if self.quantizer is not None:  # student.precision: frames for the INT8 calibration; its swap once ready
            self.quantizer.tick([f for f in frames if self.cameras[f.camera].own_student is None], self.students,
                                self.config.fleet.probation_batches)
        looks: list[Look] = []
        for frame in frames:
            camera = self.cameras[frame.camera]
            try:
                seen = camera.look(frame, self.students.model_wh)
            except Exception:
                seen = self._failed(camera, frame, "looking at")
            if isinstance(seen, Look):
                looks.append(seen)
            else:
                events += self._hold(seen)  # nothing moved: the previous decision, carried
        for look, dets in zip(looks, self.students.detect(looks, self.cameras), strict=True):
            camera = self.cameras[look.frame.camera]
            if dets is None:
                events += self._hold(camera.student_failed(look))
                continue
            try:
                step = camera.decide(look, dets)
                if step.decision.escalate and self.escalator is not None:
                    step.ticket = self.escalator.start(look, step.decision, camera.counters,
                                                       wait=camera.id not in self._live)
            except Exception:
                events += self._hold(self._failed(camera, look.frame, "deciding"))
                continue
            events += self._hold(step)
        for event in events:
            self.events.write(event)
        return events

    def _hold(self, slot: Slot) -> list[FrameEvent]:
        """The frame's event now, or held (in frame order) behind its camera's frames awaiting the cloud."""
        if self.inflight.busy(camera_of(slot)) or not ready(slot):
            self.inflight.add(slot)
            return []
        return [self._finish(slot)]

    def _finish(self, slot: Slot) -> FrameEvent:
        camera = self.cameras[camera_of(slot)]
        if isinstance(slot, FrameEvent):
            return camera.fill(slot)
        event = camera.finish(slot, self.escalator)
        if camera.own_student is not None and (breach := camera.guard.breach()):
            self._roll_back(camera, breach)
        return event

    def _failed(self, camera: CameraPipeline, frame: SampledFrame, doing: str) -> FrameEvent:
        self.errors += 1
        log.exception("camera %s frame %d: %s it failed; decided at the edge on the past", camera.id,
                      frame.frame_index, doing)
        event = camera.student_failed(Look(frame, []))
        event.fallback = "failed"
        return event

    def _drain(self, at_most_s: float | None = None) -> None:
        """At the end: wait for the answers still on their way (their transport's timeout, or `at_most_s`),
        then finish every held frame; what did not come is decided at the edge."""
        if not len(self.inflight):
            return
        wait_s = self.escalator.deadline_s() + 1.0 if self.escalator is not None else 0.0
        wait_s = wait_s if at_most_s is None else min(wait_s, at_most_s)
        log.info("waiting up to %.1f s for %d escalation(s) still on their way", wait_s, len(self.inflight))
        for slot in self.inflight.take_all(wait_s):
            self.events.write(self._finish(slot))

    # -- the AgentPort ----------------------------------------------------------------------------------
    def run_commands(self, frames: list[SampledFrame]) -> None:
        """Queued commands now, checked on `frames` (the loop does it before every batch; the new-camera bench
        drives the agent frame by frame and calls it itself)."""
        self._commands.run(frames, self._handle)

    def status(self) -> AgentStatus:
        return AgentStatus(ModelInfo.of(self.student.detector), {cid: c.status() for cid, c in self.cameras.items()},
                           self.errors, self.started_s)

    def submit(self, command: Command) -> concurrent.futures.Future[Any]:
        camera = getattr(command, "camera", None)
        cameras = set(command.settings) if isinstance(command, ApplySettings) else {camera} if camera else set()
        unknown = sorted(cameras - set(self.cameras))
        if unknown:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_exception(CommandFailed(f"unknown camera ids {unknown}; this agent runs {sorted(self.cameras)}"))
            return future
        if threading.get_ident() == self._loop_thread and isinstance(command, (ApplySettings, EndWarmup)):
            # From the loop's own thread (the training-record collector, mid-batch): nothing else can be
            # running, and a command that needs no frame takes effect for the very next frame.
            future = concurrent.futures.Future()
            self._handle(command, future, [])
            return future
        return self._commands.put(command)

    def _handle(self, command: Command, future: concurrent.futures.Future, frames: list[SampledFrame]) -> bool:
        """Run one command on the loop's thread; False: not now, offer it the next batch."""
        if isinstance(command, InstallCameraStudent):
            frames = [f for f in frames if f.camera == command.camera]  # checked on that camera's own frames
        if not frames and isinstance(command, (InstallStudent, InstallCameraStudent)):
            return False
        if not future.set_running_or_notify_cancel():
            return True  # its caller gave up on it: it must not take effect now
        if isinstance(command, ApplySettings):
            for camera_id, settings in command.settings.items():
                self.cameras[camera_id].reconfigure(settings)
                for source in self.sources:
                    if source.camera == camera_id:
                        source.set_fps(settings.fps)
            future.set_result(None)
        elif isinstance(command, EndWarmup):
            self.cameras[command.camera].end_warmup()
            future.set_result(None)
        elif isinstance(command, InstallStudent):
            self._install_student(command, future, frames)
        else:
            self._install_camera_student(command, future, frames)
        return True

    def _install_student(self, command: InstallStudent, future: concurrent.futures.Future,
                         frames: list[SampledFrame]) -> None:
        fleet = self.config.fleet
        reason = health_check(command.detector, frames, fleet.health_max_latency_ms)
        if reason:
            future.set_exception(CommandFailed(f"health check on live frames failed: {reason}; the running model "
                                               "was kept"))
            return

        def done(failure: str | None) -> None:
            if failure is None:
                try:
                    ModelStore(fleet.models_dir).activate(command.manifest)
                except OSError as exc:
                    failure = f"the model ran but could not be recorded as active: {exc}"
            if failure:
                future.set_exception(CommandFailed(failure))
            else:
                future.set_result(None)

        self.students.install(command.detector, fleet.probation_batches, done)

    def _install_camera_student(self, command: InstallCameraStudent, future: concurrent.futures.Future,
                                frames: list[SampledFrame]) -> None:
        reason = health_check(command.detector, frames, self.config.fleet.health_max_latency_ms)
        if reason:
            future.set_exception(CommandFailed(f"health check on live frames failed: {reason}"))
            return
        camera = self.cameras[command.camera]
        limits = command.limits
        if limits is None:  # the champion's live escalation fraction, plus 5 points
            live = camera.guard.escalation_fraction()
            limits = Limits(round(min(1.0, live + 0.05), 4) if live is not None else None)
        camera.use_student(command.detector, limits, command.bands)
        camera_store(self.config.fleet.models_dir, command.camera).activate(
            command.manifest, limits={k: v for k, v in vars(limits).items() if v is not None}, note=command.note,
            bands=command.bands.model_dump() if command.bands else None)
        log.info("camera %s: now runs %s %s; rolled back if %s", command.camera, command.detector.manifest.name,
                 command.detector.manifest.version, limits)
        self.steps.report(command.camera, "promotion", command.note or "installed for this camera",
                          outcome="promoted", version=command.detector.manifest.version,
                          records=self._records(command.camera))
        future.set_result(limits)

    def _follow_agent_student(self, student: BatchedStudent) -> None:
        for camera in self.cameras.values():
            if camera.own_student is None:
                camera.cascade.student_thresholds = student.detector.manifest.thresholds

    def _roll_back(self, camera: CameraPipeline, reason: str) -> None:
        version = camera.own_student.detector.manifest.version if camera.own_student else None
        log.error("camera %s: its own student %s goes: %s; back to the agent's student", camera.id, version, reason)
        camera.drop_student(self.student.detector.manifest.thresholds)
        self.student_rollbacks += 1
        try:
            camera_store(self.config.fleet.models_dir, camera.id).deactivate()  # a restart must not revive it
        except OSError as exc:
            log.error("camera %s: could not deactivate its rolled-back student: %s", camera.id, exc)
        self.steps.report(camera.id, "rollback", reason, outcome="rolled-back", version=version or "",
                          records=self._records(camera.id))
        if self.specialization is not None:
            self.specialization.rolled_back(camera.id, reason)

    def _records(self, camera: str) -> int:
        """The camera's training records, as the specialization loop counts them (0 without the loop)."""
        return self.specialization.counts.get(camera, 0) if self.specialization is not None else 0

    # -- reporting ----------------------------------------------------------------------------------------
    def model_info(self) -> dict[str, str]:
        return ModelInfo.of(self.student.detector).to_dict()

    def summary(self) -> dict:
        """What metrics, telemetry, the bench and `run` report."""
        return report.summary(self)

    def close(self) -> None:
        """Stop taking commands (those without an outcome get AgentStopped), then close every part."""
        self.stop_event.set()
        self._commands.close()
        self.students.close()
        self._closing.close()
