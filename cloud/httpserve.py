"""The limits every FrameSieve HTTP server keeps (inference server, results API, the local router), on stdlib
`http.server`:

- a cap on open connections: one beyond it is answered 503 at once, from the accepting thread, and closed
  (a thread per connection is what a flood of idle connections exhausts);
- a whole-request deadline: from the first wait for a request line to the last byte of its body, at most
  `request_deadline_s` in all, however slowly the bytes come (a per-read timeout lets a client trickling a
  byte a minute hold a thread for ever). An idle keep-alive connection is closed on the same clock;
- a graceful drain: `drain()` answers 503 to new requests and connections, lets the requests in flight
  finish, and returns when none is left (or the grace time is over).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloud.httpjson import send_json

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
REQUEST_DEADLINE_S = 30.0
WRITE_TIMEOUT_S = 30.0
DRAIN_S = 30.0


class DeadlineReader:
    """The handler's rfile with one deadline per request: every socket wait gets only the time left."""

    def __init__(self, sock: socket.socket, rfile: Any, deadline_s: float):
        self._sock, self._rfile, self.deadline_s = sock, rfile, deadline_s
        self.deadline = time.monotonic() + deadline_s

    def arm(self) -> None:
        self.deadline = time.monotonic() + self.deadline_s

    def _wait(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request took more than {self.deadline_s:g} s to arrive")
        self._sock.settimeout(left)

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise ValueError("read the body by its Content-Length")
        chunks, got = [], 0
        while got < n:
            self._wait()
            chunk = self._rfile.read1(min(n - got, 1 << 16))  # one socket read at most
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def readline(self, limit: int = -1) -> bytes:
        line = bytearray()
        while limit < 0 or len(line) < limit:
            self._wait()
            buffered = self._rfile.peek(1)  # one socket read at most, when nothing is buffered
            if not buffered:
                break
            take = buffered[:limit - len(line)] if limit >= 0 else buffered
            end = take.find(b"\n")
            line += self._rfile.read(end + 1 if end >= 0 else len(take))  # from the buffer: no socket wait
            if end >= 0:
                break
        return bytes(line)

    def __getattr__(self, name: str) -> Any:  # close, closed, ...: the buffered reader's own
        return getattr(self._rfile, name)


class LimitedServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with a connection cap, a whole-request deadline and a graceful drain."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 max_connections: int = MAX_CONNECTIONS, request_deadline_s: float = REQUEST_DEADLINE_S):
        self.max_connections, self.request_deadline_s = max_connections, request_deadline_s
        self._open = 0
        self._in_flight = 0
        self._state = threading.Condition()
        self.draining = False
        self.refused = 0  # connections answered 503 at the door
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._state:
            full = self._open >= self.max_connections
            if not full and not self.draining:
                self._open += 1
        if full or self.draining:
            self.refused += 1
            why = "draining before it stops" if self.draining else f"at its limit of {self.max_connections} connections"
            _refuse(request, f"the server is {why}; retry shortly")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed()

    def _closed(self) -> None:
        with self._state:
            self._open -= 1
            self._state.notify_all()

    def begin_request(self) -> bool:
        """A request line arrived: count it in flight; False while draining (answer it 503)."""
        with self._state:
            if self.draining:
                return False
            self._in_flight += 1
            return True

    def end_request(self) -> None:
        with self._state:
            self._in_flight -= 1
            self._state.notify_all()

    def drain(self, grace_s: float = DRAIN_S) -> int:
        """Refuse new requests, wait for those in flight; returns how many were still running at the end."""
        with self._state:
            self.draining = True
            self._state.wait_for(lambda: self._in_flight == 0, timeout=grace_s)
            return self._in_flight

    def open_connections(self) -> int:
        with self._state:
            return self._open


def _refuse(sock: socket.socket, message: str) -> None:
    body = json.dumps({"error": message, "message": message}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n").encode()
    try:
        sock.settimeout(1.0)  # never let a client that does not read hold the accepting thread
        sock.sendall(head + body)
    except OSError:
        pass


class LimitedHandler(BaseHTTPRequestHandler):
    """Reads through a DeadlineReader, counts each request in flight for the drain, answers 503 while
    draining; subclasses answer in `do_*` as usual."""

    server: LimitedServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.rfile = DeadlineReader(self.connection, self.rfile, self.server.request_deadline_s)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        self.rfile.arm()  # type: ignore[attr-defined]
        counted = False
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            counted = self.server.begin_request()
            if not self.parse_request():
                return
            if not counted:
                self.close_connection = True
                send_json(self, 503, {"error": "the server is draining before it stops; retry shortly"},
                          {"Connection": "close", "Retry-After": "1"})
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"unsupported method {self.command!r}")
                return
            method()
            self.wfile.flush()
        except TimeoutError as exc:
            log.info(json.dumps({"event": "request_timeout", "client": self.client_address[0], "error": str(exc)}))
            self.close_connection = True
        finally:
            if counted:
                self.server.end_request()
            if self.server.draining:
                self.close_connection = True


    def end_headers(self) -> None:
        self.connection.settimeout(WRITE_TIMEOUT_S)  # the answer is not bound by the request's deadline
        super().end_headers()


def stop_on_signals(server: LimitedServer, grace_s: float = DRAIN_S, on_stop: Callable[[], None] | None = None) -> None:
    """SIGTERM/SIGINT: drain (answer what is in flight, 503 to anything new), then stop serve_forever."""

    def _drain_then_stop() -> None:
        left = server.drain(grace_s)
        log.info(json.dumps({"event": "drained", "still_running": left}))
        if on_stop:
            on_stop()
        server.shutdown()

    def _stop(signum: int, _frame: Any) -> None:
        log.info(json.dumps({"event": "stopping", "signal": signal.Signals(signum).name}))
        threading.Thread(target=_drain_then_stop, daemon=True).start()  # shutdown() blocks; not from here

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop)
