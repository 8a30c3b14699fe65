"""Is a camera's detect stream larger than its student needs? Said once per camera and resolution.

Why: a whole frame the regions stage does not tile (regions.py: at most `max_downscale` times the student's
input on either axis) is shrunk into one student look, and every pixel beyond the student's input was decoded
for nothing. Decoding costs about a frame's pixels (and bits): a 640x360 sub-stream shrunk 2x into a 320x192
student is 4x the pixels of a 320x180 one, which shows the student the same whole-frame look. The cure is on
the camera: a detect sub-stream at about the student's input, the main stream kept as `escalation_source`
so escalation crops keep its pixels. A tiled frame is a deliberate choice (small objects keep their pixels on
the tiles), and a frame within HINT_DOWNSCALE of the input is close enough: neither is hinted.

The factor is the larger of the two axes' (frame / student input): the student's pre-processing resizes the
frame to its input, so that axis loses the most detail; it is the letterbox's scale as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.pipeline.regions import whole_frame_regions

HINT_DOWNSCALE = 1.5  # a whole frame shrunk at least this much into one student look is worth a smaller stream


@dataclass(frozen=True)
class DetectSize:
    """How a camera's decoded frame maps onto its student's input."""

    frame_wh: tuple[int, int]
    student_wh: tuple[int, int]
    downscale: float  # the whole frame into one student look: max(frame w / input w, frame h / input h)
    tiles: int  # student looks per whole-frame look (1: not tiled)
    suggested_wh: tuple[int, int]  # the frame's aspect, fitted into the student's input, even numbers

    @property
    def oversized(self) -> bool:
        """Shrunk >= HINT_DOWNSCALE into a single student look: a smaller detect stream would do."""
        return self.tiles == 1 and self.downscale >= HINT_DOWNSCALE - 1e-9

    @property
    def pixel_ratio(self) -> float:
        """Pixels decoded per pixel of the suggested stream."""
        return self.frame_wh[0] * self.frame_wh[1] / (self.suggested_wh[0] * self.suggested_wh[1])

    def hint(self, camera: str, has_escalation_source: bool) -> str:
        """The installer's advice, naming the camera, the sizes, the factor, the fix and why."""
        (w, h), (mw, mh), (sw, sh) = self.frame_wh, self.student_wh, self.suggested_wh
        keep = ("and keep its main stream as `escalation_source` for escalation crops" if has_escalation_source
                else "and name its main stream as `escalation_source` so escalation crops keep the full resolution")
        return (f"camera {camera}: its detect stream is {w}x{h}, {self.downscale:.2f}x the student's {mw}x{mh} "
                f"input, and is shrunk into one student look (not tiled), so the gateway decodes "
                f"{self.pixel_ratio:.1f}x the pixels of a {sw}x{sh} stream, which would give the student about the "
                f"same look (decoding costs about a frame's pixels and bits). Set the camera's detect sub-stream "
                f"(`source`) to about {sw}x{sh} {keep}. (Silence this with regions.oversize_hint: false for this "
                f"camera.)")

    def to_dict(self) -> dict[str, object]:
        """For the camera's status, the agent's summary and /metrics."""
        return {"size": f"{self.frame_wh[0]}x{self.frame_wh[1]}",
                "student_input": f"{self.student_wh[0]}x{self.student_wh[1]}",
                "downscale": round(self.downscale, 4), "tiles": self.tiles, "oversized": self.oversized,
                "suggested": f"{self.suggested_wh[0]}x{self.suggested_wh[1]}"}


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def detect_size(frame_wh: tuple[int, int], student_wh: tuple[int, int], max_downscale: float) -> DetectSize:
    """The frame against the student's input, tiled or not exactly as the regions stage decides
    (`regions.max_downscale`)."""
    (w, h), (mw, mh) = (int(frame_wh[0]), int(frame_wh[1])), (int(student_wh[0]), int(student_wh[1]))
    if min(w, h, mw, mh) <= 0:
        raise ValueError(f"frame {frame_wh} and student input {student_wh} must be positive")
    downscale = max(w / mw, h / mh)
    tiles = len(whole_frame_regions((w, h), (mw, mh), max_downscale))
    return DetectSize((w, h), (mw, mh), downscale, tiles, (_even(w / downscale), _even(h / downscale)))
