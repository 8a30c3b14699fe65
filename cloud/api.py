"""`framesieve-cloud api`: a small HTTP JSON API over the results store, for the dashboard and integrators.

    GET /health                                              200, or 503 when the store does not answer
    GET /cameras/{camera}/detections?from=T&to=T[&limit=N][&next_token=K]
    GET /cameras/{camera}/counters?from=T&to=T               (range of at most 31 days)
    GET /sites/{site}/days/{YYYY-MM-DD}/detections[?limit=N][&next_token=K]
    GET /dead-letters?day=YYYY-MM-DD[&limit=N][&next_token=K]

Times are epoch seconds or ISO 8601 (`2025-11-29T07:00:00Z`); ranges are [from, to). Pages are at most
`limit` items (1-1000, default 100) with `next_token` when there is more. Bad input is a 400 whose
`parameter` names the bad parameter. Stdlib only; it binds to loopback unless told otherwise (no auth:
put it behind API Gateway / an authenticating proxy before exposing it).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cloud.exceptions import StoreError
from cloud.httpjson import send_json
from cloud.stores import Page, ResultsStore, open_store

log = logging.getLogger("framesieve.api")
MAX_LIMIT, MAX_COUNTER_RANGE_S = 1000, 31 * 86400
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ROUTES = [
    (re.compile(r"^/health$"), "health", set()),
    (re.compile(r"^/cameras/([^/]+)/detections$"), "camera_detections", {"from", "to", "limit", "next_token"}),
    (re.compile(r"^/cameras/([^/]+)/counters$"), "camera_counters", {"from", "to"}),
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
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(name, f"{name}={value!r} is not a time; use epoch seconds or ISO 8601, "
                               "e.g. 2025-11-29T07:00:00Z") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def parse_limit(value: str | None) -> int:
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest("limit", f"limit={value!r} must be a whole number from 1 to {MAX_LIMIT}")
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


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: ResultsStore):
        self.store = store
        super().__init__(address, _Handler)

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
        if route == "site_day":
            day = parse_day("day", args[1])
            page = store.query_site_day(args[0], day, parse_limit(q.get("limit")), q.get("next_token"))
            return {"site": args[0], "day": day, **_page(page)}
        day = parse_day("day", q.get("day"))
        return {"day": day, **_page(store.dead_letters(day, parse_limit(q.get("limit")), q.get("next_token")))}

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "FrameSieveAPI/1"
    timeout = 30

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        t0, url = time.perf_counter(), urlsplit(self.path)
        status, payload = 200, {}
        try:
            payload = self._route(url.path, url.query)
        except BadRequest as exc:
            status, payload = exc.status, {"error": str(exc), "parameter": exc.parameter}
        except StoreError as exc:  # a page token this store did not issue, or the store refusing
            bad = "page token" in str(exc)
            status, payload = (400, {"error": str(exc), "parameter": "next_token"}) if bad else (
                503, {"error": str(exc)})
        send_json(self, status, payload)
        log.info(json.dumps({"method": "GET", "path": url.path, "status": status,
                             "ms": round((time.perf_counter() - t0) * 1000, 1)}))

    def do_POST(self) -> None:  # noqa: N802
        self.send_error(405, "the results API is read-only: GET")

    def _route(self, path: str, query: str) -> dict[str, Any]:
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


def start_in_thread(store: ResultsStore, host: str = "127.0.0.1", port: int = 0) -> tuple[ApiServer, int]:
    server = ApiServer((host, port), store)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="framesieve-api",
                     daemon=True).start()
    return server, server.server_address[1]


def serve_forever(store_url: str, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Serve until SIGTERM or SIGINT."""
    store = open_store(store_url)
    server = ApiServer((host, port), store)

    def _stop(signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stop)
    log.info(json.dumps({"event": "listening", "service": "api", "url": f"http://{host}:{server.server_address[1]}",
                         "store": store_url}))
    try:
        server.serve_forever()
    finally:
        server.server_close()
        store.close()
