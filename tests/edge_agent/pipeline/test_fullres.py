"""Escalation crops from the camera's main stream: a 360p sub-stream is the detect stream, the 1080p main
stream made from the same footage is the escalation_source; the teacher (the project's own inference server
over HTTP) answers crops cut from the main stream, and its answer comes back in the detect frame's pixels."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from contracts.wire import EscalationRequest, Verdict
from edge_agent.app import Agent
from edge_agent.config import AgentConfig, parse_config
from edge_agent.escalation.base import TRANSPORTS
from edge_agent.pipeline.avsource import AVFileSource
from edge_agent.pipeline.decode import DecodeConfig
from edge_agent.pipeline.fullres import EscalationSourceConfig, FullResFrames
from edge_agent.pipeline.sources import SourceError
from models.student.data import resolve_clip

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
                                  reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")
SECONDS = 6


@pytest.fixture(scope="module")
def camera() -> tuple[Path, Path]:
    """(the 640x360 15 fps sub-stream, the 1920x1080 25 fps main stream), GOP 1 s, the same 6 s of vtest."""
    from edge_agent.bench.streams import make_stream

    return make_stream("sub-360p15-gop1", SECONDS), make_stream("1080p25-gop1", SECONDS)


@pytest.fixture(scope="module")
def main_frames(camera) -> dict[float, np.ndarray]:
    with AVFileSource("main", camera[1], 1.0, DecodeConfig(mode="all")) as source:
        return {round(f.pts_s, 2): f.image for f in source}


class Recording:
    """The real HTTP transport to the inference server, keeping every request and verdict."""

    def __init__(self, url: str):
        self.inner = TRANSPORTS["url"](url, timeout_s=30, retries=1)
        self.name = "url"
        self.sent: list[tuple[EscalationRequest, Verdict]] = []

    def escalate(self, request: EscalationRequest) -> Verdict:
        verdict = self.inner.escalate(request)
        self.sent.append((request, verdict))
        return verdict

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _config(sub: Path, main: Path | str, crop: str, tmp_path: Path, max_px: int = 416, **source) -> AgentConfig:
    return AgentConfig.model_validate({
        "student": "default", "site": "s",
        "cameras": [{"id": "door", "source": str(sub), "decode": {"mode": "auto"}, "onboarding": {"enabled": True},
                     "escalation_source": {"url": str(main), **source}}],
        "escalation": {"crop": crop, "max_crop_px": max_px}, "output": {"events_db": str(tmp_path / "events.sqlite")}})


@needs_ffmpeg
def test_escalations_are_cut_from_the_main_stream_and_answered_in_detect_pixels(camera, main_frames,
                                                                                teacher_server_url, tmp_path):
    sub, main = camera
    transport = Recording(teacher_server_url)
    # A teacher with a larger input than 416 (max_crop_px): the crops keep more pixels than the sub-stream has.
    agent = Agent(_config(sub, main, "regions", tmp_path, max_px=1280), transport=transport, jsonl=tmp_path / "d.jsonl")
    summary = agent.run()
    stats = summary["escalation_source"]["door"]
    counters = summary["cameras"]["door"]
    assert counters["escalated"] >= 4 and transport.sent  # onboarding: every frame with motion goes to the cloud
    assert stats["sent"] == counters["fullres_sent"] == len(transport.sent) and stats["missed"] == 0
    assert stats["size"] == "1920x1080" and stats["picked_keyframe"] == stats["sent"]
    # Both streams' keyframes lie on the same second and the sub-stream is sampled on its keyframes.
    assert stats["skew_max_s"] == 0.0 <= EscalationSourceConfig(url="x").max_skew_s
    events = {e["frame_index"]: e for e in map(json.loads, (tmp_path / "d.jsonl").read_text().splitlines())}
    more_pixels = 0
    for request, verdict in transport.sent:
        assert len(request.to_bytes()) <= 128 * 1024
        pts = round(request.pts_s, 2)
        full = main_frames[pts]
        for crop in request.crops:
            x1, y1, x2, y2 = map(int, crop.box)
            assert 0 <= x1 < x2 <= 1920 and 0 <= y1 < y2 <= 1080  # main-stream pixels
            jpeg = cv2.imdecode(np.frombuffer(crop.jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert jpeg.shape[1] == crop.size[0] <= 1280
            more_pixels += jpeg.shape[1] > (x2 - x1) / 3 + 1  # more than the detect frame had for this region
            # The picture is the main stream's frame of that moment (JPEG-close), not the sub-stream's upscaled.
            want = cv2.resize(full[y1:y2, x1:x2], crop.size, interpolation=cv2.INTER_AREA)
            assert np.abs(jpeg.astype(int) - want.astype(int)).mean() < 6
        # The teacher's answer, found in the main frame's pixels, is the frame's answer in the detect frame's.
        event = events[request.frame_index]
        assert event["decided_by"] == "cloud" and event["escalated"]
        cloud = list(verdict.detections())
        answered = [d for d in event["detections"] if any(abs(d["box"][0] - c.box[0] / 3) < 0.06 and
                                                          abs(d["box"][3] - c.box[3] / 3) < 0.06 for c in cloud)]
        assert answered or not cloud, (event, cloud)  # (overlapping region crops may find one object twice: merged)
        assert all(0 <= d["box"][0] and d["box"][2] <= 640.01 and d["box"][3] <= 360.01 for d in event["detections"])
    assert more_pixels >= 1
    assert any(d.label == "person" for _, v in transport.sent for d in v.detections())  # vtest: people walk


@needs_ffmpeg
def test_each_pick_keeps_its_bound_and_a_frame_too_far_falls_back(camera, main_frames):
    main = camera[1]
    key = FullResFrames("door", EscalationSourceConfig(url=str(main), pick="keyframe"), live=False)
    exact = FullResFrames("door", EscalationSourceConfig(url=str(main), pick="frame"), live=False)
    auto = FullResFrames("door", EscalationSourceConfig(url=str(main), max_skew_s=0.1), live=False)
    try:
        hit = key.frame_at(2.0)
        assert hit is not None and hit.how == "keyframe" and hit.skew_s == 0.0
        assert np.array_equal(hit.image, main_frames[2.0])  # the same picture as decoding every frame
        assert key.frame_at(3.5) is None and key.missed == 1  # 0.5 s from either keyframe: beyond 0.2 s
        assert "keyframe is 0.50 s away" in str(key.stats()["last_error"])
        near = exact.frame_at(3.5)
        assert near is not None and near.how == "frame" and near.skew_s <= 0.5 / 25 + 1e-6
        assert exact.stats()["pictures_decoded"] > 1
        mid = auto.frame_at(4.3)  # no keyframe within 0.1 s: auto decodes the exact frame
        assert mid is not None and mid.how == "frame" and mid.skew_s <= 0.02 + 1e-6
        at_key = auto.frame_at(5.05)
        assert at_key is not None and at_key.how == "keyframe" and at_key.skew_s == pytest.approx(0.05, abs=1e-6)
    finally:
        for f in (key, exact, auto):
            f.close()


def test_config_takes_a_url_alone_or_options_and_names_a_bad_source(tmp_path):
    cfg = parse_config("cameras:\n"
                       " - {id: a, source: 'rtsp://10.0.0.5/sub', escalation_source: 'rtsp://10.0.0.5/main'}\n"
                       " - {id: b, source: sub.mp4,\n"
                       "    escalation_source: {url: main.mp4, pick: frame, max_skew_s: 0.1}}\n")
    assert cfg.cameras[0].escalation_source == EscalationSourceConfig(url="rtsp://10.0.0.5/main")
    assert cfg.cameras[1].escalation_source.pick == "frame"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="pick"):
        parse_config("cameras:\n - {id: a, source: x.mp4, escalation_source: {url: y.mp4, pick: nearest}}\n")
    clip = resolve_clip("vtest.avi")
    if clip is None:
        pytest.skip("needs vtest.avi")
    missing = tmp_path / "no-main.mp4"
    with pytest.raises(SourceError, match="no-main.mp4"):
        Agent(_config(clip, missing, "frame", tmp_path), transport=Recording("http://127.0.0.1:9/invocations"))


@pytest.mark.slow  # two live streams for a few seconds
@needs_ffmpeg
def test_live_main_stream_is_matched_on_arrival_time(camera):
    from edge_agent.bench.streams import serve
    from edge_agent.pipeline.stream import StreamSource

    sub, main = camera
    with serve(main) as (main_url, _), serve(sub) as (sub_url, _):
        frames = FullResFrames("door", EscalationSourceConfig(url=main_url), live=True)
        source = StreamSource("door", sub_url, 1.0, decode=DecodeConfig(), stall_timeout_s=5, open_timeout_s=5)
        try:
            found = []
            deadline = time.monotonic() + 20
            while len(found) < 3 and time.monotonic() < deadline:
                frame = source.read_sampled()
                assert frame is not None
                hit = frames.frame_at(frame.wall_time)
                if hit is not None:
                    found.append(hit)
            assert len(found) == 3, frames.stats()
            assert all(h.image.shape == (1080, 1920, 3) and h.skew_s <= 0.2 for h in found)
            assert frames.stats()["reader_cpu_s"] > 0  # the reader thread demuxes as the stream comes
        finally:
            source.close()
            frames.close()


@needs_ffmpeg
def test_the_bench_compares_main_stream_and_detect_frame_crops(camera, tmp_path):
    from edge_agent.bench.fullres import format_fullres, measure_escalation_source
    from models.runtime import load_detector
    from models.student.derived import ensure_derived_student
    from models.teacher.build import TEACHER_THRESHOLD, ensure_teacher

    teacher = load_detector(ensure_teacher(), threads=1, conf_threshold=TEACHER_THRESHOLD)
    r = measure_escalation_source("vtest.avi", SECONDS, 1.0, teacher, ensure_derived_student(), tmp_path,
                                  crops=("frame",))
    c = r["crops"]["frame"]
    assert c["escalations"] == c["sent_full"] == c["judged"] >= 4 and c["missed"] == 0 and c["skew_max_s"] == 0.0
    for side in ("agreement_full", "agreement_detect"):
        a = c[side]
        assert a["of"] == c["judged"] and 0 <= a["agree"] <= a["of"] and a["wilson95"][0] <= a["share"] <= 1
    assert c["per_label"]["person"]["full"]["agree"] == c["judged"]  # vtest: people in every frame, both ways
    assert c["max_message_bytes"] <= 128 * 1024 and c["pick_ms_per_escalation"] > 0
    key, exact = r["picks"]["keyframe"], r["picks"]["frame"]
    assert key["pictures_per_escalation"] == 1 < exact["pictures_per_escalation"]
    assert key["skew_max_s"] <= 0.5 + 1e-6 and exact["skew_max_s"] <= 0.5 / 25 + 1e-6  # half a GOP, half a frame
    assert "| vtest.avi | frame |" in format_fullres([r])
