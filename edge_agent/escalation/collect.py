"""Keep what the cloud answered as training data for this camera: a transport that wraps another and
writes one training record (the crops sent and the teacher's labels in crop pixels) per answered
escalation. The same record the router keeps in S3, so the specialization loop reads either."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from contracts.training import TrainingCrop, TrainingRecord
from contracts.wire import EscalationRequest, Verdict
from edge_agent.escalation.base import Transport

log = logging.getLogger(__name__)


class CollectingTransport(Transport):
    name = "collect"

    def __init__(self, inner: Transport, folder: Path | str, on_record: Callable[[str], None] | None = None):
        self.inner = inner
        self.folder = Path(folder)
        self.written = 0
        self.failed = 0  # records that could not be kept (a full disk)
        self.on_record = on_record  # called with the camera id after each record written
        self.link = getattr(inner, "link", None)  # an MQTT transport's connection stays visible to the agent

    def escalate(self, request: EscalationRequest) -> Verdict:
        verdict = self.inner.escalate(request)
        try:
            self._write(request, verdict)
        except OSError as exc:  # training data is a by-product: never fail the decision for it
            self.failed += 1
            full = " (the disk is full: the records kept so far stay; free space to keep collecting)" \
                if exc.errno == errno.ENOSPC else ""
            log.warning("camera %s: could not keep training record %s: %s%s", request.camera, request.message_id,
                        exc, full)
        return verdict

    def _write(self, request: EscalationRequest, verdict: Verdict) -> None:
        answers = {c.crop_id: c.detections for c in verdict.crops}
        crops = tuple(TrainingCrop(c, tuple(c.from_source(d) for d in answers.get(c.crop_id, ())))
                      for c in request.crops)
        record = TrainingRecord(request.message_id, request.camera, request.created_s or time.time(),
                                request.pts_s, request.frame_index, request.reason, verdict.model, crops, request.site,
                                student=request.student)
        folder = self.folder / request.camera
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request.message_id}.json"
        tmp = path.with_suffix(".part")
        try:
            tmp.write_bytes(record.to_bytes())
        except OSError:
            tmp.unlink(missing_ok=True)  # no half record left behind
            raise
        os.replace(tmp, path)  # a crash never leaves half a record for the trainer to choke on
        self.written += 1
        if self.on_record is not None:
            self.on_record(request.camera)

    def stats(self) -> dict[str, int]:
        return {**self.inner.stats(), "training_records": self.written}

    def close(self) -> None:
        self.inner.close()
