"""The input faults: the router fed a corpus of malformed escalations, the inference server fed pixel bombs,
and eight clients mixing good and bad requests. Each row says what was checked and what was found."""

from __future__ import annotations

import base64
import http.client
import json
import math
import struct
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cloud import constants as c
from cloud.chaos.rig import SITE, THING
from cloud.chaos.stream import Row
from cloud.router.service import Router

BOMB_SIDE = 20000  # 20000 x 20000 x 3 bytes: 1.2 GB once decoded, about 1.2 MB as PNG
MEMORY_LIMIT_MB = 500


def good_escalation(jpeg: bytes, message_id: str, camera: str = "cam-0") -> dict[str, Any]:
    return {"v": 1, "type": "escalation", "message_id": message_id, "site": SITE, "camera": camera,
            "frame_index": 1, "pts_s": 1.0, "reason": "uncertain", "created_s": time.time(),
            "crops": [{"crop_id": 0, "box": [0, 0, 64, 48], "size": [64, 48],
                       "jpeg_b64": base64.b64encode(jpeg).decode()}], "student": []}


def malformed_corpus(jpeg: bytes) -> list[tuple[str, Any]]:
    """(what, event) pairs the router must dead-letter before any paid call."""
    def variant(name: str, **changes: Any) -> tuple[str, Any]:
        body = good_escalation(jpeg, f"bad-{name}")
        body.update(changes)
        return name, body

    nested: Any = []
    for _ in range(200):
        nested = [nested]
    cases = [
        variant("created_s text", created_s="abc"), variant("created_s list", created_s=[]),
        variant("created_s infinite", created_s=math.inf), variant("created_s 1e300", created_s=1e300),
        variant("created_s far future", created_s=1e15), variant("pts_s NaN", pts_s=math.nan),
        variant("pts_s infinite", pts_s=math.inf), variant("frame_index text", frame_index="7"),
        variant("no crops", crops=[]), variant("crop not base64", crops=[{"crop_id": 0, "box": [0, 0, 1, 1],
                                                                         "size": [1, 1], "jpeg_b64": "%%%"}]),
        variant("camera 10 kB", camera="c" * 10_000), variant("unknown reason", reason="because"),
        variant("wire version 99", v=99), variant("nested student", student=[nested]),
        ("not JSON", b"{not json"), ("deeply nested JSON", ("[" * 100_000 + "]" * 100_000).encode()),
        ("over the IoT limit", json.dumps(good_escalation(jpeg, "bad-big") | {"pad": "x" * 140_000}).encode()),
    ]
    return cases


def rule_event(body: Any, thing: str = THING) -> dict[str, Any]:
    """What the IoT rule hands the router: the message base64-encoded beside the rule's own fields."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # NaN and Infinity written as such
    return {c.EVENT_PAYLOAD: base64.b64encode(raw).decode(), c.EVENT_THING: thing,
            c.EVENT_TOPIC: f"framesieve/{thing}/escalations", c.EVENT_RECEIVED_MS: int(time.time() * 1000)}


def run_router_corpus(router: Router, jpeg: bytes) -> Row:
    crashed, routed, paid = [], Counter(), 0
    cases = malformed_corpus(jpeg) + [  # a registered gateway writing for what is not its own
        ("another site", good_escalation(jpeg, "bad-site") | {"site": "site-elsewhere"}),
        ("an unregistered camera", good_escalation(jpeg, "bad-camera", camera="cam-of-another-gateway")),
    ]
    for what, body in cases:
        try:
            outcome = router.process(rule_event(body))
        except Exception as exc:  # what the campaign looks for: the router must never raise on input
            crashed.append(f"{what}: {type(exc).__name__}")
            continue
        routed[outcome.status] += 1
        paid += outcome.calls.get("endpoint_invocations", 0)
        if outcome.status != "dead_letter":
            crashed.append(f"{what}: {outcome.status}")
    n = sum(routed.values()) + len(crashed)
    return Row("router fed malformed and cross-site messages",
               f"{n} kinds: each a dead letter, no endpoint call, no crash", ok=not crashed and paid == 0,
               detail=f"{routed.get('dead_letter', 0)}/{n} dead-lettered, {paid} paid endpoint calls"
                      + (f"; not dead-lettered: {'; '.join(crashed)}" if crashed else ""))


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid PNG of side x side black RGB pixels, compressed row by row (never held whole in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z, row, parts = zlib.compressobj(9), b"\0" * (side * 3 + 1), []
    for _ in range(side):
        parts.append(z.compress(row))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def jpeg_bomb(side: int = BOMB_SIDE) -> bytes:
    """A small JPEG whose frame header claims side x side pixels."""
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def _post(port: int, path: str, body: bytes, content_type: str, timeout_s: float = 60) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0  # no answer at all
    finally:
        conn.close()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bombs(port: int, pid: int, good_jpeg: bytes) -> Row:
    answers = {name: _post(port, "/invocations", body, kind)
               for name, body, kind in (("PNG", png_bomb(), "image/png"), ("JPEG", jpeg_bomb(), "image/jpeg"))}
    peak = peak_rss_mb(pid)
    alive = _post(port, "/invocations", good_jpeg, "image/jpeg")
    ok = all(400 <= s < 500 for s in answers.values()) and peak < MEMORY_LIMIT_MB and alive == 200
    return Row(f"server fed {BOMB_SIDE}x{BOMB_SIDE} pixel bombs",
               f"4xx for each, peak memory < {MEMORY_LIMIT_MB} MB, still serving", stalled="-", ok=ok,
               detail=", ".join(f"{k} -> {v or 'no answer'}" for k, v in answers.items())
                      + f"; peak RSS {peak:.0f} MB; a good image after -> {alive}")


def run_mixed_clients(port: int, good_jpeg: bytes, clients: int = 8, rounds: int = 6) -> Row:
    bad = [(b"\x00garbage" * 50, "image/jpeg"), (good_jpeg[: len(good_jpeg) // 3], "image/jpeg"),
           (b'{"instances": [', "application/json"), (b"[" * 10_000 + b"]" * 10_000, "application/json"),
           (b"x" * (7 * 1024 * 1024), "image/jpeg"), (good_jpeg, "text/plain")]
    results: Counter = Counter()
    lock = threading.Lock()

    def client(i: int) -> None:
        for r in range(rounds):
            good = (i + r) % 2 == 0
            body, kind = (good_jpeg, "image/jpeg") if good else bad[(i + r) % len(bad)]
            status = _post(port, "/invocations", body, kind)
            verdict = ("good ok" if status == 200 else f"good {status}") if good else \
                ("bad 4xx" if 400 <= status < 500 else f"bad {status}")
            with lock:
                results[verdict] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wrong = {k: v for k, v in results.items() if k not in ("good ok", "bad 4xx")}
    return Row(f"{clients} clients mixing good and bad input",
               "every good request answered 200, every bad one a 4xx, none dropped", stalled="-", ok=not wrong,
               detail=", ".join(f"{k}: {v}" for k, v in sorted(results.items())))
