"""The sub-stream kinds at camera defaults: made by ffmpeg from vtest, each holds its bitrate cap and its
I-frame interval, and a lower cap gives smaller keyframes (what a keyframes-only decoder pays for)."""

from __future__ import annotations

import shutil

import pytest

from edge_agent.bench.streams import KINDS, bitrate, make_stream
from models.student.data import resolve_clip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or resolve_clip("vtest.avi") is None,
                                reason="needs Debian ffmpeg and vtest.avi (./dev.sh installs both)")


def test_sub_stream_kinds_hold_their_cap_and_interval():
    figures = {}
    for kind in ("sub-360p15-gop1-256k", "sub-360p15-gop1-512k", "sub-360p15-gop1-1024k", "sub-360p15-gop2-512k"):
        k = KINDS[kind]
        assert (k.width, k.height, k.fps, k.main) == (640, 360, 15, "1080p25-gop1")
        figures[kind] = got = bitrate(make_stream(kind, seconds=6))
        assert k.kbps is not None and 0.5 * k.kbps < got["kbps"] <= 1.1 * k.kbps, (kind, got)
        assert got["keyframes_per_s"] == pytest.approx(1 / k.gop_s, abs=0.1), (kind, got)
    keyframe = [figures[f"sub-360p15-gop1-{cap}"]["keyframe_kb"] for cap in ("256k", "512k", "1024k")]
    assert keyframe == sorted(keyframe) and keyframe[0] < 0.75 * keyframe[2], keyframe
