"""A real Mosquitto broker for the tests: a child process on free loopback ports, plain and mutual TLS,
with a throw-away CA and certificates made here by openssl. Killable and restartable on the same
ports with its persistence file, so a test can take the broker away mid-stream and bring it back."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cloud.devmqtt import Mosquitto as DevMosquitto
from cloud.devmqtt import free_port as free_port  # re-exported for the tests


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


class Mosquitto(DevMosquitto):
    """mosquitto on 127.0.0.1: `port` (plain, anonymous) and `tls_port` (client certificate required)."""

    def __init__(self, workdir: Path, pki: Pki):
        self.pki = pki
        self.tls_port = free_port()
        tls = [
            # Mosquitto 2 refuses anonymous clients on a listener unless told; the certificate is the check.
            f"listener {self.tls_port} 127.0.0.1\nallow_anonymous true\nrequire_certificate true",
            "use_identity_as_username true",
            f"cafile {pki.ca}\ncertfile {pki.root / 'server.pem'}\nkeyfile {pki.root / 'server.key'}",
        ]
        super().__init__(workdir, listeners=(tls, [self.tls_port]))
