"""The sieve's config: the documented example loads; mistakes are named with the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from landed.config import SieveError, load_sieve_config, parse_sieve_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "sieve.example.yaml"


def test_the_example_loads_with_defaults_merged_under_each_camera(tmp_path):
    config = load_sieve_config(EXAMPLE)
    dock, plaza = config.cameras
    assert (dock.fps, plaza.fps) == (1.0, 0.5)  # the default, and a camera's own override
    assert not dock.onboarding.enabled and dock.cascade.labels["person"].accept == 0.3
    assert config.camera_for_object("any-bucket", "landed/depot-1/loading-dock/x.mp4").id == "loading-dock"
    assert [c.id for c in config.group("plaza")] == ["plaza-entrance"]
    agent = config.agent_config([(dock, "/tmp/x.mp4")], tmp_path)
    assert agent.site == "depot-1" and agent.cameras[0].source == "/tmp/x.mp4" and agent.cameras[0].fps == 1.0
    assert config.thing_of("depot-1") == "framesieve-sieve_depot-1"


BASE = "cameras:\n  - {id: a, site: s1, s3_prefix: in/a/}\n"


@pytest.mark.parametrize("text, message", [
    ("cameras:\n  - {id: a, site: s1}\n", "give s3_prefix"),
    ("cameras:\n  - {id: a, site: 's 1', s3_prefix: x/}\n", "cameras[0] (id a).site"),
    (BASE + "  - {id: a, site: s1, stream: b}\n", "camera ids must be unique"),
    (BASE + "stream_groups:\n  - {name: g, streams: [nope]}\n", "is no camera's stream"),
    (BASE + "defaults: {fps: 0}\n", "fps"),
    (BASE + "colour: red\n", "colour"),
])
def test_mistakes_are_named(text, message):
    with pytest.raises(SieveError, match=re.escape(message)):
        parse_sieve_config(text)


def test_an_object_under_no_prefix_says_which_prefixes_there_are():
    config = parse_sieve_config(BASE)
    with pytest.raises(SieveError, match=r"under no camera's s3_prefix \['\*/in/a/'\]"):
        config.camera_for_object("b", "elsewhere/x.mp4")
