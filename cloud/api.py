"""`framesieve-cloud api`: a small HTTP JSON API over the results store, for the dashboard and integrators.

    GET /health                                              200, or 503 when the store does not answer
    GET /cameras/{camera}/detections?from=T&to=T[&limit=N][&next_token=K]
    GET /cameras/{camera}/counters?from=T&to=T               (range of at most 31 days)
    GET /cameras/{camera}/specialization[?limit=N]           its specialization steps, newest first
    GET /sites/{site}/days/{YYYY-MM-DD}/detections[?limit=N][&next_token=K]
    GET /dead-letters?day=YYYY-MM-DD[&limit=N][&next_token=K]
    GET /, /login, /static/..., /dashboard/...                the operator dashboard (cloud/dashboard/web.py)

Times are epoch seconds or ISO 8601 (`2025-11-29T07:00:00Z`); ranges are [from, to). Pages are at most
`limit` items (1-1000, default 100) with `next_token` when there is more. Bad input is a 400 whose
`parameter` names the bad parameter.

Every route but /health, /login and /static/ needs `Authorization: Bearer <token>` or the dashboard's
cookie (401 without it; `/` redirects to /login); the token comes from
`--token-file` or $FRAMESIEVE_API_TOKEN, and the API refuses to start with neither unless `--no-auth` is
given on a loopback address. Stdlib only, with the limits of cloud/httpserve.py; it binds to loopback
unless told otherwise. Put TLS in front of it (a load balancer, API Gateway) before exposing it.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cloud.dashboard import web
from cloud.exceptions import ConfigError, StoreError
from cloud.httpjson import send_json
from cloud.httpserve import MAX_CONNECTIONS, REQUEST_DEADLINE_S, LimitedHandler, LimitedServer, stop_on_signals
from cloud.stores import Page, ResultsStore, open_store

log = logging.getLogger("framesieve.api")
MAX_LIMIT, MAX_COUNTER_RANGE_S = 1000, 31 * 86400
TOKEN_ENV = "FRAMESIEVE_API_TOKEN"
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # ASCII digits only: str.isdigit() also takes "²"
_NUMBER = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ROUTES = [
    (re.compile(r"^/health$"), "health", set()),
    (re.compile(r"^/cameras/([^/]+)/detections$"), "camera_detections", {"from", "to", "limit", "next_token"}),
    (re.compile(r"^/cameras/([^/]+)/counters$"), "camera_counters", {"from", "to"}),
    (re.compile(r"^/cameras/([^/]+)/specialization$"), "camera_specialization", {"limit"}),
    (re.compile(r"^/sites/([^/]+)/days/([^/]+)/detections$"), "site_day", {"limit", "next_token"}),
    (re.compile(r"^/dead-letters$"), "dead_letters", {"day", "limit", "next_token"}),
]


class BadRequest(Exception):
    def __init__(self, parameter: str, message: str, status: int = 400):
        super().__init__(message)
        self.parameter, self.status = parameter, status


def parse_time(name: str, value: str | None) -> float:
    if value is None:
        raise BadRequest(name, f"{name} is required: epoch seconds or ISO 8601, e.g. 2025-11-29T07:00:00Z")
    if _NUMBER.match(value):  # plain epoch seconds: no sign, exponent, nan or inf
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        t_s = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError) as exc:
        raise BadRequest(name, f"{name}={value[:60]!r} is not a time; use epoch seconds or ISO 8601, "
                               "e.g. 2025-11-29T07:00:00Z") from exc
    if not (math.isfinite(t_s) and t_s >= 0):
        raise BadRequest(name, f"{name}={value[:60]!r} is before 1970")
    return t_s


def parse_limit(value: str | None) -> int:
    if value is None:
        return 100
    if not re.match(r"^[0-9]{1,4}$", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest("limit", f"limit={value[:20]!r} must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def parse_day(name: str, value: str | None) -> str:
    try:
        if value is None or not _DAY.match(value):
            raise ValueError
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise BadRequest(name, f"{name}={value!r} must be a UTC day as YYYY-MM-DD") from exc
    return value


def _range(q: dict[str, str], max_s: float | None = None) -> tuple[float, float]:
    t1, t2 = parse_time("from", q.get("from")), parse_time("to", q.get("to"))
    if t2 <= t1:
        raise BadRequest("to", f"to ({q.get('to')}) must be after from ({q.get('from')})")
    if max_s is not None and t2 - t1 > max_s:
        raise BadRequest("to", f"the range is {t2 - t1:.0f} s; counters take at most {max_s:.0f} s (31 days)")
    return t1, t2


def _page(page: Page) -> dict[str, Any]:
    return {"items": [i.to_dict() for i in page.items], "next_token": page.next_token}


class ApiServer(LimitedServer):
    """token None: no authentication (only `--no-auth` on loopback asks for that)."""

    def __init__(self, address: tuple[str, int], store: ResultsStore, token: str | None, *,
                 max_connections: int = MAX_CONNECTIONS, request_deadline_s: float = REQUEST_DEADLINE_S,
                 training_reader: web.TrainingReader | None = None):
        self.store, self.token, self.training_reader = store, token, training_reader
        self.secure_cookie = address[0] not in _LOOPBACK  # browsers keep Secure cookies only over https
        super().__init__(address, _Handler, max_connections=max_connections, request_deadline_s=request_deadline_s)

    def authorized(self, header: str | None, cookie: str | None = None) -> bool:
        """The bearer header, else the dashboard's cookie, holds the token."""
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(given.strip().encode(), self.token.encode())
        given_cookie = web.cookie_token(cookie)
        return given_cookie is not None and hmac.compare_digest(given_cookie.encode(), self.token.encode())

    def answer(self, route: str, args: tuple[str, ...], q: dict[str, str]) -> dict[str, Any]:
        store = self.store
        if route == "health":
            try:
                store.ping()
            except StoreError as exc:
                raise BadRequest("store", str(exc), 503) from exc
            return {"status": "ok", "store": type(store).__name__}
        if route == "camera_detections":
            t1, t2 = _range(q)
            page = store.query_camera(args[0], t1, t2, parse_limit(q.get("limit")), q.get("next_token"))
            return {"camera": args[0], "from": t1, "to": t2, **_page(page)}
        if route == "camera_counters":
            t1, t2 = _range(q, MAX_COUNTER_RANGE_S)
            return {"camera": args[0], "from": t1, "to": t2, "counters": store.counters(args[0], t1, t2),
                    "note": "what the cloud recorded; sampled and edge-decided frames are counted on the gateway"}
        if route == "camera_specialization":
            return {"camera": args[0], "items": store.specialization_history(args[0], parse_limit(q.get("limit")))}
        if route == "site_day":
            day = parse_day("day", args[1])
            page = store.query_site_day(args[0], day, parse_limit(q.get("limit")), q.get("next_token"))
            return {"site": args[0], "day": day, **_page(page)}
        day = parse_day("day", q.get("day"))
        return {"day": day, **_page(store.dead_letters(day, parse_limit(q.get("limit")), q.get("next_token")))}

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(LimitedHandler):
    server: ApiServer
    server_version = "FrameSieveAPI/1"

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        t0, url = time.perf_counter(), urlsplit(self.path)
        status, payload, headers = 200, {}, {}
        authorized = self.server.authorized(self.headers.get("Authorization"), self.headers.get("Cookie"))
        if url.path in ("/", "/login") or url.path.startswith("/static/"):
            return web.page(self, url.path, authorized)
        try:
            if url.path != "/health" and not authorized:
                headers["WWW-Authenticate"] = 'Bearer realm="framesieve"'
                raise BadRequest("Authorization", "send the API token as the header 'Authorization: Bearer <token>'",
                                 401)
            payload = self._route(url.path, url.query)
        except BadRequest as exc:
            status, payload = exc.status, {"error": str(exc), "parameter": exc.parameter}
        except StoreError as exc:  # a page token this store did not issue, or the store refusing
            bad = "page token" in str(exc)
            status, payload = (400, {"error": str(exc), "parameter": "next_token"}) if bad else (
                503, {"error": str(exc)})
        send_json(self, status, payload, headers)
        log.info(json.dumps({"method": "GET", "path": url.path, "status": status,
                             "ms": round((time.perf_counter() - t0) * 1000, 1)}))

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/login":  # sets the dashboard's cookie; writes nothing
            return web.login(self, self.server.token, self.server.secure_cookie)
        self.send_error(405, "the results API is read-only: GET")

    def _route(self, path: str, query: str) -> dict[str, Any]:
        if path.startswith("/dashboard/"):
            status, payload = web.data(self.server, path, query)
            if status != 200:
                raise BadRequest(payload.get("parameter", "path"), payload["error"], status)
            return payload
        raw = parse_qs(query, keep_blank_values=True)
        if repeated := sorted(k for k, v in raw.items() if len(v) > 1):
            raise BadRequest(repeated[0], f"parameter {repeated[0]!r} is given more than once")
        q = {k: v[0] for k, v in raw.items()}
        for pattern, route, allowed in _ROUTES:
            if m := pattern.match(path):
                if unknown := sorted(set(q) - allowed):
                    raise BadRequest(unknown[0], f"unknown parameter(s) {unknown} for {path}; "
                                                 f"allowed: {sorted(allowed) or 'none'}")
                return self.server.answer(route, tuple(unquote(g) for g in m.groups()), q)
        raise BadRequest("path", f"no route GET {path}; see GET /health, /cameras/{{camera}}/detections, "
                                 "/cameras/{camera}/counters, /sites/{site}/days/{day}/detections, /dead-letters",
                         404)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)


def start_in_thread(store: ResultsStore, host: str = "127.0.0.1", port: int = 0, *, token: str | None,
                    **limits: Any) -> tuple[ApiServer, int]:
    server = ApiServer((host, port), store, token, **limits)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="framesieve-api",
                     daemon=True).start()
    return server, server.server_address[1]


def read_token(token_file: str | None, no_auth: bool, host: str) -> str | None:
    """The API token: the file's first line, else $FRAMESIEVE_API_TOKEN; None only with --no-auth on loopback."""
    if no_auth:
        if host not in _LOOPBACK:
            raise ConfigError(f"--no-auth on {host}: without a token the API serves only loopback (127.0.0.1)")
        return None
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {token_file}: {exc.strerror or exc}") from exc
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if len(token) < 16:
        raise ConfigError(f"the results API needs a token of at least 16 characters in --token-file or ${TOKEN_ENV} "
                          f"(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > token`); "
                          "--no-auth serves loopback without one")
    return token


def serve_forever(store_url: str, host: str = "127.0.0.1", port: int = 8081, token: str | None = None,
                  **limits: Any) -> None:
    """Serve until SIGTERM or SIGINT, then drain (cloud/httpserve.py)."""
    store = open_store(store_url)
    server = ApiServer((host, port), store, token, training_reader=web.s3_reader(), **limits)
    stop_on_signals(server)
    log.info(json.dumps({"event": "listening", "service": "api", "url": f"http://{host}:{server.server_address[1]}",
                         "store": store_url, "auth": "bearer token" if token else "none (loopback)"}))
    try:
        server.serve_forever()
    finally:
        server.server_close()
        store.close()
