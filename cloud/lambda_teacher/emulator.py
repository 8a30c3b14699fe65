"""A Lambda Runtime API server on loopback: what the AWS runtime interface emulator does, for `awslambdaric`.

The emulator itself is a Go binary that no registry reachable here ships, so this serves the same four
routes of the Runtime API (2018-06-01) that awslambdaric calls: `GET invocation/next` (blocks until an
event is queued), `POST invocation/{id}/response`, `POST invocation/{id}/error` and `POST init/error`.
`LambdaProcess` starts `python -m awslambdaric HANDLER` as a real child process against it, with the
environment a Lambda sets, and `invoke` hands it one event and waits for its answer.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


class LambdaError(RuntimeError):
    """The function failed its init or an invocation; the message is the runtime's error document."""


class RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 300.0):
        super().__init__((host, port), _Handler)
        self.events: queue.Queue = queue.Queue()
        self.results: dict[str, queue.Queue] = {}
        self.init_error: dict | None = None
        self.timeout_s = timeout_s
        threading.Thread(target=self.serve_forever, name="runtime-api", daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the function's process ending mid keep-alive resets its connection: expected at stop

    def stop(self) -> None:
        self.events.put(None)  # wakes a waiting `next`
        self.shutdown()
        self.server_close()

    def submit(self, event: Any) -> str:
        request_id = str(uuid.uuid4())
        self.results[request_id] = queue.Queue(maxsize=1)
        self.events.put((request_id, json.dumps(event).encode()))
        return request_id

    def wait(self, request_id: str, timeout_s: float) -> tuple[str, Any]:
        """("response" | "error", the body as JSON); LambdaError on a timeout or an init failure."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.init_error is not None:
                raise LambdaError(f"the function failed its init: {self.init_error}")
            try:
                return self.results[request_id].get(timeout=0.05)
            except queue.Empty:
                continue
        raise LambdaError(f"no answer to invocation {request_id} within {timeout_s:g} s")


class _Handler(BaseHTTPRequestHandler):
    server: RuntimeApi
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, Nagle and delayed ACKs add ~40 ms per call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                           **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode(errors="replace")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.path != f"{PREFIX}/invocation/next":
            return self._reply(404, b'{"errorMessage": "unknown route"}')
        job = self.server.events.get()
        if job is None:  # stopping
            return self._reply(500, b'{"errorMessage": "runtime API stopping"}')
        request_id, body = job
        deadline = int((time.time() + self.server.timeout_s) * 1000)
        self._reply(200, body, {"Lambda-Runtime-Aws-Request-Id": request_id,
                                "Lambda-Runtime-Deadline-Ms": str(deadline),
                                "Lambda-Runtime-Invoked-Function-Arn":
                                    "arn:aws:lambda:us-east-1:123456789012:function:framesieve-router",
                                "Lambda-Runtime-Trace-Id": f"Root=1-{request_id[:8]}"})

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if self.path == f"{PREFIX}/init/error":
            self.server.init_error = body
            return self._reply(202)
        parts = self.path[len(PREFIX):].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            slot = self.server.results.get(parts[1])
            if slot is None:
                return self._reply(400, b'{"errorMessage": "unknown request id"}')
            slot.put((parts[2], body))
            return self._reply(202)
        self._reply(404, b'{"errorMessage": "unknown route"}')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: one line per poll is noise
        pass


class LambdaProcess:
    """`python -m awslambdaric HANDLER` as a child process against a RuntimeApi, with a Lambda's environment."""

    def __init__(self, handler: str, env: dict[str, str] | None = None, memory_mb: int = 2048,
                 cwd: str | None = None):
        self.api = RuntimeApi()
        lambda_env = {"AWS_LAMBDA_RUNTIME_API": self.api.address, "AWS_LAMBDA_FUNCTION_NAME": "framesieve-router",
                      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                      "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                      "AWS_EXECUTION_ENV": "AWS_Lambda_Image", "_HANDLER": handler}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "awslambdaric", handler], cwd=cwd,
                                     env={**os.environ, **lambda_env, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.decode(errors="replace").rstrip())

    def invoke(self, event: Any, timeout_s: float = 120.0) -> Any:
        """The handler's result; LambdaError when it raised (the runtime's error document) or the init failed."""
        kind, body = self.api.wait(self.api.submit(event), timeout_s)
        if kind == "error":
            raise LambdaError(f"the invocation failed: {body}")
        return body

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory (VmHWM), what Lambda's 'Max Memory Used' reports."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.api.stop()
