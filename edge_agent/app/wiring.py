"""Everything an agent runs with, built from its config in one place: the student, the shared MQTT link
(built once and handed to the transport, the event log and fleet management), the transport, the event
log, one pipeline per camera, the sources, the specialization loop and fleet management.

Each part is entered into the caller's ExitStack as it is opened, so a start that fails half-way (a
missing source, a bad certificate, a student refused) closes what it had opened: no MQTT thread, spool
or event database is left behind.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import zlib
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.app.camera import CameraPipeline
from edge_agent.app.escalate import Escalator
from edge_agent.config import AgentConfig, CameraConfig, ConfigError
from edge_agent.control import AgentPort
from edge_agent.escalation import http as _http_transports  # noqa: F401  (registers url, sagemaker)
from edge_agent.escalation.base import TRANSPORTS, Transport
from edge_agent.escalation.mqtt import MqttLink
from edge_agent.events import EventLog
from edge_agent.pipeline.fullres import FullResFrames
from edge_agent.pipeline.opener import open_source
from edge_agent.pipeline.sources import FrameSource, SampledFrame, SourceError
from edge_agent.specialization.loop import SpecializationLoop
from edge_agent.specialization.report import StepReporter
from edge_agent.students.guard import Limits
from edge_agent.students.health import health_check
from edge_agent.students.int8 import SelfQuantizer
from edge_agent.students.store import CameraStudent, installed_student, load_student
from models.exceptions import ModelError
from models.runtime import Detector, load_detector

if TYPE_CHECKING:
    from edge_agent.fleet import Fleet

log = logging.getLogger(__name__)


@dataclass
class Parts:
    student: Detector
    link: MqttLink | None
    transport: Transport | None
    events: EventLog
    cameras: dict[str, CameraPipeline]
    sources: list[FrameSource]
    specialization: SpecializationLoop | None
    steps: StepReporter
    quantizer: SelfQuantizer | None = None


def assemble(agent: AgentPort, stack: ExitStack, transport: Transport | None = None, jsonl: Path | str | None = None,
             events_db: Path | str | None = None, sources: list[FrameSource] | None = None) -> Parts:
    """`transport` and `sources` default to what the config says (the bench injects its own)."""
    config = agent.config
    student = self_test(load_student(config), "the agent's student")  # an installed model update wins, if intact
    quantizer, student = self_quantizer(config, student, stack)
    link = None
    if transport is None:
        link, transport = open_transport(config, stack)
    else:
        stack.callback(transport.close)
    events = stack.enter_context(EventLog(events_db or config.output.events_db,
                                          jsonl or config.output.detections_out, link=link, site=config.site))
    cameras = {}
    for cam in config.cameras:
        # the audit draw's seed, per camera id: stable across restarts and wherever the camera's pipeline runs
        # (the gateway, the bench, the landed-video sieve decide alike), different between cameras. A seed by
        # position made every config's first camera audit the same frames: in a bench of short clips, each
        # its config's only camera, the same early draws (27 audits of 60 escalations at 2%)
        seed = zlib.crc32(cam.id.encode())
        cameras[cam.id] = camera = CameraPipeline(cam, student.manifest.thresholds, seed=seed)
        own = camera_student(config, cam)
        if own is not None:
            self_test(own.detector, f"camera {cam.id}'s own student")
            camera.use_student(own.detector, own.limits, own.bands)
    steps = StepReporter(link, config.site)  # specialization steps to the cloud, on the events topic
    specialization = None
    if config.specialization.enabled:
        specialization, transport = collect(agent, cameras, transport, steps)
        stack.callback(specialization.close)
    if sources is None:
        sources = [open_source(c.id, os.path.expanduser(c.source), c.fps, **c.source_options())
                   for c in config.cameras]
    for source in sources:
        stack.callback(source.close)
    return Parts(student, link, transport, events, cameras, sources, specialization, steps, quantizer)


def self_quantizer(config: AgentConfig, student: Detector, stack: ExitStack) -> tuple[SelfQuantizer | None, Detector]:
    """`student.precision` auto or int8 on an fp32 student: the quantiser, and the student to start on (the kept
    INT8 one when there is one that passes, else the fp32)."""
    if config.student_settings.precision == "fp32" or student.manifest.precision != "fp32":
        return None, student
    quantizer = SelfQuantizer(config, student)
    stack.callback(quantizer.close)
    kept = quantizer.from_cache()
    if kept is not None:
        try:
            return quantizer, self_test(kept, "the agent's INT8 student")
        except ModelError as exc:
            quantizer.refuse_kept(str(exc))
    return quantizer, student


def self_test(detector: Detector, what: str) -> Detector:
    """One real inference on a test frame before any camera starts: a file that matches its manifest's
    sha256 but is not a working model (the wrong graph, a damaged export) stops the start with a named
    error (exit 2), instead of failing every batch later."""
    image = np.full((480, 640, 3), 96, np.uint8)
    image[120:360, 260:380] = 200  # something to look at
    reason = health_check(detector, [SampledFrame("self-test", 0, 0.0, image, 0.0)], math.inf)
    if reason:
        m = detector.manifest
        raise ModelError(f"{what} {m.name} {m.version} ({m.model_path}) failed its self-test: {reason}. The file "
                         "matches its manifest's sha256, so the manifest itself names a broken model: rebuild it "
                         "(`edge-agent models fetch` for the default) or point the config at a working manifest")
    return detector


def open_transport(config: AgentConfig, stack: ExitStack) -> tuple[MqttLink | None, Transport | None]:
    """The configured transport; for mqtt and iot-core, also the link it shares with events and fleet."""
    esc = config.escalation
    if esc.transport == "none":
        return None, None
    if esc.transport in ("mqtt", "iot-core"):
        from edge_agent.escalation.mqtt import IotCoreTransport, PahoTransport, open_link

        link = open_link(config)
        stack.callback(link.close)
        cls = IotCoreTransport if esc.transport == "iot-core" else PahoTransport
        mqtt = cls(link, esc.verdict_timeout_s, owns_link=False, batch_window_ms=esc.batch_window_ms)
        stack.callback(mqtt.close)  # before the link's (last in, first out): the batcher's window leaves first
        return link, mqtt
    if esc.transport == "url":
        transport = TRANSPORTS["url"](esc.url, timeout_s=esc.timeout_s, retries=esc.retries)
    else:
        transport = TRANSPORTS["sagemaker"](esc.endpoint_name, esc.region, esc.endpoint_url, esc.timeout_s,
                                            esc.retries)
    stack.callback(transport.close)
    return None, transport


def camera_student(config: AgentConfig, cam: CameraConfig) -> CameraStudent | None:
    """A student rolled out to this camera (by the loop or a job; it wins: it was trained from the
    configured one), else the config's own `student`; both sha256-verified: a tampered one never runs."""
    installed = installed_student(config.fleet.models_dir, cam.id, config.student_threads)
    if installed is not None:
        return installed
    if cam.student:
        detector = load_detector(Path(os.path.expanduser(cam.student)), threads=config.student_threads)
        g = cam.student_guard
        limits = Limits(cam.student_max_escalation, cam.student_max_audit_disagreement,
                        g.audit_fraction if g else None, g.recall_threshold if g else None,
                        g.recall_weight if g else None, tuple(g.recall_labels) if g else ("person",))
        return CameraStudent(detector, limits, cam.student_bands)
    return None


def collect(agent: AgentPort, cameras: dict[str, CameraPipeline], transport: Transport | None,
            steps: StepReporter | None = None) -> tuple[SpecializationLoop, Transport | None]:
    """Keep the teacher's answers as training records (the transport wrapped) and make the loop that
    trains on them; cameras without their own student audit more until they have enough."""
    from edge_agent.escalation.collect import CollectingTransport

    settings = agent.config.specialization
    if importlib.util.find_spec("torch") is None:
        raise ConfigError("specialization.enabled: training on this gateway needs PyTorch, the train extra "
                          "(pip install 'framesieve-cascade[train]'); or turn it off and let the cloud train from the "
                          "records the router keeps in S3")
    loop = SpecializationLoop(agent, settings, report=steps)
    if transport is not None:
        transport = CollectingTransport(transport, loop.records_dir, on_record=loop.record_kept)
    for camera_id, camera in cameras.items():
        if camera.own_student is None and loop.in_warmup(camera_id):
            camera.start_warmup(settings.warmup_audit_fraction)
    return loop, transport


def escalator(config: AgentConfig, transport: Transport | None, sources: Sequence[FrameSource] = (),
              stack: ExitStack | None = None) -> Escalator | None:
    """The escalator, with each camera's full-resolution stream (escalation_source) opened beside it: live
    ones read by a thread from now on, files read on demand."""
    if transport is None:
        return None
    out = Escalator(transport, config.escalation, config.site)
    e = config.escalation
    log.info("escalation.max_in_flight %d for %d camera(s) at %g fps in all (%s)", e.in_flight_limit,
             len(config.cameras), sum(c.fps for c in config.cameras), e.in_flight_basis())
    if stack is not None:
        stack.callback(out.close)
    live = {s.camera: s.live for s in sources}
    for cam in config.cameras:
        if cam.escalation_source is None:
            continue
        options = cam.escalation_source.model_copy(update={"url": os.path.expanduser(cam.escalation_source.url)})
        try:
            out.fullres[cam.id] = FullResFrames(cam.id, options, live=live.get(cam.id, False), loop=cam.loop)
        except OSError as exc:
            raise SourceError(f"{exc}; escalation_source is the camera's main stream: a URL or a video file") \
                from exc
    return out


def start_fleet(agent: AgentPort, link: MqttLink | None, stack: ExitStack) -> Fleet | None:
    """Shadow, jobs and telemetry over the shared link (mqtt and iot-core transports only)."""
    if link is None:
        return None
    from edge_agent.fleet import Fleet

    fleet = Fleet(agent, link)
    stack.callback(fleet.close)
    return fleet.start()
