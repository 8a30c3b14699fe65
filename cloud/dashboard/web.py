"""The dashboard over HTTP, inside the results API's server (cloud/api.py hands it every path it owns):

    GET  /                      the single-page dashboard (303 to /login without a token)
    GET  /login, POST /login    a form that checks the API token and sets it as a cookie
    GET  /static/...            the pages' script, style and vendored chart library (no data: no token)
    GET  /dashboard/fleet | /dashboard/cameras/{camera}[?hours=N] | /dashboard/cost | /dashboard/alerts
    GET  /dashboard/crops?key=K the teacher's boxes on the crops of one training record (S3)

The cookie is HttpOnly (no script reads the token), SameSite=Strict (no other site's page sends it) and
Secure off loopback; the JSON answers are the same whether the token came as the cookie or as
`Authorization: Bearer`.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from cloud.dashboard import views
from contracts.codec import WireError
from contracts.training import record_of

COOKIE = "framesieve_token"
COOKIE_MAX_AGE_S = 12 * 3600
MAX_FORM_BYTES = 4096
_STATIC = {"index.html": "text/html; charset=utf-8", "login.html": "text/html; charset=utf-8",
           "app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
           "vendor/uplot/uPlot.iife.min.js": "text/javascript; charset=utf-8",
           "vendor/uplot/uPlot.min.css": "text/css; charset=utf-8", "vendor/uplot/LICENSE": "text/plain; charset=utf-8"}
# Scripts and styles only from this server, no inline script, frames from nowhere: what the pages need.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_KEY = re.compile(r"^[A-Za-z0-9_.=/-]{1,512}(#[A-Za-z0-9_.-]{1,128})?$")  # in a batch's object: "#<message id>"
TrainingReader = Callable[[str], bytes]


def owns(path: str) -> bool:
    return path in ("/", "/login") or path.startswith(("/static/", "/dashboard/"))


def cookie_token(header: str | None) -> str | None:
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return unquote(value)
    return None


STATIC_TYPES = _STATIC  # every file the server has for the pages, with its content type (a deploy uploads them)


def static_bytes(name: str) -> bytes:
    return resources.files("cloud.dashboard").joinpath("static", *name.split("/")).read_bytes()


def _static(name: str) -> bytes | None:
    return static_bytes(name) if name in _STATIC else None


def send(handler: Any, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    cache = "max-age=300" if content_type.startswith("text/javascript") else "no-store"  # data pages: never cached
    handler.send_header("Cache-Control", cache)
    handler.send_header("X-Content-Type-Options", "nosniff")
    if content_type.startswith("text/html"):
        handler.send_header("Content-Security-Policy", _CSP)
        handler.send_header("Referrer-Policy", "same-origin")  # no-referrer would make a form's Origin "null"
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _hours(q: dict[str, list[str]]) -> float:
    raw = q.get("hours", ["24"])[0]
    if not re.match(r"^[0-9]{1,3}$", raw) or not 1 <= int(raw) <= 168:
        raise ValueError(f"hours={raw[:20]!r} must be a whole number of hours from 1 to 168 (a week)")
    return int(raw) * 3600.0


def data(server: Any, path: str, query: str) -> tuple[int, dict[str, Any]]:
    """A /dashboard/ JSON answer (the caller has checked the token)."""
    q, now, store = parse_qs(query), time.time(), server.store
    try:
        if path == "/dashboard/fleet":
            return 200, views.fleet(store, now)
        if path == "/dashboard/cost":
            try:
                return 200, views.cost(store, now)
            except ImportError as exc:
                # an install without the cost model's packages (the Lambda's zip carries them; a deploy that
                # cannot fetch them stops with WheelsUnavailable instead of shipping this answer)
                return 501, {"error": f"the cost page needs the price file's readers ({exc.name} is not "
                                      "installed here): pip install pydantic pyyaml"}
        if path == "/dashboard/alerts":
            return 200, views.alerts(store, now)
        if m := re.match(r"^/dashboard/cameras/([^/]{1,128})$", path):
            return 200, views.camera(store, unquote(m[1]), now, _hours(q))
        if path == "/dashboard/crops":
            return crops(server.training_reader, q.get("key", [""])[0])
    except ValueError as exc:
        return 400, {"error": str(exc), "parameter": "hours"}
    return 404, {"error": f"no dashboard route {path}; see /dashboard/fleet, /dashboard/cameras/{{camera}}, "
                          "/dashboard/cost, /dashboard/alerts, /dashboard/crops?key=K"}


def crops(reader: TrainingReader | None, key: str) -> tuple[int, dict[str, Any]]:
    if reader is None:
        return 404, {"error": "no training capture to read: set FRAMESIEVE_TRAINING_BUCKET (and AWS credentials) "
                              "for the API"}
    if not _KEY.match(key) or ".." in key:
        return 400, {"error": f"key={key[:80]!r} is not a training record key", "parameter": "key"}
    path, _, mid = key.partition("#")
    try:
        record = record_of(reader(path), unquote(mid) if mid else None)
    except KeyError:
        return 404, {"error": f"no training record {key!r} (kept for its retention only)"}
    except WireError as exc:
        return 502, {"error": f"training record {key!r} is unreadable: {exc}"}
    return 200, {"key": key, "camera": record.camera, "t_s": record.t_s, "crops": [
        {"jpeg_b64": c.crop.to_payload()["jpeg_b64"], "teacher": [d.to_payload() for d in c.teacher]}
        for c in record.crops[:4]]}


def login(handler: Any, token: str | None, secure: bool) -> None:
    """POST /login: the form's token, checked in constant time; a cookie and 303 to / when it is right."""
    origin, host, fetch_site = (handler.headers.get(h) for h in ("Origin", "Host", "Sec-Fetch-Site"))
    # A form posted from another site's page: browsers say so in Sec-Fetch-Site, which holds behind a proxy
    # that rewrites Host (CloudFront to a function URL); older ones only by an Origin that is not this host.
    cross = fetch_site not in ("same-origin", "none") if fetch_site else bool(origin) and \
        origin.split("://", 1)[-1] != (host or "")
    if cross:
        handler.close_connection = True  # its body is left unread
        return send(handler, 403, b"cross-site login refused", "text/plain; charset=utf-8")
    length = handler.headers.get("Content-Length", "")
    if not re.match(r"^[0-9]{1,5}$", length) or int(length) > MAX_FORM_BYTES:
        handler.close_connection = True
        return send(handler, 413, f"send the form with a Content-Length of at most {MAX_FORM_BYTES}".encode(),
                    "text/plain; charset=utf-8")
    given = parse_qs(handler.rfile.read(int(length)).decode("utf-8", "replace")).get("token", [""])[0].strip()
    if token is not None and not hmac.compare_digest(given.encode(), token.encode()):
        page = (_static("login.html") or b"").replace(b"<!--error-->",
                                                       b'<p class="error" role="alert">That token is not right.</p>')
        return send(handler, 401, page, "text/html; charset=utf-8")
    if token is None:  # --no-auth: nothing to remember (and nothing the client typed goes into a header)
        return send(handler, 303, b"", "text/plain; charset=utf-8", {"Location": "/"})
    # quoted: a token from a file may hold characters a cookie value cannot (";", spaces)
    cookie = f"{COOKIE}={quote(token, safe='')}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_S}"
    send(handler, 303, b"", "text/plain; charset=utf-8",
         {"Location": "/", "Set-Cookie": cookie + ("; Secure" if secure else "")})


def page(handler: Any, path: str, authorized: bool) -> None:
    """GET of a page or a static file."""
    if path == "/" and not authorized:
        return send(handler, 303, b"", "text/plain; charset=utf-8", {"Location": "/login"})
    name = "index.html" if path == "/" else "login.html" if path == "/login" else path[len("/static/"):]
    body = _static(name)
    if body is None:
        return send(handler, 404, json.dumps({"error": f"no file {path}"}).encode(), "application/json")
    send(handler, 200, body, _STATIC[name])


def s3_reader(bucket: str | None = None) -> TrainingReader | None:
    """Training records from the capture bucket ($FRAMESIEVE_TRAINING_BUCKET), None when none is set."""
    import os

    from cloud import constants as c

    bucket = bucket if bucket is not None else os.environ.get(c.TRAINING_BUCKET, "")
    if not bucket:
        return None
    from cloud import awscalls

    s3 = awscalls.client("s3")

    def read(key: str) -> bytes:
        if key.endswith("/"):
            return read_packed(s3, bucket, key)
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc

    return read


PACKED_READ_BYTES = 64 * 1024 * 1024  # the most of packed objects one frame view reads (a busy hour has more)
_HOUR = re.compile(r"^(?P<base>.*/)(?P<hour>\d{4}/\d{2}/\d{2}/\d{2})/$")


def read_packed(s3: Any, bucket: str, folder: str, limit: int = PACKED_READ_BYTES) -> bytes:
    """The packed Firehose objects a record sent in this hour's folder can be in (`<prefix><lifecycle>/YYYY/MM/
    DD/HH/`: the folder, then the hour before, where an object whose first record arrived then is filed),
    concatenated (gzip members or JSON lines alike: contracts.training.read_records reads either), newest first,
    at most `limit` bytes. A record is delivered only once Firehose's buffer fills or times out (up to 15
    minutes): until then, and for a record in a busy hour beyond the limit, KeyError."""
    import calendar

    m = _HOUR.match(folder)
    if not m:
        raise KeyError(folder)
    t = calendar.timegm(time.strptime(m["hour"], "%Y/%m/%d/%H"))
    parts, total = [], 0
    for hour in (m["hour"], time.strftime("%Y/%m/%d/%H", time.gmtime(t - 3600))):
        listed = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{m['base']}{hour}/"):
            listed.extend(page.get("Contents", []))
        for obj in sorted(listed, key=lambda o: o["Key"], reverse=True):
            if total + obj["Size"] > limit:
                break
            parts.append(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            total += obj["Size"]
    if not parts:
        raise KeyError(folder)
    return b"".join(parts)
