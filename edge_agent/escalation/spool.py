"""The durable spool: what the gateway could not send yet (escalations, frame events), kept on disk in
order until the broker acknowledges it, so neither an outage nor a `kill -9` loses a message.

SQLite in WAL mode with synchronous=NORMAL: a committed row survives the process dying at any point
(power loss may cost the last moments; a gateway on a UPS-less shelf accepts that). Bounded by rows
and bytes: when full, the oldest rows are evicted, logged and counted in the file itself, so the
count survives restarts and reaches telemetry. Delivery is at least once: a row is deleted only after
its PUBACK, so a crash between the two sends it again, and the receiver deduplicates by message_id.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from contracts.wire import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_s REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SpoolItem:
    id: int
    message_id: str
    kind: str
    topic: str
    payload: bytes
    created_s: float
    attempts: int


class Spool:
    def __init__(self, path: Path | str, max_rows: int = 20_000, max_bytes: int = 256 * 1024 * 1024):
        if max_rows < 1 or max_bytes < 256 * 1024:
            raise ValueError(f"spool bounds too small: max_rows {max_rows} (>= 1), max_bytes {max_bytes} (>= 256 KB, "
                             "two of the largest messages)")
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA journal_size_limit=4194304")  # the WAL shrinks back after checkpoints
        self._db.executescript(_SCHEMA)
        self._evicted_unlogged = 0
        self._evict_logged_s = float("-inf")
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._rows, self._bytes = int(rows), int(size)
        if self._rows:
            log.info("spool %s holds %d message(s), %d bytes, from before: they are sent first", self.path,
                     self._rows, self._bytes)

    # -- writing -------------------------------------------------------------------------------------
    def put(self, kind: str, message_id: str, topic: str, payload: bytes) -> bool:
        """Store a message (a repeated message_id is stored once). False if it was already there."""
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(f"{kind} {message_id} is {len(payload)} bytes, over the {MAX_MESSAGE_BYTES}-byte "
                             "message limit: it could never be sent, so it is not spooled")
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, kind, topic, payload, created_s) VALUES (?, ?, ?, ?, ?)",
                (message_id, kind, topic, payload, time.time()))
            if not cur.rowcount:
                return False
            self._rows += 1
            self._bytes += len(payload)
            self._evict()
            return True

    def _evict(self) -> None:
        evicted: dict[str, int] = {}
        while self._rows > self.max_rows or self._bytes > self.max_bytes:
            row = self._db.execute("SELECT id, kind, LENGTH(payload) FROM outbox ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
            self._rows -= 1
            self._bytes -= int(row[2])
            evicted[row[1]] = evicted.get(row[1], 0) + 1
        for kind, count in evicted.items():
            for key in ("evicted", f"evicted_{kind}"):
                self._db.execute("INSERT INTO spool_meta (key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value", (key, count))
            self._evicted_unlogged += count
        # A full spool evicts on every new message: one warning a minute (with the count), not one each.
        if self._evicted_unlogged and time.monotonic() - self._evict_logged_s >= 60:
            log.warning("spool full (max %d rows, %d bytes): evicted the %d oldest message(s) since the last "
                        "warning (%s); raise escalation.spool bounds or restore the uplink", self.max_rows,
                        self.max_bytes, self._evicted_unlogged, ", ".join(f"{k}: {v}" for k, v in evicted.items()))
            self._evicted_unlogged, self._evict_logged_s = 0, time.monotonic()

    def ack(self, ids: list[int]) -> None:
        """The broker acknowledged these rows: forget them."""
        if not ids:
            return
        with self._lock:
            marks = ",".join("?" * len(ids))
            gone = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox "
                                    f"WHERE id IN ({marks})", ids).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)
            self._rows -= int(gone[0])
            self._bytes -= int(gone[1])

    def attempted(self, ids: list[int]) -> None:
        if ids:
            with self._lock:
                self._db.execute(f"UPDATE outbox SET attempts = attempts + 1 WHERE id IN ({','.join('?' * len(ids))})",
                                 ids)

    # -- reading -------------------------------------------------------------------------------------
    def peek(self, limit: int) -> list[SpoolItem]:
        """The oldest `limit` messages, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, message_id, kind, topic, payload, created_s, attempts FROM outbox "
                                    "ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [SpoolItem(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6]) for r in rows]

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def bytes(self) -> int:
        return self._bytes

    def kinds(self) -> dict[str, int]:
        """What the spool holds, by kind ("event", "escalation", ...): one read, for the stop line."""
        with self._lock:
            return dict(self._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind ORDER BY kind").fetchall())

    def evicted(self, kind: str | None = None) -> int:
        key = f"evicted_{kind}" if kind else "evicted"
        with self._lock:
            row = self._db.execute("SELECT value FROM spool_meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, int]:
        return {"rows": self.rows, "bytes": self.bytes, "evicted": self.evicted()}

    def close(self) -> None:
        with self._lock:
            self._db.close()
