"""A Mosquitto broker on loopback for the local stack and the fault campaign: a child process on a free
port, with a persistence file, that can be killed (as a crashed broker vanishes) and started again on the
same port. The stand-in for AWS IoT Core's broker; Debian's `mosquitto` (./dev.sh installs it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cloud.exceptions import ConfigError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class Mosquitto:
    """mosquitto on 127.0.0.1:`port` (plain, anonymous). `listeners`: more config lines and the extra
    ports they open (the tests add a mutual-TLS listener)."""

    def __init__(self, workdir: Path, port: int = 0, listeners: tuple[list[str], list[int]] = ([], [])):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ConfigError("mosquitto is not installed: apt-get install -y mosquitto (./dev.sh does it)")
        self.exe, self.workdir = exe, workdir
        self.port = port or free_port()
        extra_lines, self.extra_ports = listeners
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            "per_listener_settings true",
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1",
            f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice",
            "max_queued_messages 10000",
            "set_tcp_nodelay true",
            f"listener {self.port} 127.0.0.1\nallow_anonymous true",
            *extra_lines,
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # as root mosquitto drops to `mosquitto`, who cannot read a 0600 key
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        ports = [self.port, *self.extra_ports]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited ({self.process.returncode}): {err}{self._log_tail()}")
            if all(listening(p) for p in ports):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {ports}: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-600:] if self.log.exists() else ""

    def saved_since(self, wall_time: float) -> bool:
        """The broker wrote its persistence file (sessions, subscriptions, queues) after `wall_time`."""
        db = self.workdir / "mosquitto.db"
        return db.exists() and db.stat().st_mtime > wall_time

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye, as a crashed or rebooted one does."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()
