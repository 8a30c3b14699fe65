"""What a camera's pipeline hands between its stages: the frame the student is to look at (`Look`) and the
camera's counters. Apart from camera.py so that escalate.py can name them without importing the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.pipeline.regions import Region
from edge_agent.pipeline.sources import SampledFrame


@dataclass
class Counters:
    sampled: int = 0
    motion_skipped: int = 0
    edge_decided: int = 0
    escalated: int = 0
    audit: int = 0
    budget_refused: int = 0
    cloud_failed: int = 0
    cloud_open: int = 0  # not asked: the circuit breaker was open (decided at the edge)
    cloud_busy: int = 0  # not asked: escalation.max_in_flight were awaited already (decided at the edge)
    student_failed: int = 0  # the student failed on the frame's batch (the settled past carried)
    bytes_sent: int = 0
    message_units: int = 0  # IoT Core meters messages in 5 KB units
    fullres_sent: int = 0  # escalations cropped from the camera's full-resolution stream (escalation_source)
    fullres_missed: int = 0  # ...sent from the detect frame: no full-resolution frame within max_skew_s


@dataclass(frozen=True)
class Look:
    """A frame with motion and the regions the student is to look at."""

    frame: SampledFrame
    regions: list[Region]
    moved: Sequence[Sequence[int]] = ()  # the motion boxes

    @property
    def frame_wh(self) -> tuple[int, int]:
        h, w = self.frame.image.shape[:2]
        return w, h

    @property
    def whole_frame(self) -> bool:
        """The student looked at all of the frame (one region, or the tiles of a large frame)."""
        return bool(self.regions) and all(r.whole_frame for r in self.regions)

    def job(self) -> tuple:
        """The student's input: (image, region boxes)."""
        return self.frame.image, [r.box for r in self.regions]
