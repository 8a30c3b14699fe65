"""The agent tells the installer when a camera's detect stream is larger than its student needs: real
camera-like streams (vtest.avi encoded by Debian's ffmpeg as a camera would, 3 s each), decoded by PyAV
through the agent's own loop; the hint, once per camera and size, the status, the summary and /metrics."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_agent.app import Agent
from edge_agent.app.camera import CameraPipeline
from edge_agent.bench.streams import StreamKind
from edge_agent.config import AgentConfig, CameraConfig, CameraSettings
from edge_agent.metrics import render
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig
from edge_agent.pipeline.detect_size import HINT_DOWNSCALE, detect_size
from models.student.data import resolve_clip

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
                                  reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")
SIZES = {"sub": (640, 360), "matched": (320, 180), "main": (1280, 720)}
HINTS = "detect_stream_oversized"


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> dict[str, Path]:
    """3 s of vtest at each size, H.264 at 15 fps with a keyframe every second, as a camera sends it."""
    folder = tmp_path_factory.mktemp("streams")
    out = {}
    for name, (w, h) in SIZES.items():
        out[name] = folder / f"{name}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(resolve_clip("vtest.avi")),
                        "-t", "3", *StreamKind(w, h, 15, 1.0).ffmpeg_args(), str(out[name])], check=True)
    return out


def test_the_factor_tiles_and_suggested_size_follow_the_frame_and_the_student():
    sub = detect_size((640, 360), (320, 192), 3.0)
    assert (sub.downscale, sub.tiles, sub.suggested_wh, sub.oversized) == (2.0, 1, (320, 180), True)
    assert sub.pixel_ratio == 4.0
    plaza = detect_size((768, 576), (320, 192), 3.0)  # 4:3: the height is what fills the input
    assert (plaza.downscale, plaza.suggested_wh, plaza.oversized) == (3.0, (256, 192), True)
    assert not detect_size((320, 180), (320, 192), 3.0).oversized  # matched
    assert detect_size((480, 270), (320, 192), 3.0).oversized  # exactly HINT_DOWNSCALE
    assert not detect_size((448, 252), (320, 192), 3.0).oversized  # 1.4x: close enough
    main = detect_size((1280, 720), (320, 192), 3.0)
    assert main.tiles == 4 and not main.oversized  # tiled: a deliberate choice for small objects
    assert detect_size((1280, 720), (320, 192), 16.0).oversized  # the same frame when tiling is off
    assert detect_size((642, 362), (320, 192), 3.0).suggested_wh == (320, 180)  # even numbers
    kept = sub.hint("gate", has_escalation_source=True)
    for part in ("camera gate", "640x360", "2.00x", "320x192", "about 320x180", "keep its main stream as "
                 "`escalation_source`", "4.0x the pixels", "decoding costs about a frame's pixels",
                 "regions.oversize_hint: false"):
        assert part in kept, part
    assert "name its main stream as `escalation_source`" in sub.hint("gate", has_escalation_source=False)


@needs_ffmpeg
def test_an_oversized_stream_is_said_once_per_camera_and_shown_in_status_and_metrics(streams, tmp_path, caplog):
    cameras = [{"id": name, "source": str(path), "decode": {"mode": "auto"}} for name, path in streams.items()]
    cameras += [{"id": "sub-2", "source": str(streams["sub"]), "decode": {"mode": "auto"}},
                {"id": "quiet", "source": str(streams["sub"]), "decode": {"mode": "auto"},
                 "regions": {"oversize_hint": False}}]
    config = AgentConfig.model_validate({"cameras": cameras, "escalation": {"transport": "none"}})
    caplog.set_level(logging.WARNING, logger="edge_agent.advice")
    agent = Agent(config, events_db=tmp_path / "e.sqlite")
    mw, mh = agent.student.detector.input_wh
    summary = agent.run()

    assert all(summary["cameras"][c]["sampled"] == 3 for c in summary["cameras"])  # every sample looked at
    hints = [r for r in caplog.records if getattr(r, "event", None) == HINTS]
    assert sorted(r.camera for r in hints) == ["sub", "sub-2"]  # once each, over 3 samples; not quiet's
    factor = max(640 / mw, 360 / mh)
    assert factor >= HINT_DOWNSCALE  # the student this test runs makes 640x360 oversized
    for record in hints:
        assert record.size == "640x360" and record.downscale == pytest.approx(factor, abs=1e-4)
        assert record.student_input == f"{mw}x{mh}" and record.tiles == 1
        message = record.getMessage()
        assert f"camera {record.camera}:" in message and f"about {record.suggested}" in message

    seen = summary["detect_stream"]
    assert seen["sub"]["downscale"] == pytest.approx(factor, abs=1e-4) and seen["sub"]["oversized"]
    assert seen["quiet"]["oversized"]  # silenced in the log only: the fleet still sees it
    assert not seen["matched"]["oversized"] and seen["matched"]["size"] == "320x180"
    assert seen["main"]["tiles"] > 1 and not seen["main"]["oversized"]
    assert agent.status().cameras["sub"].detect_stream == seen["sub"]

    text = render(summary)
    assert f'framesieve_detect_downscale{{camera="sub"}} {factor:.4f}' in text
    assert 'framesieve_detect_stream_oversized{camera="sub"} 1' in text
    assert 'framesieve_detect_stream_oversized{camera="quiet"} 1' in text
    assert 'framesieve_detect_stream_oversized{camera="matched"} 0' in text
    assert 'framesieve_detect_stream_oversized{camera="main"} 0' in text
    assert "# TYPE framesieve_detect_downscale gauge" in text


@needs_ffmpeg
def test_a_reconnect_at_another_size_is_checked_again_and_each_size_said_once(streams, caplog):
    """The camera's stream comes back at another resolution, then at the first again: its status follows,
    and each oversized size is said once; silenced live, a new size is not said."""

    def frames(name: str) -> list:
        with AVFileSource("cam", streams[name], 1.0, DecodeConfig()) as source:
            return list(source)

    sub, matched = frames("sub"), frames("matched")
    camera = CameraPipeline(CameraConfig(id="cam", source="rtsp://10.0.0.9/sub"), {"person": 0.3, "vehicle": 0.3})
    caplog.set_level(logging.WARNING, logger="edge_agent.advice")
    student = (320, 192)
    said = []
    for frame in sub[:2] + matched + sub[2:]:
        camera.look(frame, student)
        said.append(sum(getattr(r, "event", None) == HINTS for r in caplog.records))
        assert camera.status().detect_stream["size"] == "{}x{}".format(*frame.image.shape[1::-1])
    assert said == [1] * len(said)  # at the first 640x360 frame, and never again
    camera.look(matched[0], (160, 96))  # a smaller student: 320x180 is now 2x its input
    assert camera.detect_size.oversized and sum(getattr(r, "event", None) == HINTS for r in caplog.records) == 2
    camera.reconfigure(CameraSettings.model_validate({"regions": {"oversize_hint": False, "max_downscale": 16}}))
    camera.look(sub[0], (160, 96))  # 4x into one look (tiling off): oversized, but silenced live
    assert camera.detect_size.oversized and camera.detect_size.downscale == 4.0
    assert sum(getattr(r, "event", None) == HINTS for r in caplog.records) == 2
