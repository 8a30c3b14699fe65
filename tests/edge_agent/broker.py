"""A real Mosquitto broker for the tests: a child process on free loopback ports, plain and mutual TLS,
with a throw-away CA and certificates made here by openssl. Killable and restartable on the same
ports with its persistence file, so a test can take the broker away mid-stream and bring it back."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr[-400:]}")


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates signed by the CA."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @classmethod
    def create(cls, root: Path) -> Pki:
        root.mkdir(parents=True, exist_ok=True)
        # EC P-256 keys: as good for TLS here and ~100x faster to generate than RSA 2048.
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=FrameSieve test CA", cwd=root)
        pki = cls(root)
        pki.issue("server", san="IP:127.0.0.1,DNS:localhost")
        return pki

    def issue(self, name: str, san: str | None = None) -> tuple[Path, Path]:
        """(certificate, key) for `name` (the certificate's CN: a thing name for clients)."""
        key, csr, cert = f"{name}.key", f"{name}.csr", f"{name}.pem"
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", f"/CN={name}", cwd=self.root)
        ext = self.root / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext.name, cwd=self.root)
        os.chmod(self.root / key, 0o600)
        return self.root / cert, self.root / key


class Mosquitto:
    """mosquitto on 127.0.0.1: `port` (plain, anonymous) and `tls_port` (client certificate required)."""

    def __init__(self, workdir: Path, pki: Pki):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed: apt-get install -y mosquitto (./dev.sh does it)")
        self.exe, self.workdir, self.pki = exe, workdir, pki
        self.port, self.tls_port = free_port(), free_port()
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
            # Mosquitto 2 refuses anonymous clients on a listener unless told; the certificate is the check.
            f"listener {self.tls_port} 127.0.0.1\nallow_anonymous true\nrequire_certificate true",
            "use_identity_as_username true",
            f"cafile {pki.ca}\ncertfile {pki.root / 'server.pem'}\nkeyfile {pki.root / 'server.key'}",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # as root mosquitto drops to `mosquitto`, who cannot read a 0600 key
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited ({self.process.returncode}): {err}{self._log_tail()}")
            if all(self._listening(p) for p in (self.port, self.tls_port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port}/{self.tls_port}: {self._log_tail()}")

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

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
