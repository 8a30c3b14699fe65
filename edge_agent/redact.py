"""Secrets out of every line the agent writes: a URL's user:password and the query values that are
credentials (`?password=`, `token=`, `key=`, presigned `X-Amz-Signature=`, ...).

Camera URLs carry passwords (`rtsp://admin:pass@...`) and presigned model URLs carry signatures; both
reach logs, `validate-config` and error messages. `redact_url` is for one URL; `redact_text` finds
every URL in free text (a log line, an exception) and redacts each. The log formatters and the CLI's
error printer run everything through `redact_text`, so a new log call cannot leak one by accident.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# A query parameter whose name contains one of these holds a credential (case-insensitive).
_SECRET_PARAMS = ("pass", "pwd", "token", "key", "secret", "sig", "auth", "credential", "session", "cookie")
# Stops at quotes and backslashes too, so a URL inside a JSON string is redacted without eating its escapes.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s'\"\\<>()\[\]{}]+")
_PAIR = re.compile(r"([^&;=]+)=([^&;]*)")


def _secret_name(name: str) -> bool:
    low = name.lower()
    return any(s in low for s in _SECRET_PARAMS)


def _redact_query(query: str) -> str:
    return _PAIR.sub(lambda m: f"{m.group(1)}={MASK}" if _secret_name(m.group(1)) and m.group(2) else m.group(0),
                     query)


def redact_url(url: str) -> str:
    """`url` safe for logs: userinfo replaced by ***, secret query values by ***. Never raises (a URL with a
    bad port is still redacted: the error that names it must not leak the password either)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@\s]*@", f"//{MASK}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = _redact_query(parts.query) if parts.query else ""
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL in `text` redacted (cheap when there is none: one regex search)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
