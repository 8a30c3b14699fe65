"""The cloud step of a frame the cascade could not decide: crops into one message, through the transport,
and the teacher's answer merged with the edge's outside the crops. A failure is counted and the edge
decides the frame."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.detections import Detections
from contracts.wire import WireError
from edge_agent.config import EscalationSettings
from edge_agent.escalation.base import Transport, TransportError
from edge_agent.escalation.crops import build_request
from edge_agent.pipeline.carry import outside
from edge_agent.pipeline.cascade import Decision

if TYPE_CHECKING:
    from edge_agent.app.camera import Counters, Look

log = logging.getLogger(__name__)
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Answer:
    cloud: Detections  # the teacher's detections, in source pixels
    merged: Detections  # the cloud's inside the crops sent, the edge's outside them
    crops: list[Box]  # where the teacher looked, in source pixels
    whole_frame: bool  # it looked at the whole frame


class Escalator:
    def __init__(self, transport: Transport, settings: EscalationSettings, site: str):
        self.transport = transport
        self.settings = settings
        self.site = site

    def crops(self, look: Look) -> list[Box]:
        """What is sent: the whole frame, or the regions the student looked at (escalation.crop)."""
        w, h = look.frame_wh
        return [(0, 0, w, h)] if self.settings.crop == "frame" else [r.box for r in look.regions]

    def ask(self, look: Look, decision: Decision, counters: Counters) -> Answer | None:
        """The cloud's answer, or None when it could not be had (counted as cloud_failed)."""
        frame = look.frame
        boxes = self.crops(look)
        try:
            request = build_request(frame.camera, frame.frame_index, frame.pts_s, frame.image, boxes,
                                    decision.reason or "uncertain", decision.edge, self.site,
                                    self.settings.jpeg_quality)
            size = len(request.to_bytes())
            counters.bytes_sent += size
            counters.message_units += -(-size // 5120)  # IoT Core meters messages in 5 KB units
            verdict = self.transport.escalate(request)
        except (TransportError, WireError) as exc:
            counters.cloud_failed += 1
            log.warning("camera %s frame %d: cloud unavailable, decided at the edge: %s",
                        frame.camera, frame.frame_index, exc)
            return None
        cloud = Detections.from_wire(verdict.detections())
        whole = boxes == [(0, 0, *look.frame_wh)]
        merged = cloud if whole else Detections.concat([cloud, outside(decision.edge, boxes)])
        return Answer(cloud, merged, boxes, whole)
