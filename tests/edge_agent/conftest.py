"""Real parts for the MQTT and fleet tests, started here on loopback: Mosquitto (plain and mutual TLS,
certificates made by openssl), and the AWS side played by responders over that broker."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig
from tests.edge_agent.broker import Mosquitto, Pki

THING = "gw-test"


def _need_mosquitto() -> None:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto is not installed (./dev.sh installs it: apt-get install -y mosquitto)")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"))
    pki.issue(THING)
    return pki


@pytest.fixture(scope="session")
def broker(tmp_path_factory, pki) -> Iterator[Mosquitto]:
    """One broker for the tests that never take it away."""
    _need_mosquitto()
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"), pki)
    yield server
    server.stop()


@pytest.fixture()
def own_broker(tmp_path, pki) -> Iterator[Mosquitto]:
    """A private broker a test may kill and restart."""
    _need_mosquitto()
    server = Mosquitto(tmp_path / "mosquitto", pki)
    yield server
    server.stop()


def agent_config(tmp_path: Path, port: int, *, transport: str = "mqtt", thing: str = THING,
                 cameras: list[dict] | None = None, mqtt: dict | None = None, fleet: dict | None = None,
                 **escalation) -> AgentConfig:
    """A gateway config on the test broker: one camera that escalates every frame with motion (audit 1.0)."""
    raw = {
        "site": "site-t",
        "cameras": [{"onboarding": {"enabled": False}, **c}  # these tests escalate by audit, not onboarding
                    for c in cameras or [{"id": "cam", "source": "injected", "cascade": {"audit_fraction": 1.0}}]],
        "escalation": {"transport": transport, "thing_name": thing, "verdict_timeout_s": 3.0,
                       "mqtt": {"host": "127.0.0.1", "port": port, "publish_timeout_s": 2.0, **(mqtt or {})},
                       "spool": {"path": str(tmp_path / "spool.sqlite"), "replay_rate_per_s": 100.0},
                       **escalation},
        "output": {"events_db": str(tmp_path / "events.sqlite")},
        "fleet": {"models_dir": str(tmp_path / "models"), "telemetry_interval_s": 0, **(fleet or {})},
    }
    return AgentConfig.model_validate(raw)


def default_student_version() -> str:
    """The version of the agent's default student (the teacher-derived one), as model info reports it."""
    from models.manifest import load_manifest
    from models.student.derived import ensure_derived_student

    return load_manifest(ensure_derived_student()).version
