"""The codec under every message (contracts/wire.py, device.py, training.py): JSON in and out within the
payload limit, and field checks that raise WireError naming the field and the bad value. Pure Python."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

WIRE_VERSION = 1
MAX_MESSAGE_BYTES = 128 * 1024  # the AWS IoT Core payload limit
MAX_JSON_DEPTH = 16  # our messages nest 4 deep; json.loads itself dies with RecursionError near 1000
MAX_NUMBER = 1e12  # any number a message carries (seconds, pixels, indices) is far below this
MAX_TEXT = 128  # ids, camera and site names
# a JSON string, as an unrolled loop: (?:a|b)* would keep backtracking state per character (180 MB for a
# 1.6 MB base64 string); this repeats per escape only
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


class WireError(ValueError):
    """A message that is malformed, of an unknown version, or too large."""


def require(payload: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(payload, dict):
        raise WireError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    if key not in payload:
        raise WireError(f"{where}: missing field {key!r}")
    value = payload[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise WireError(f"{where}.{key}: expected {kind}, got a boolean")
    if not isinstance(value, kind):
        raise WireError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r:.60}")
    return value


def number(payload: Any, key: str, where: str, lo: float = -MAX_NUMBER, hi: float = MAX_NUMBER,
           default: float | None = None) -> float:
    """A finite JSON number in [lo, hi]; `default` when absent (None: required). Never NaN or Infinity."""
    if default is not None and isinstance(payload, dict) and key not in payload:
        return default
    value = require(payload, key, (int, float), where)
    try:
        out = float(value)
    except OverflowError:  # an int too large for a float
        out = math.inf
    if not (math.isfinite(out) and lo <= out <= hi):
        raise WireError(f"{where}.{key}: {value!r:.60} is outside [{lo:g}, {hi:g}] (a finite number is needed)")
    return out


def integer(payload: Any, key: str, where: str, lo: int = 0, hi: int = 2 ** 53) -> int:
    value = require(payload, key, int, where)
    if not lo <= value <= hi:
        raise WireError(f"{where}.{key}: {value!r:.60} must be a whole number in [{lo}, {hi}]")
    return value


def text(payload: Any, key: str, where: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    """An id or a name: printable, at most `limit` characters, not empty when required."""
    if not required and isinstance(payload, dict) and key not in payload:
        return ""
    value = require(payload, key, str, where)
    if (required and not value) or len(value) > limit or not value.isprintable():
        raise WireError(f"{where}.{key}: {value!r:.60} must be {'1' if required else '0'}-{limit} printable "
                        "characters")
    return value


def json_depth(data: bytes, stop: int = 1 << 30) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without parsing it (strings removed);
    counting ends once it passes `stop`."""
    depth = deepest = 0
    for ch in _STRINGS.sub(b"", data):
        if ch in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    break
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return deepest


def check_depth(value: Any, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """The same limit on an already parsed value (an event the Lambda runtime decoded), without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise WireError(f"{where}: JSON nested more than {limit} deep")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:40]} is outside the range of a number")
    return value


def loads(data: bytes | str, what: str = "message", depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON: no NaN/Infinity, no number that overflows to one, at most `depth` levels of nesting."""
    raw = data.encode() if isinstance(data, str) else data
    if json_depth(raw, depth) > depth:
        raise WireError(f"{what} nests more than {depth} levels deep (arrays and objects), over the limit")
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise WireError(f"{what} is not valid JSON: {exc}") from exc


def box_value(value: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise WireError(f"{where}: a box is [x1, y1, x2, y2], got {value!r:.60}")
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"{where}: box values must be numbers, got {value!r:.60}") from exc
    if not all(math.isfinite(v) and abs(v) <= 1e6 for v in box) or box[2] < box[0] or box[3] < box[1]:
        raise WireError(f"{where}: box {list(box)} is not finite within 1e6 px with x2 >= x1 and y2 >= y1")
    return box  # type: ignore[return-value]


def check_version(payload: Any, kind: str, where: str) -> None:
    version = require(payload, "v", int, where)
    if version != WIRE_VERSION:
        raise WireError(f"{where}: wire version {version} is not supported (this side speaks {WIRE_VERSION})")
    if payload.get("type") != kind:
        raise WireError(f"{where}: expected type {kind!r}, got {payload.get('type')!r}")


def encode(payload: dict, what: str = "message") -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"{what} is {len(data)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit; "
                        "send fewer or smaller crops")
    return data


def decode(data: bytes | str, what: str = "message", limit: int = MAX_MESSAGE_BYTES) -> Any:
    if len(data) > limit:
        raise WireError(f"{what} is {len(data)} bytes, over the {limit}-byte limit")
    return loads(data, what)


def b64decode(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{where}: not valid base64 ({exc})") from exc
