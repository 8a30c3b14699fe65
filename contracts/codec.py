"""The codec under every message (contracts/wire.py, device.py, training.py): JSON in and out within the
payload limit, and field checks that raise WireError naming the field and the bad value. Pure Python."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

WIRE_VERSION = 1
MAX_MESSAGE_BYTES = 128 * 1024  # the AWS IoT Core payload limit


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


def box_value(value: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise WireError(f"{where}: a box is [x1, y1, x2, y2], got {value!r:.60}")
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise WireError(f"{where}: box values must be numbers, got {value!r:.60}") from exc
    if not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
        raise WireError(f"{where}: box {list(box)} is not finite with x2 >= x1 and y2 >= y1")
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
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"{what} is not valid JSON: {exc}") from exc


def b64decode(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{where}: not valid base64 ({exc})") from exc
