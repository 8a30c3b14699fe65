"""The gateway's per-frame stages: sources (with the sampler), the motion gate, and region planning.

The README's diagram and docs/architecture.md show where they sit. These stages hold no models and talk
to no cloud; they decide cheaply which frames, and which parts of them, are worth running the student on.
"""

from edge_agent.pipeline.motion import MotionConfig, MotionGate, MotionResult
from edge_agent.pipeline.opener import open_source
from edge_agent.pipeline.regions import Region, plan_regions
from edge_agent.pipeline.sources import (
    FrameSource,
    ImageFolderSource,
    SampledFrame,
    SourceError,
    VideoFileSource,
)
from edge_agent.pipeline.stream import StreamSource

__all__ = [
    "FrameSource",
    "ImageFolderSource",
    "MotionConfig",
    "MotionGate",
    "MotionResult",
    "Region",
    "SampledFrame",
    "SourceError",
    "StreamSource",
    "VideoFileSource",
    "open_source",
    "plan_regions",
]
