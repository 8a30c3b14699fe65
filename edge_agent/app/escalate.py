"""The cloud step of a frame the cascade could not decide: crops into one message, through the transport,
and the teacher's answer merged with the edge's outside the crops. A failure is counted and the edge
decides the frame.

Escalations of live cameras leave the decision loop: `start` hands the message to a small pool of
workers and returns a Ticket at once, so the cameras keep sampling and deciding while the cloud thinks;
`collect` turns the ticket into the answer once it is done (its verdict, an error verdict, a transport
error or its timeout). A replayed file has no clock to keep up with: its escalations are awaited inline,
so a clip gives the same decisions however fast the machine. The circuit breaker (escalation/breaker.py)
and a cap on escalations in flight decide at the edge at once, without asking, while the cloud fails.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from contracts.detections import Detections
from contracts.wire import EscalationRequest, Verdict, WireError
from edge_agent.config import EscalationSettings
from edge_agent.escalation.base import Transport, TransportError
from edge_agent.escalation.breaker import CircuitBreaker
from edge_agent.escalation.crops import build_lean_request, build_request, lean_boxes
from edge_agent.pipeline.carry import outside
from edge_agent.pipeline.cascade import Decision
from edge_agent.pipeline.fullres import FullResFrames

if TYPE_CHECKING:
    from edge_agent.app.look import Counters, Look

log = logging.getLogger(__name__)
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Answer:
    cloud: Detections  # the teacher's detections, in source pixels
    merged: Detections  # the cloud's inside the crops sent, the edge's outside them
    crops: list[Box]  # where the teacher looked, in source pixels
    whole_frame: bool  # it looked at the whole frame


@dataclass
class Ticket:
    """One escalation on its way; `fallback` names why the edge decides instead (None while it may answer)."""

    camera: str
    frame_index: int
    boxes: list[Box]
    whole: bool
    future: concurrent.futures.Future[Verdict] | None = None
    fallback: str | None = None  # cloud_open | cloud_busy | cloud_failed
    pooled: bool = False  # counted in the escalator's in_flight until collected
    scale: tuple[float, float] | None = None  # sent from the full-resolution stream: its pixels -> the detect frame's

    def done(self) -> bool:
        return self.future is None or self.future.done()


class Escalator:
    def __init__(self, transport: Transport, settings: EscalationSettings, site: str):
        self.transport = transport
        self.settings = settings
        self.site = site
        self.breaker = CircuitBreaker(settings.breaker)
        self.in_flight = 0  # tickets handed to the pool and not collected yet
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.fullres: dict[str, FullResFrames] = {}  # per camera: its escalation_source, when it has one

    def crops(self, look: Look, decision: Decision | None = None) -> list[Box]:
        """What is sent (escalation.crop, per camera crop_by_camera): the whole frame, the regions the student
        looked at, or (uncertain) crops around what the cascade is unsure of; an audit or onboarding frame, in
        doubt about nothing in particular, shows the regions. Crops covering most of the frame become it."""
        w, h = look.frame_wh
        s = self.settings
        crop = s.crop_by_camera.get(look.frame.camera, s.crop)
        if crop == "frame":
            return [(0, 0, w, h)]
        if crop == "regions":
            return [r.box for r in look.regions]
        doubt = decision.doubt if decision is not None and decision.doubt else ()
        return lean_boxes(doubt or [r.box for r in look.regions], (w, h), s.crop_margin if doubt else 0.0)

    def start(self, look: Look, decision: Decision, counters: Counters, wait: bool = True) -> Ticket:
        """Send the frame's escalation; `wait`: answer inline (replayed files), else through the pool."""
        frame = look.frame
        boxes = self.crops(look, decision)
        ticket = Ticket(frame.camera, frame.frame_index, boxes, boxes == [(0, 0, *look.frame_wh)])
        if not wait and self.in_flight >= self.settings.in_flight_limit:  # before the breaker: a probe must go
            counters.cloud_busy += 1
            ticket.fallback = "cloud_busy"
            return ticket
        if not self.breaker.allow():
            counters.cloud_open += 1
            ticket.fallback = "cloud_open"
            return ticket
        image, sent, student = self._full_resolution(look, boxes, decision.edge, ticket, counters)
        try:
            quality = self.settings.jpeg_quality_by_camera.get(frame.camera, self.settings.jpeg_quality)
            # One image at the teacher's scale (the whole frame, or the doubt in place); regions: one JPEG each.
            regions = self.settings.crop_by_camera.get(frame.camera, self.settings.crop) == "regions"
            build = build_request if regions else build_lean_request
            request = build(frame.camera, frame.frame_index, frame.pts_s, image, sent,
                            decision.reason or "uncertain", student, self.site, quality,
                            max_px=self.settings.max_crop_px)
            size = len(request.to_bytes())
        except WireError as exc:
            self.breaker.release()
            ticket.future = _failed(exc)
            return ticket
        counters.bytes_sent += size
        counters.message_units += -(-size // 5120)  # IoT Core meters messages in 5 KB units
        if wait:
            ticket.future = concurrent.futures.Future()
            try:
                ticket.future.set_result(self._call(request))
            except Exception as exc:
                ticket.future.set_exception(exc)
        else:
            self.in_flight += 1
            ticket.pooled = True
            ticket.future = self._executor().submit(self._call, request)
        return ticket

    def _full_resolution(self, look: Look, boxes: list[Box], student: Detections, ticket: Ticket,
                         counters: Counters) -> tuple[np.ndarray, list[Box], Detections]:
        """What the message is cut from: the camera's full-resolution frame nearest the detect frame, with the
        boxes and the student's detections mapped to its pixels (the answer is mapped back in `collect`);
        the detect frame itself when the camera has no escalation_source or it has no frame close enough."""
        frame = look.frame
        source = self.fullres.get(frame.camera)
        if source is None:
            return frame.image, boxes, student
        found = source.frame_at(frame.wall_time if source.live else frame.pts_s)
        if found is None:
            counters.fullres_missed += 1
            return frame.image, boxes, student
        counters.fullres_sent += 1
        w, h = look.frame_wh
        big_h, big_w = found.image.shape[:2]
        sx, sy = big_w / w, big_h / h
        mapped = [(max(0, math.floor(x1 * sx)), max(0, math.floor(y1 * sy)), min(big_w, math.ceil(x2 * sx)),
                   min(big_h, math.ceil(y2 * sy))) for x1, y1, x2, y2 in boxes]
        ticket.scale = (w / big_w, h / big_h)
        return found.image, mapped, student.with_scale(sx, sy).with_clip(big_w, big_h)

    def _call(self, request: EscalationRequest) -> Verdict:
        """The transport's answer; on a worker thread for live cameras. Every outcome goes to the breaker."""
        try:
            verdict = self.transport.escalate(request)
            if verdict.error:  # the cloud dead-lettered the message: it will never answer it
                raise TransportError(f"the cloud will not answer escalation {request.message_id}: {verdict.error}")
        except Exception as exc:
            self.breaker.record(False, str(exc)[:200])
            raise
        self.breaker.record(True)
        return verdict

    def collect(self, ticket: Ticket, decision: Decision, counters: Counters) -> Answer | None:
        """The answer of a done ticket, or None (the edge decides; ticket.fallback says why). A ticket not
        done by now (the agent is stopping) is given up."""
        if ticket.future is None:
            return None
        if ticket.pooled:
            ticket.pooled = False
            self.in_flight -= 1
        try:
            if not ticket.future.done():
                ticket.future.cancel()
                raise TransportError("no answer before the agent stopped")
            verdict = ticket.future.result()
        except Exception as exc:
            counters.cloud_failed += 1
            ticket.fallback = "cloud_failed"
            if not isinstance(exc, (TransportError, WireError)):
                log.error("camera %s frame %d: escalation failed unexpectedly", ticket.camera, ticket.frame_index,
                          exc_info=exc)
            log.warning("camera %s frame %d: cloud unavailable, decided at the edge: %s",
                        ticket.camera, ticket.frame_index, exc)
            return None
        cloud = Detections.from_wire(verdict.detections())
        if ticket.scale is not None:  # answered in the full-resolution frame's pixels
            cloud = cloud.with_scale(*ticket.scale)
        merged = cloud if ticket.whole else Detections.concat([cloud, outside(decision.edge, ticket.boxes)])
        return Answer(cloud, merged, ticket.boxes, ticket.whole)

    def ask(self, look: Look, decision: Decision, counters: Counters) -> Answer | None:
        """Synchronously: the cloud's answer, or None when it could not be had (counted)."""
        return self.collect(self.start(look, decision, counters, wait=True), decision, counters)

    def deadline_s(self) -> float:
        """The longest an escalation can take before its transport gives up."""
        s = self.settings
        if s.transport in ("mqtt", "iot-core"):
            return s.verdict_timeout_s + s.batch_window_ms / 1000 + s.mqtt.publish_timeout_s
        return s.timeout_s * s.retries + 0.2 * 2 ** s.retries  # attempts plus the backoff between them

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.settings.in_flight_limit, "escalation")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for source in self.fullres.values():
            source.close()


def _failed(exc: BaseException) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_exception(exc)
    return future
