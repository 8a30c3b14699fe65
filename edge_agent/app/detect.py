"""The student step of a batch: the agent's student for every camera without one of its own (one batched
call), each specialized camera's own for its frames. A new agent student is on probation for its first
live batches; if it fails one, the previous one comes back and that batch is run again with it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts.detections import Detections
from edge_agent.app.camera import CameraPipeline
from edge_agent.app.look import Look
from edge_agent.pipeline.detector import BatchedStudent
from models.runtime import Detector

log = logging.getLogger(__name__)


@dataclass
class Probation:
    """A freshly installed student, watched for `batches_left` live batches; the previous one is kept to
    come back. `done(None)` once it passed, `done(reason)` after a roll-back."""

    previous: BatchedStudent
    batches_left: int
    done: Callable[[str | None], None]


class Students:
    def __init__(self, detector: Detector, on_swap: Callable[[BatchedStudent], None]):
        self.shared = BatchedStudent(detector)
        self.on_swap = on_swap  # the cameras that run the agent's student follow its thresholds
        self._probation: Probation | None = None
        self.failed_calls = 0

    @property
    def model_wh(self) -> tuple[int, int]:
        return self.shared.detector.input_wh

    def install(self, detector: Detector, probation_batches: int, done: Callable[[str | None], None]) -> None:
        """Use `detector` from now on; the previous student comes back if the new one fails on one of the
        next `probation_batches` batches. On the loop's thread."""
        previous = self.shared
        self._swap(BatchedStudent(detector))
        self._probation = Probation(previous, probation_batches, done)
        log.info("student %s %s installed; on probation for %d batch(es)", detector.manifest.name,
                 detector.manifest.version, probation_batches)

    def _swap(self, student: BatchedStudent) -> None:
        self.shared = student
        self.on_swap(student)

    def detect(self, looks: Sequence[Look], cameras: dict[str, CameraPipeline]) -> list[Detections | None]:
        """One Detections per look, in order; None for the looks of a call that failed (a damaged model):
        those frames are decided at the edge and flagged, the others go on."""
        out: list[Detections | None] = [Detections.empty()] * len(looks)
        groups: dict[str, list[int]] = {}
        for k, look in enumerate(looks):
            camera = look.frame.camera
            groups.setdefault(camera if cameras[camera].own_student is not None else "", []).append(k)
        for camera, indices in groups.items():
            jobs = [looks[k].job() for k in indices]
            own = cameras[camera].own_student if camera else None
            try:
                found: Sequence[Detections | None] = own.detect(jobs) if own is not None else self._shared_detect(jobs)
            except Exception as exc:
                self.failed_calls += 1
                model = (own or self.shared).detector.manifest
                log.error("student %s %s failed on %d frame(s): %s; decided at the edge (student_failed)",
                          model.name, model.version, len(jobs), exc)
                found = [None] * len(jobs)
            for k, dets in zip(indices, found, strict=True):
                out[k] = dets
        return out

    def _shared_detect(self, jobs: list) -> list[Detections]:
        probation = self._probation
        if probation is None:
            return self.shared.detect(jobs)
        try:
            out = self.shared.detect(jobs)
        except Exception as exc:
            self._probation = None
            self._swap(probation.previous)
            log.error("the new student failed on a live batch (%s); rolled back to %s %s", exc,
                      self.shared.detector.manifest.name, self.shared.detector.manifest.version)
            probation.done(f"the new model failed on a live batch and was rolled back: {exc}")
            return self.shared.detect(jobs)
        probation.batches_left -= 1
        if probation.batches_left <= 0:
            self._probation = None
            probation.done(None)
        return out

    def close(self) -> None:
        """A student still on probation when the agent stops is neither passed nor failed."""
        self._probation = None
