"""Fixtures for the infrastructure tests: the template as data, and moto_server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloud.deploy import TEMPLATE
from cloud.stackops import load_template


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def resources(template) -> dict[str, Any]:
    return template["Resources"]


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory) -> Iterator[str]:
    """`moto_server` as a child process on a free loopback port, stopped after the module."""
    from cloud.devaws import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto-infra") / "recording.jsonl")
    try:
        yield server.url
    finally:
        server.stop()
