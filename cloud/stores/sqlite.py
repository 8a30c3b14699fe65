"""The results store on SQLite: the embedded default (`framesieve-cloud local`, a single-box install).

Same contract as DynamoDB: the primary key (camera, t_ms, message_id) makes a repeated message a no-op
(INSERT OR IGNORE), an index serves "site S on day D", and the alert slot is claimed by a conditional
UPDATE. WAL mode; one connection guarded by a lock, so the router's threads and the API can share it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cloud.awscalls import count
from cloud.exceptions import StoreError
from cloud.stores.base import DeadLetter, Page, ResultRecord, ResultsStore, decode_token, encode_token, time_key
from cloud.stores.fleetdata import (
    COUNTERS,
    EVENT_DEDUP_S,
    SPECIALIZATION_KEEP_S,
    bucket_of,
    bucket_row,
    event_delta,
    specialization_row,
)
from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry
from contracts.registry import Registration

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    camera TEXT NOT NULL, sk TEXT NOT NULL, site TEXT NOT NULL, day TEXT NOT NULL,
    expires_at INTEGER NOT NULL, data TEXT NOT NULL, variant TEXT NOT NULL DEFAULT '', PRIMARY KEY (camera, sk));
CREATE INDEX IF NOT EXISTS results_site_day ON results (site, day, sk);
CREATE TABLE IF NOT EXISTS alert_slots (
    camera TEXT NOT NULL, label TEXT NOT NULL, last_s REAL NOT NULL, message_id TEXT NOT NULL,
    PRIMARY KEY (camera, label));
CREATE TABLE IF NOT EXISTS dead_letters (
    day TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (day, key));
CREATE TABLE IF NOT EXISTS gateways (thing TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS camera_owners (camera TEXT PRIMARY KEY, thing TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS message_times (
    thing TEXT NOT NULL, message_id TEXT NOT NULL, t_s REAL NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (thing, message_id));
CREATE TABLE IF NOT EXISTS event_ids (message_id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS event_buckets (
    camera TEXT NOT NULL, t_s INTEGER NOT NULL, sampled INTEGER NOT NULL DEFAULT 0, edge INTEGER NOT NULL DEFAULT 0,
    cloud INTEGER NOT NULL DEFAULT 0, escalated INTEGER NOT NULL DEFAULT 0, cloud_failed INTEGER NOT NULL DEFAULT 0,
    people INTEGER NOT NULL DEFAULT 0, vehicles INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (camera, t_s));
CREATE TABLE IF NOT EXISTS telemetry (thing TEXT PRIMARY KEY, t_s REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS specialization (
    camera TEXT NOT NULL, sk TEXT NOT NULL, expires_at INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (camera, sk));
"""
SCHEMA_VERSION = 2  # PRAGMA user_version; 2: results.variant (champion/challenger), see _migrate


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a file written by an older FrameSieve up to SCHEMA_VERSION, in one transaction. Version 1 (no
    user_version set) had no `variant` column: it is added and filled from each row's JSON (rows stored before
    it name no variant, so they stay ""). Idempotent: a file already at the version is left alone."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
        if "variant" not in columns:
            db.execute("ALTER TABLE results ADD COLUMN variant TEXT NOT NULL DEFAULT ''")
            db.execute("UPDATE results SET variant = COALESCE(json_extract(data, '$.variant'), '')")
        db.execute("CREATE INDEX IF NOT EXISTS results_variant ON results (variant, sk)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class SQLiteStore(ResultsStore):
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            _migrate(self._db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite results store {self.path}: {exc}; check the path in "
                             "FRAMESIEVE_STORE (sqlite:///path/to/file)") from exc
        self._lock = threading.Lock()
        self.purge_expired()

    def _write(self, sql: str, args: tuple) -> int:
        count("sqlite", "write")
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def _read(self, sql: str, args: tuple) -> list[tuple]:
        count("sqlite", "read")
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def purge_expired(self, now_s: float | None = None) -> int:
        """Delete rows past their expiry (DynamoDB's TTL does this on its own)."""
        with self._lock:
            now = int(now_s if now_s is not None else time.time())
            self._db.execute("DELETE FROM message_times WHERE expires_at > 0 AND expires_at < ?", (now,))
            self._db.execute("DELETE FROM event_ids WHERE expires_at < ?", (now,))
            self._db.execute("DELETE FROM specialization WHERE expires_at < ?", (now,))
            return self._db.execute("DELETE FROM results WHERE expires_at > 0 AND expires_at < ?", (now,)).rowcount

    def get_result(self, camera: str, t_s: float, message_id: str) -> ResultRecord | None:
        rows = self._read("SELECT data FROM results WHERE camera = ? AND sk = ?", (camera, time_key(t_s, message_id)))
        return ResultRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def put_result(self, record: ResultRecord) -> bool:
        return self._write(
            "INSERT OR IGNORE INTO results (camera, sk, site, day, expires_at, data, variant) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.camera, record.key, record.site, record.day, record.expires_at, json.dumps(record.to_dict()),
             record.variant),
        ) == 1

    def _page(self, where: str, args: tuple, limit: int, token: str | None) -> Page:
        after = decode_token(token, {"after"})["after"] if token else ""
        rows = self._read(f"SELECT sk, data FROM results WHERE {where} AND sk > ? ORDER BY sk LIMIT ?",
                          (*args, after, limit + 1))
        items = [ResultRecord.from_dict(json.loads(data)) for _, data in rows[:limit]]
        return Page(items, encode_token({"after": rows[limit - 1][0]}) if len(rows) > limit else None)

    def query_camera(self, camera: str, t1_s: float, t2_s: float, limit: int = 100,
                     token: str | None = None) -> Page:
        lo, hi = f"{int(round(t1_s * 1000)):013d}", f"{int(round(t2_s * 1000)):013d}"
        return self._page("camera = ? AND sk >= ? AND sk < ?", (camera, lo, hi), limit, token)

    def latest_result(self, camera: str, before_t_s: float) -> ResultRecord | None:
        rows = self._read("SELECT data FROM results WHERE camera = ? AND sk < ? ORDER BY sk DESC LIMIT 1",
                          (camera, f"{int(round(before_t_s * 1000)):013d}"))
        return ResultRecord.from_dict(json.loads(rows[0][0])) if rows else None

    def query_site_day(self, site: str, day: str, limit: int = 100, token: str | None = None) -> Page:
        return self._page("site = ? AND day = ?", (site, day), limit, token)

    def variant_results(self, t1_s: float, t2_s: float) -> Iterator[ResultRecord]:
        lo, hi = f"{int(round(t1_s * 1000)):013d}", f"{int(round(t2_s * 1000)):013d}"
        after = ("", "")
        while True:
            rows = self._read("SELECT camera, sk, data FROM results WHERE variant != '' AND sk >= ? AND sk < ? "
                              "AND (camera, sk) > (?, ?) ORDER BY camera, sk LIMIT 1000", (lo, hi, *after))
            yield from (ResultRecord.from_dict(json.loads(data)) for _, _, data in rows)
            if len(rows) < 1000:
                return
            after = (rows[-1][0], rows[-1][1])

    def claim_alert(self, camera: str, label: str, now_s: float, cooldown_s: float, message_id: str) -> str:
        with self._lock:  # read and conditional write as one step, as DynamoDB's condition expression does
            count("sqlite", "write")
            cur = self._db.execute(
                "INSERT INTO alert_slots (camera, label, last_s, message_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (camera, label) DO UPDATE SET last_s = excluded.last_s, message_id = excluded.message_id "
                "WHERE alert_slots.last_s <= ? AND alert_slots.message_id != excluded.message_id",
                (camera, label, now_s, message_id, now_s - cooldown_s))
            if cur.rowcount == 1:
                return "claimed"
            holder = self._db.execute("SELECT message_id FROM alert_slots WHERE camera = ? AND label = ?",
                                      (camera, label)).fetchone()
        return "mine" if holder and holder[0] == message_id else "cooldown"

    def release_alert(self, camera: str, label: str, message_id: str) -> None:
        self._write("DELETE FROM alert_slots WHERE camera = ? AND label = ? AND message_id = ?",
                    (camera, label, message_id))

    def put_dead_letter(self, letter: DeadLetter) -> bool:
        return self._write("INSERT OR IGNORE INTO dead_letters (day, key, data) VALUES (?, ?, ?)",
                           (letter.day, letter.key, json.dumps(letter.to_dict()))) == 1

    def dead_letters(self, day: str, limit: int = 100, token: str | None = None) -> Page:
        after = decode_token(token, {"after"})["after"] if token else ""
        rows = self._read("SELECT key, data FROM dead_letters WHERE day = ? AND key > ? ORDER BY key LIMIT ?",
                          (day, after, limit + 1))
        items = [DeadLetter.from_dict(json.loads(data)) for _, data in rows[:limit]]
        return Page(items, encode_token({"after": rows[limit - 1][0]}) if len(rows) > limit else None)

    def register_gateway(self, entry: Registration) -> None:
        count("sqlite", "write")
        with self._lock:  # one transaction: every camera claimed for this thing, or nothing written
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for camera in entry.cameras:
                    row = self._db.execute("SELECT thing FROM camera_owners WHERE camera = ?", (camera,)).fetchone()
                    if row and row[0] != entry.thing:
                        raise StoreError(f"camera {camera!r} is registered to gateway {row[0]!r}; a camera belongs "
                                         f"to one gateway (not registering {entry.thing!r})")
                    self._db.execute("INSERT OR REPLACE INTO camera_owners (camera, thing) VALUES (?, ?)",
                                     (camera, entry.thing))
                self._db.execute("INSERT OR REPLACE INTO gateways (thing, data) VALUES (?, ?)",
                                 (entry.thing, json.dumps(entry.to_payload())))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def gateway(self, thing: str) -> Registration | None:
        rows = self._read("SELECT data FROM gateways WHERE thing = ?", (thing,))
        return Registration.from_payload(json.loads(rows[0][0])) if rows else None

    def claim_message(self, thing: str, message_id: str, t_s: float, expires_at: int) -> float:
        count("sqlite", "write")
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO message_times (thing, message_id, t_s, expires_at) "
                             "VALUES (?, ?, ?, ?)", (thing, message_id, t_s, expires_at))
            row = self._db.execute("SELECT t_s FROM message_times WHERE thing = ? AND message_id = ?",
                                   (thing, message_id)).fetchone()
        return float(row[0])

    def claim_batch(self, thing: str, batch_id: str, t_s: float, expires_at: int) -> float:
        # thing names never hold "#" (contracts.registry), so "<thing>#batch" is no gateway's message namespace
        return self.claim_message(f"{thing}#batch", batch_id, t_s, expires_at)

    def put_frame_event(self, thing: str, event: FrameEventMessage, now_s: float) -> bool:
        return self.put_frame_counts(thing, event.camera, event.wall_time, event_delta(event), event.message_id, now_s)

    def put_frame_counts(self, thing: str, camera: str, t_s: float, delta: dict[str, int], message_id: str,
                         now_s: float) -> bool:
        count("sqlite", "write")
        with self._lock:  # the id and the counters in one transaction: a repeat adds nothing
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if self._db.execute("INSERT OR IGNORE INTO event_ids (message_id, expires_at) VALUES (?, ?)",
                                    (f"{thing}#{message_id}", int(now_s + EVENT_DEDUP_S))).rowcount != 1:
                    self._db.execute("ROLLBACK")
                    return False
                cols, marks = ", ".join(COUNTERS), ", ".join("?" * len(COUNTERS))
                adds = ", ".join(f"{k} = {k} + excluded.{k}" for k in COUNTERS)
                self._db.execute(
                    f"INSERT INTO event_buckets (camera, t_s, {cols}) VALUES (?, ?, {marks}) "
                    f"ON CONFLICT (camera, t_s) DO UPDATE SET {adds}",
                    (camera, bucket_of(t_s), *(int(delta.get(k, 0)) for k in COUNTERS)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def event_buckets(self, camera: str, t1_s: float, t2_s: float) -> list[dict[str, int]]:
        rows = self._read(f"SELECT t_s, {', '.join(COUNTERS)} FROM event_buckets WHERE camera = ? AND t_s >= ? "
                          "AND t_s < ? ORDER BY t_s", (camera, bucket_of(t1_s), t2_s))
        return [bucket_row(r[0], dict(zip(COUNTERS, r[1:], strict=True))) for r in rows]

    def put_telemetry(self, telemetry: Telemetry) -> bool:
        return self._write(
            "INSERT INTO telemetry (thing, t_s, data) VALUES (?, ?, ?) ON CONFLICT (thing) DO UPDATE SET "
            "t_s = excluded.t_s, data = excluded.data WHERE excluded.t_s > telemetry.t_s",
            (telemetry.thing, telemetry.t_s, json.dumps(telemetry.to_payload()))) == 1

    def fleet_telemetry(self) -> list[Telemetry]:
        return [Telemetry.from_payload(json.loads(d)) for (d,) in
                self._read("SELECT data FROM telemetry ORDER BY thing", ())]

    def put_specialization(self, thing: str, event: SpecializationEvent) -> bool:
        return self._write(
            "INSERT OR IGNORE INTO specialization (camera, sk, expires_at, data) VALUES (?, ?, ?, ?)",
            (event.camera, time_key(event.t_s, event.message_id), int(event.t_s + SPECIALIZATION_KEEP_S),
             json.dumps(specialization_row(thing, event)))) == 1

    def specialization_history(self, camera: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read("SELECT data FROM specialization WHERE camera = ? ORDER BY sk DESC LIMIT ?",
                          (camera, limit))
        return [json.loads(d) for (d,) in rows]

    def ping(self) -> None:
        try:
            self._read("SELECT 1", ())
        except sqlite3.Error as exc:
            raise StoreError(f"the SQLite results store {self.path} does not answer: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
