"""Keep what the cloud answered as training data for this camera: a transport that wraps another and
writes one training record (the crops sent and the teacher's labels in crop pixels) per answered
escalation. The same record the router keeps in S3, so the specialization loop reads either."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from contracts.training import TrainingCrop, TrainingRecord
from contracts.wire import DetectionRecord, EscalationRequest, Verdict
from edge_agent.escalation.base import Transport

log = logging.getLogger(__name__)


def to_crop_pixels(crop, record: DetectionRecord) -> DetectionRecord:
    """The inverse of Crop.to_source: a source-pixel box in the crop JPEG's pixels."""
    x1, y1, x2, y2 = crop.box
    w, h = crop.size
    sx = w / (x2 - x1) if w and x2 > x1 else 1.0
    sy = h / (y2 - y1) if h and y2 > y1 else 1.0
    b = record.box
    box = ((b[0] - x1) * sx, (b[1] - y1) * sy, (b[2] - x1) * sx, (b[3] - y1) * sy)
    return DetectionRecord(record.label, record.score, tuple(max(0.0, v) for v in box))


class CollectingTransport(Transport):
    name = "collect"

    def __init__(self, inner: Transport, folder: Path | str, on_record: Callable[[str], None] | None = None):
        self.inner = inner
        self.folder = Path(folder)
        self.written = 0
        self.on_record = on_record  # called with the camera id after each record written
        self.link = getattr(inner, "link", None)  # an MQTT transport's connection stays visible to the agent

    def escalate(self, request: EscalationRequest) -> Verdict:
        verdict = self.inner.escalate(request)
        try:
            self._write(request, verdict)
        except OSError as exc:  # training data is a by-product: never fail the decision for it
            log.warning("could not keep training record %s: %s", request.message_id, exc)
        return verdict

    def _write(self, request: EscalationRequest, verdict: Verdict) -> None:
        answers = {c.crop_id: c.detections for c in verdict.crops}
        crops = tuple(TrainingCrop(c, tuple(to_crop_pixels(c, d) for d in answers.get(c.crop_id, ())))
                      for c in request.crops)
        record = TrainingRecord(request.message_id, request.camera, request.created_s or time.time(),
                                request.pts_s, request.frame_index, request.reason, verdict.model, crops, request.site,
                                student=request.student)
        folder = self.folder / request.camera
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request.message_id}.json"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(record.to_bytes())
        os.replace(tmp, path)  # a crash never leaves half a record for the trainer to choke on
        self.written += 1
        if self.on_record is not None:
            self.on_record(request.camera)

    def stats(self) -> dict[str, int]:
        return {**self.inner.stats(), "training_records": self.written}

    def close(self) -> None:
        self.inner.close()
