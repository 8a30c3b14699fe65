"""The agent's summary: what metrics, telemetry, the bench and `run` report (in-memory counters only, so it
can be called after the agent closed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge_agent.app.camera import CameraPipeline
    from edge_agent.app.escalate import Escalator
    from edge_agent.app.inflight import InFlight
    from edge_agent.escalation.base import Transport
    from edge_agent.escalation.mqtt import MqttLink
    from edge_agent.pipeline.detector import BatchedStudent
    from edge_agent.pipeline.sources import FrameSource
    from edge_agent.specialization.loop import SpecializationLoop
    from edge_agent.students.int8 import SelfQuantizer


class Reported(Protocol):
    """What the summary reads of the agent (app/agent.py), all of it in-memory state."""

    sources: list[FrameSource]
    cameras: dict[str, CameraPipeline]
    errors: int
    student_rollbacks: int
    escalator: Escalator | None
    inflight: InFlight
    specialization: SpecializationLoop | None
    link: MqttLink | None
    transport: Transport | None
    quantizer: SelfQuantizer | None

    @property
    def student(self) -> BatchedStudent: ...

    def model_info(self) -> dict[str, str]: ...

_DECODE_KEYS = frozenset({"decode_mode", "decode_reason", "gop_s", "stream_fps", "codec", "size", "decode_threads",
                          "hwaccel", "hwaccel_note", "timestamp_error_max_s"})


def summary(agent: Reported) -> dict:
    per_camera = {}
    statuses = {cid: c.status() for cid, c in agent.cameras.items()}
    for source in agent.sources:
        counters = statuses[source.camera].counters
        counters.update(corrupt_frames=source.corrupt_frames, reconnects=source.reconnects)
        per_camera[source.camera] = counters
    total = {k: sum(c[k] for c in per_camera.values()) for k in next(iter(per_camera.values()), {})}
    own = [c.own_student for c in agent.cameras.values() if c.own_student is not None]
    out = {"cameras": per_camera, "total": total, "student_calls": agent.student.calls + sum(o.calls for o in own),
           "student_crops": agent.student.crops + sum(o.crops for o in own), "errors": agent.errors,
           "student_rollbacks": agent.student_rollbacks,
           # which cameras run a student of their own, and the live share their guard watches
           "students": {cid: {"own": s.own_student.detector.manifest.version if s.own_student else None,
                              "uncertain_fraction": s.guard.escalation_fraction(),
                              "onboarding": s.onboarding}
                        for cid, s in agent.cameras.items()}}
    if agent.quantizer is not None:  # student.precision: where the INT8 student stands, and why
        # `running`: the precision of the agent's student now (a model update may have replaced the INT8 one)
        out["student_precision"] = {**agent.quantizer.summary(), "running": agent.student.detector.manifest.precision}
    sizes = {cid: c.detect_stream for cid, c in statuses.items() if c.detect_stream is not None}
    if sizes:  # each camera's decoded frame against its student's input (pipeline/detect_size.py)
        out["detect_stream"] = sizes
    decode = {s.camera: {k: v for k, v in s.stats().items() if k in _DECODE_KEYS} for s in agent.sources}
    if any(decode.values()):  # how each stream is decoded (the levers chosen from its GOP), and why
        out["decode"] = decode
    if agent.escalator is not None and agent.escalator.fullres:  # crops from the cameras' main streams
        out["escalation_source"] = {cid: f.stats() for cid, f in agent.escalator.fullres.items()}
    if agent.escalator is not None:  # the circuit breaker and what is awaited now
        out["cloud"] = {**agent.escalator.breaker.stats(), "in_flight": agent.escalator.in_flight,
                        "max_in_flight": agent.escalator.settings.in_flight_limit,
                        "max_in_flight_auto": agent.escalator.settings.max_in_flight == "auto",
                        "held_frames": len(agent.inflight), "held_max": agent.inflight.held_max}
    if agent.specialization is not None:
        out["specialization"] = agent.specialization.summary()
    if agent.link is not None:
        transport_stats = agent.transport.stats() if agent.transport is not None else {}
        out["mqtt"] = {**transport_stats, "spool_rows": agent.link.spool.rows,
                       "spool_bytes": agent.link.spool.bytes, "spool_sent": agent.link.sender.sent,
                       # after the stop: what the spool kept for the next start, by kind (event, escalation, ...)
                       "spool_left": dict(agent.link.left_at_close),
                       "reconnects": max(0, agent.link.connection.connects - 1), "model": agent.model_info()}
    return out
