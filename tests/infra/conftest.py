"""Fixtures for the infrastructure tests: the template as data, and moto_server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloud.deploy import TEMPLATE
from cloud.stackops import load_template
from tests.infra.conditions import stack_for


@pytest.fixture(scope="session")
def raw_template() -> dict[str, Any]:
    """The file as written: every backend's resources, behind Conditions."""
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def template(raw_template) -> dict[str, Any]:
    """The stack the default parameters create (TeacherBackend realtime), conditions resolved."""
    return stack_for(raw_template)


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
