"""Decode levers on real ffmpeg-encoded camera streams: the mode follows the GOP, frames are the same as
decoding everything, a live stream over loopback is sampled and reconnected, hardware is detected."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import parse_config
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig, choose_mode, detect_hwaccel
from edge_agent.pipeline.opener import open_source
from edge_agent.pipeline.sources import SourceError
from edge_agent.pipeline.stream import StreamSource
from models.student.data import resolve_clip

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
                                  reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")


@pytest.fixture(scope="module")
def streams() -> dict[str, Path]:
    from edge_agent.bench.streams import make_stream

    return {k: make_stream(k, seconds=8) for k in ("720p15-gop1", "720p15-gop4")}


def _sampled(path: Path, mode: str, fps: float = 1.0) -> tuple[list, dict]:
    with AVFileSource("cam", path, fps, DecodeConfig(mode=mode)) as source:  # type: ignore[arg-type]
        frames = list(source)
        return frames, source.stats()


def test_choose_mode_names_the_values():
    assert choose_mode("auto", 1.0, 1.0)[0] == "keyframes"
    assert choose_mode("auto", 0.5, 1.0)[0] == "keyframes"
    assert choose_mode("auto", 4.0, 1.0)[0] == "reference"
    assert choose_mode("auto", None, 1.0)[0] == "reference"
    assert choose_mode("all", 1.0, 1.0)[0] == "all"
    mode, why = choose_mode("keyframes", 4.0, 0.5)
    assert mode == "reference" and "4.00 s" in why and "0.5 s" in why and "I-frame interval" in why


def test_hardware_decoding_is_detected_and_falls_back_to_software(tmp_path):
    assert detect_hwaccel("auto", tmp_path / "absent") == ("none", f"no render node in {tmp_path / 'absent'}: "
                                                                   "software decoding")
    assert detect_hwaccel("none", tmp_path)[0] == "none"
    (tmp_path / "renderD128").touch()  # a render node, but not one this FFmpeg build can drive as "vaapi"
    kind, why = detect_hwaccel("vaapi", tmp_path)
    assert kind in ("none", "vaapi")
    if kind == "none":
        assert "renderD128" in why and "software" in why
    # This gateway: whatever it has, the answer is one of the kinds or "none", with a reason.
    assert detect_hwaccel()[0] in ("none", "vaapi", "qsv")


@pytest.mark.slow
@needs_ffmpeg
def test_short_gop_decodes_keyframes_only_and_gives_the_same_frames(streams):
    key, key_stats = _sampled(streams["720p15-gop1"], "auto")
    every, every_stats = _sampled(streams["720p15-gop1"], "all")
    assert key_stats["decode_mode"] == "keyframes" and every_stats["decode_mode"] == "all"
    assert [f.frame_index for f in key] == [f.frame_index for f in every] == list(range(0, 8 * 15, 15))
    assert key_stats["timestamp_error_max_s"] == 0.0  # keyframes on the sampling grid
    assert key_stats["frames_seen"] == every_stats["frames_seen"] == 8 * 15  # every frame arrived
    for a, b in zip(key, every, strict=True):
        assert np.array_equal(a.image, b.image)  # a keyframe is the same picture however it is reached


@needs_ffmpeg
@pytest.mark.parametrize("threads", [1, 2])
def test_bgr_frames_are_pyav_s_own_conversion_bit_for_bit(threads):
    """The capture converts every sample with one converter for the stream's life, on its decode threads:
    the same pixels as PyAV's frame.to_ndarray(format="bgr24"), on a 640x360 sub-stream and on 720p."""
    from edge_agent.bench.streams import make_stream
    from edge_agent.pipeline.decode import open_capture

    for kind in ("sub-360p15-gop1-256k", "720p15-gop1"):
        cap = open_capture(str(make_stream(kind, seconds=6)), "cam", DecodeConfig(threads=threads), 1.0)
        try:
            samples = 0
            while cap.grab():
                ours = cap.retrieve()
                assert ours.shape == (cap.height, cap.width, 3) and ours.dtype == np.uint8
                assert np.array_equal(ours, cap.frame.to_ndarray(format="bgr24")), (kind, samples)
                samples += 1
        finally:
            cap.release()
        assert samples == 6, (kind, samples)  # keyframes only, one a second


@pytest.mark.slow  # encodes the test streams on a cold cache
@needs_ffmpeg
def test_long_gop_skips_non_reference_frames_and_refuses_keyframes_only(streams):
    auto, stats = _sampled(streams["720p15-gop4"], "auto")
    assert stats["decode_mode"] == "reference" and stats["gop_s"] == pytest.approx(4.0, abs=0.01)
    assert len(auto) == 8  # still one sample a second
    assert stats["timestamp_error_max_s"] <= 2 / 15 + 1e-6  # a skipped B-frame's slot: the next frame
    forced, forced_stats = _sampled(streams["720p15-gop4"], "keyframes")
    assert forced_stats["decode_mode"] == "reference" and "refused" in forced_stats["decode_reason"]
    assert len(forced) == 8


@pytest.mark.slow  # encodes the test streams on a cold cache
@needs_ffmpeg
def test_a_corrupt_stretch_is_skipped_and_a_non_video_named(streams, tmp_path):
    data = bytearray(streams["720p15-gop1"].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 20000] = bytes(20000)  # a burst of zeros mid-file, as a lossy link leaves
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    frames = list(AVFileSource("cam", broken, 1.0, DecodeConfig(mode="all")))
    assert len(frames) >= 6  # it keeps going past the damage
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="notes.mp4"):
        open_source("cam", text, 1.0, decode=DecodeConfig())


def test_config_passes_decode_to_streams_always_and_to_files_when_given():
    cfg = parse_config("cameras:\n - {id: a, source: 'rtsp://10.0.0.5/sub'}\n - {id: b, source: clip.mp4}\n"
                       " - {id: c, source: clip.mp4, decode: {mode: all, threads: 2}}\n")
    a, b, c = cfg.cameras
    assert a.source_options()["decode"] == DecodeConfig()
    assert "decode" not in b.source_options()
    assert c.source_options()["decode"] == DecodeConfig(mode="all", threads=2)
    with pytest.raises(Exception, match="threads"):
        parse_config("cameras:\n - {id: a, source: x.mp4, decode: {threads: 0}}\n")


@pytest.mark.slow
@needs_ffmpeg
def test_live_stream_over_loopback_is_sampled_on_keyframes_and_reconnected(streams):
    from edge_agent.bench.streams import serve

    with serve(streams["720p15-gop1"]) as (url, proc):
        source = StreamSource("door", url, 1.0, decode=DecodeConfig(), stall_timeout_s=2, open_timeout_s=3,
                              backoff_initial_s=0.2, backoff_max_s=0.5)
        try:
            first = [source.read_sampled() for _ in range(4)]
            assert all(f is not None for f in first)
            assert source.stats()["decode_mode"] == "keyframes"
            assert [round(f.pts_s, 3) for f in first] == [0.0, 1.0, 2.0, 3.0]  # type: ignore[union-attr]
            assert source.stats()["timestamp_error_max_s"] < 0.01  # keyframes on the grid, by media time
            # Caught up between keyframes, the reader let the socket gather the stream instead of waking for
            # every segment, and still sampled every keyframe on its slot.
            assert source._cap.idled >= 4  # type: ignore[union-attr]
            proc.terminate()  # the camera goes away mid-stream...
            proc.wait()
            with serve(streams["720p15-gop1"], port=int(url.split(":")[2].split("/")[0])):  # ...and comes back
                deadline = time.monotonic() + 20
                while source.reconnects == 0 and time.monotonic() < deadline:
                    assert source.read_sampled() is not None
                assert source.reconnects >= 1 and source.healthy
        finally:
            source.close()
