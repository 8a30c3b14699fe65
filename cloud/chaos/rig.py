"""The system the fault campaign breaks, all real and on loopback: the teacher as its own process (so it can
be hung with SIGSTOP and killed), the local cloud with its broker and IoT bridge, and a real gateway
(`edge-agent run`) whose cameras play a clip in a loop at the pace of a live camera."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.devmqtt import free_port, listening
from cloud.exceptions import ConfigError
from cloud.local import LocalCloud, LocalOptions

THING = "gw-chaos"
SITE = "site-chaos"


def _clean_env() -> dict[str, str]:
    # The children get the project's own settings only: no AWS or FrameSieve variables of the caller.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}


@dataclass
class Process:
    """A child process that can be hung, resumed, killed and started again with the same command."""

    name: str
    argv: list[str]
    log_path: Path
    ready_port: int = 0  # started when this port listens (0: at once)
    proc: subprocess.Popen | None = None
    starts: int = 0

    def start(self, timeout_s: float = 120.0) -> None:
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=_clean_env())
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while self.ready_port and not listening(self.ready_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.tail()}")
            time.sleep(0.1)

    def tail(self, chars: int = 1500) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGCONT)  # a stopped process cannot die until it runs again
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@dataclass
class Rig:
    workdir: Path
    clip: Path
    teacher_manifest: Path | None = None
    cameras: int = 2
    fps: float = 1.0
    verdict_timeout_s: float = 10.0
    endpoint_timeout_s: float = 5.0
    cloud: LocalCloud | None = None
    teacher: Process | None = None
    agent: Process | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> Rig:
        if not self.clip.is_file():
            raise ConfigError(f"clip {self.clip} does not exist; the campaign plays a video file in a loop")
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        teacher_argv = [sys.executable, "-m", "cloud.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                        "--threads", "1"]
        if self.teacher_manifest:
            teacher_argv += ["--model", str(self.teacher_manifest)]
        self.teacher = Process("teacher", teacher_argv, self.workdir / "teacher.log", ready_port=port)
        self.teacher.start()
        os.environ["FRAMESIEVE_ENDPOINT_TIMEOUT_S"] = str(self.endpoint_timeout_s)
        os.environ["FRAMESIEVE_ENDPOINT_ATTEMPTS"] = "1"  # the edge has its own timeout; do not pile up retries
        self.cloud = LocalCloud(LocalOptions(state_dir=str(self.workdir / "cloud"), mqtt=True,
                                             endpoint_url=f"http://127.0.0.1:{port}",
                                             gateways=[f"{THING}={SITE}:{','.join(self.camera_ids())}"]))
        self.cloud.__enter__()
        config = self.workdir / "gateway.yaml"
        config.write_text(json.dumps(self.gateway_config(), indent=1))
        self.agent = Process("agent", [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
                             self.workdir / "agent.log")
        return self

    def __exit__(self, *_exc: object) -> None:
        for part in (self.agent, self.teacher):
            if part is not None:
                part.stop()
        if self.cloud is not None:
            self.cloud.close()

    @property
    def events_db(self) -> Path:
        return self.workdir / "events.sqlite"

    @property
    def broker(self) -> Any:
        assert self.cloud is not None and self.cloud.broker is not None
        return self.cloud.broker

    def camera_ids(self) -> list[str]:
        return [f"cam-{i}" for i in range(self.cameras)]

    def gateway_config(self) -> dict[str, Any]:
        assert self.cloud is not None and self.cloud.broker is not None
        return {
            "site": SITE, "student_threads": 1,
            "cameras": [{"id": cam, "source": str(self.clip), "fps": self.fps, "loop": True, "realtime": True}
                        for cam in self.camera_ids()],
            "escalation": {"transport": "mqtt", "thing_name": THING, "verdict_timeout_s": self.verdict_timeout_s,
                           "mqtt": {"host": "127.0.0.1", "port": self.cloud.broker.port, "publish_timeout_s": 2.0},
                           "spool": {"path": str(self.workdir / "spool.sqlite"), "replay_rate_per_s": 50.0},
                           **self.extra.get("escalation", {})},
            "output": {"events_db": str(self.events_db)},
            "fleet": {"shadow": False, "jobs": False, "telemetry_interval_s": 0,
                      "models_dir": str(self.workdir / "models")},
        }

    def events(self, since: float = 0.0, until: float = float("inf")) -> list[dict[str, Any]]:
        """The gateway's event rows sampled in [since, until) (its events DB, read-only, WAL)."""
        if not self.events_db.exists():
            return []
        db = sqlite3.connect(f"file:{self.events_db}?mode=ro", uri=True, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM events WHERE wall_time >= ? AND wall_time < ? ORDER BY wall_time",
                              (since, until if until != float("inf") else 1e18)).fetchall()
        finally:
            db.close()
        return [dict(r) for r in rows]
