"""File and folder sources: media-time sampling, grab-without-retrieve, corrupt input, clear errors."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge_agent.pipeline.opener import open_source
from edge_agent.pipeline.sources import (
    ImageFolderSource,
    SourceError,
    VideoFileSource,
)
from edge_agent.pipeline.stream import StreamSource


class _CountingCapture:
    """Wraps a real cv2.VideoCapture and counts grab/retrieve calls."""

    instances: list[_CountingCapture] = []

    def __init__(self, *args, **kwargs) -> None:
        self._cap = _REAL_CAPTURE(*args, **kwargs)
        self.grabs = 0
        self.retrieves = 0
        _CountingCapture.instances.append(self)

    def grab(self) -> bool:
        self.grabs += 1
        return self._cap.grab()

    def retrieve(self, *args):
        self.retrieves += 1
        return self._cap.retrieve(*args)

    def read(self, *args):  # the sources must not use read(): it always converts
        raise AssertionError("read() decodes every frame to BGR; sources must grab() + retrieve()")

    def __getattr__(self, name):
        return getattr(self._cap, name)


_REAL_CAPTURE = cv2.VideoCapture


@pytest.fixture()
def counting_capture(monkeypatch):
    _CountingCapture.instances = []
    monkeypatch.setattr(cv2, "VideoCapture", _CountingCapture)
    return _CountingCapture.instances


@pytest.mark.parametrize("fps, expected", [(1.0, 80), (2.0, 159)])
def test_vtest_sampled_on_media_time_without_converting_skipped_frames(vtest, counting_capture, fps,
                                                                       expected):
    source = VideoFileSource("lobby", vtest, fps=fps)
    frames = list(source)
    # 795 frames at 10 fps = 79.5 s of media: samples at 0, 1/fps, 2/fps, ...
    assert abs(len(frames) - expected) <= 1
    for k, frame in enumerate(frames):
        assert frame.pts_s == pytest.approx(k / fps, abs=0.05)
        assert frame.frame_index == round(k * 10 / fps)
        assert frame.camera == "lobby"
    assert frames[0].image.shape == (576, 768, 3) and frames[0].image.dtype == np.uint8
    assert source.frames_seen == 795
    assert source.frames_sampled == len(frames)
    assert source.corrupt_frames == 0
    (cap,) = counting_capture
    assert cap.retrieves == source.frames_sampled  # skipped frames were grabbed, never converted
    assert cap.grabs == 795 + 1  # the last grab finds the end of the file


def test_h264_clip_sampled_once_per_second(shared_clips):
    # 12.5 fps H.264 (frames at 0.08 s steps): the sample is the first frame at or after each second.
    source = VideoFileSource("road", shared_clips / "car-detection.mp4", fps=1.0)
    frames = list(source)
    assert len(frames) == 31  # 377 frames = 30.16 s
    for k, frame in enumerate(frames):
        assert k - 1e-3 <= frame.pts_s < k + 0.08
    assert frames[0].image.shape == (432, 768, 3)


def _write_clip(path, n_frames: int, fps: float, size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), (i * 20) % 256, np.uint8))
    writer.release()


def test_looping_file_keeps_time_and_index_increasing(tmp_path):
    clip = tmp_path / "short.avi"
    _write_clip(clip, n_frames=12, fps=4.0)  # 3 s per pass
    source = VideoFileSource("loop", clip, fps=1.0, loop=True)
    frames = [source.read_sampled() for _ in range(8)]
    source.close()
    assert [round(f.pts_s, 2) for f in frames] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [f.frame_index for f in frames] == [0, 4, 8, 12, 16, 20, 24, 28]
    assert source.read_sampled() is None  # closed


def test_realtime_file_hands_out_samples_at_the_pace_of_media_time(tmp_path):
    clip = tmp_path / "paced.avi"
    _write_clip(clip, n_frames=8, fps=20.0)  # 0.4 s of media
    fast = [f.pts_s for f in VideoFileSource("fast", clip, fps=10.0)]
    started = time.monotonic()
    paced = [f.wall_time for f in VideoFileSource("paced", clip, fps=10.0, realtime=True)]
    took = time.monotonic() - started
    assert len(fast) == len(paced) == 4  # the same samples, 0.1 s of media apart
    assert took >= 0.28  # the last is handed out 0.3 s after the first, not at once
    assert all(b - a >= 0.08 for a, b in zip(paced, paced[1:], strict=False))


def test_looping_realtime_folder_runs_until_closed(tmp_path, vtest_first_frames):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), vtest_first_frames[i][:48, :64])
    source = ImageFolderSource("cam", tmp_path, fps=20.0, folder_fps=20.0, loop=True, realtime=True)
    frames = [source.read_sampled() for _ in range(7)]
    assert [f.frame_index for f in frames] == list(range(7))  # past the 3 files, time going forward
    assert frames[-1].wall_time - frames[0].wall_time >= 0.25
    source.close()
    assert source.read_sampled() is None


def test_loop_and_realtime_are_refused_for_live_streams(tmp_path):
    from edge_agent.config import ConfigError, parse_config

    text = "cameras:\n  - id: gate\n    source: rtsp://192.0.2.1/s\n    loop: true\n"
    with pytest.raises(ConfigError, match="loop/realtime are for files and folders"):
        parse_config(text)


def test_image_folder_skips_corrupt_images_in_order(tmp_path, vtest_first_frames):
    folder = tmp_path / "cam"
    folder.mkdir()
    written = {}
    for i in (0, 1, 3, 4, 10):
        path = folder / f"frame_{i}.jpg"
        cv2.imwrite(str(path), vtest_first_frames[i])
        written[i] = cv2.imread(str(path))
    rng = np.random.default_rng(0)
    (folder / "frame_2.jpg").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "notes.txt").write_text("not an image")

    source = open_source("folder-cam", folder, fps=1.0)
    assert isinstance(source, ImageFolderSource)
    frames = list(source)
    # Natural order (frame_10 last), the corrupt frame_2 skipped and counted, never raised.
    assert [f.frame_index for f in frames] == [0, 1, 3, 4, 5]
    assert [f.pts_s for f in frames] == [0.0, 1.0, 3.0, 4.0, 5.0]
    expected = [written[i] for i in (0, 1, 3, 4, 10)]
    assert all(np.array_equal(f.image, e) for f, e in zip(frames, expected, strict=True))
    assert source.corrupt_frames == 1
    assert source.frames_seen == 6 and source.frames_sampled == 5


def test_image_folder_samples_at_its_nominal_rate(tmp_path, vtest_first_frames):
    for i in range(10):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), vtest_first_frames[i][:48, :64])
    source = ImageFolderSource("burst", tmp_path, fps=1.0, folder_fps=4.0)
    assert [f.frame_index for f in source] == [0, 4, 8]


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "cam1.mp4"
    with pytest.raises(SourceError) as info:
        open_source("cam1", missing)
    message = str(info.value)
    assert str(missing) in message and "rtsp://" in message and "folder" in message
    with pytest.raises(SourceError, match="cam1.mp4"):
        VideoFileSource("cam1", missing)


def test_open_source_dispatch_and_bad_input(tmp_path):
    assert isinstance(open_source("s", "http://127.0.0.1:9/stream.mjpg"), StreamSource)  # opens lazily
    assert isinstance(open_source("s", "rtsp://user:secret@10.0.0.5/live"), StreamSource)
    with pytest.raises(SourceError, match="ftp://"):
        open_source("s", "ftp://example.invalid/a.mp4")
    with pytest.raises(SourceError, match="no image files"):
        open_source("s", tmp_path)  # an empty folder
    not_video = tmp_path / "clip.mp4"
    not_video.write_bytes(b"\0" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        open_source("s", not_video)
    with pytest.raises(SourceError, match="fps"):
        VideoFileSource("s", not_video, fps=0)
