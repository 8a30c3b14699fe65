"""The results API and the dashboard as a Lambda behind a function URL (infra/cloudformation/dashboard.yaml):
the function URL's event (payload format 2.0) is answered by the very handler `framesieve-cloud api` runs,
driven without a socket, so routes, token checks, limits on input and the cookie behave the same.
"""

from __future__ import annotations

import base64
import io
import os
from email.message import Message
from typing import Any

from cloud import constants as c
from cloud.api import TOKEN_ENV, ApiServer, _Handler
from cloud.dashboard import web
from cloud.stores import ResultsStore, open_store


class LambdaServer:
    """What the handler reads from its server: the store, the token, the training reader."""

    answer = ApiServer.answer
    authorized = ApiServer.authorized

    def __init__(self, store: ResultsStore, token: str | None, training_reader: web.TrainingReader | None):
        self.store, self.token, self.training_reader = store, token, training_reader
        self.secure_cookie = True  # behind CloudFront: always https


class _Exchange:
    """One request and its answer, with the attributes and calls BaseHTTPRequestHandler's code uses."""

    _route = _Handler._route

    def __init__(self, server: LambdaServer, method: str, path: str, headers: dict[str, str], body: bytes):
        self.server, self.command, self.path = server, method, path
        self.headers = Message()
        for key, value in headers.items():
            self.headers[key] = value
        self.headers["Content-Length"] = str(len(body))
        self.rfile, self.wfile = io.BytesIO(body), io.BytesIO()
        self.status, self.out_headers, self.close_connection = 500, {}, False
        self.cookies: list[str] = []

    def send_response(self, status: int, _message: str | None = None) -> None:
        self.status = status

    def send_header(self, key: str, value: str) -> None:
        if key.lower() == "set-cookie":
            self.cookies.append(value)
        elif key.lower() != "content-length":  # the function URL sets it
            self.out_headers[key] = value

    def end_headers(self) -> None:
        return None

    def send_error(self, status: int, message: str | None = None) -> None:
        web.send(self, status, (message or "").encode(), "text/plain; charset=utf-8")

    def answer(self) -> dict[str, Any]:
        method = _Handler.do_POST if self.command == "POST" else _Handler.do_GET
        method(self)  # type: ignore[arg-type]
        return {"statusCode": self.status, "headers": self.out_headers, "cookies": self.cookies,
                "body": base64.b64encode(self.wfile.getvalue()).decode(), "isBase64Encoded": True}


_server: LambdaServer | None = None


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    global _server
    if _server is None:  # one store and token per container, reused across requests
        token = os.environ.get(TOKEN_ENV, "").strip()
        if len(token) < 16:
            raise RuntimeError(f"${TOKEN_ENV} must hold the API token (at least 16 characters)")
        _server = LambdaServer(open_store(os.environ.get(c.STORE_URL, c.DEFAULT_STORE_URL)), token,
                               web.s3_reader())
    http = event.get("requestContext", {}).get("http", {})
    method = http.get("method", "GET")
    if method not in ("GET", "POST"):
        return {"statusCode": 405, "body": "the results API is read-only: GET"}
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):  # payload 2.0 moves the Cookie header here
        headers["Cookie"] = "; ".join(event["cookies"])
    query = event.get("rawQueryString") or ""
    path = (event.get("rawPath") or "/") + (f"?{query}" if query else "")
    return _Exchange(_server, method, path, headers, raw[:web.MAX_FORM_BYTES + 1]).answer()
