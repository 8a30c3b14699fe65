"""The final decision for every sampled frame: a local SQLite log and, optionally, JSONL.

The JSONL line is the format the README documents: camera, frame_index, pts_s, decided_by, escalated,
detections (label, score, box in source pixels). The SQLite row adds why and how.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Protocol

from contracts.detections import Detections
from contracts.device import FrameEventMessage
from edge_agent.config import ConfigError

if TYPE_CHECKING:
    from edge_agent.escalation.mqtt import MqttLink

log = logging.getLogger(__name__)
# One line per decided frame, with its fields (JSON logs); `output.log_frames: false` silences it.
frames_log = logging.getLogger("edge_agent.frames")

DecidedBy = Literal["edge", "cloud", "carried", "audit"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    frame_index INTEGER NOT NULL,
    pts_s REAL NOT NULL,
    decided_by TEXT NOT NULL,
    escalated INTEGER NOT NULL,
    reason TEXT,
    cloud_failed INTEGER NOT NULL DEFAULT 0,
    budget_refused INTEGER NOT NULL DEFAULT 0,
    detections TEXT NOT NULL,
    wall_time REAL NOT NULL,
    fallback TEXT
);
CREATE INDEX IF NOT EXISTS events_camera_time ON events (camera, pts_s);
"""


@dataclass
class FrameEvent:
    camera: str
    frame_index: int
    pts_s: float
    decided_by: DecidedBy
    escalated: bool
    detections: Detections
    wall_time: float
    reason: str | None = None
    cloud_failed: bool = False
    budget_refused: bool = False
    # Why the edge decided a frame it meant to ask the cloud about, or could not run its student on:
    # cloud_failed (asked, no answer), cloud_open (breaker open: not asked), cloud_busy (too many awaited),
    # student_failed (the model failed on its batch: the settled past carried). None: nothing went wrong.
    fallback: str | None = None

    def to_line(self) -> dict:
        return {"camera": self.camera, "frame_index": self.frame_index, "pts_s": round(self.pts_s, 3),
                "decided_by": self.decided_by, "escalated": self.escalated,
                "detections": self.detections.to_records()}


def event_message(event: FrameEvent, site: str = "") -> FrameEventMessage:
    """The event as the events topic carries it, with a fresh message id (the cloud deduplicates by it)."""
    return FrameEventMessage(
        message_id=str(uuid.uuid4()), camera=event.camera, frame_index=event.frame_index, pts_s=event.pts_s,
        decided_by=event.decided_by, escalated=event.escalated, wall_time=event.wall_time, site=site,
        cloud_failed=event.cloud_failed, detections=event.detections.to_wire())


def _migrate(db: sqlite3.Connection) -> None:
    """An event log from before the fallback column gets it (old rows: NULL)."""
    if "fallback" not in {row[1] for row in db.execute("PRAGMA table_info(events)")}:
        db.execute("ALTER TABLE events ADD COLUMN fallback TEXT")
        db.commit()


class FrameSink(Protocol):
    """Where the agent puts each frame's final decision: the event log, or something that wraps it (the sieve
    for landed video also counts them per minute for the results store)."""

    def write(self, event: FrameEvent) -> None: ...


class EventLog:
    """SQLite (WAL, so a reader such as a dashboard never blocks the agent) plus optional JSONL, and the
    cloud's events topic through the shared MQTT link when there is one."""

    def __init__(self, db_path: Path | str, jsonl_path: Path | str | None = None, link: MqttLink | None = None,
                 site: str = ""):
        self.link, self.site = link, site
        self.db_path = Path(db_path)
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.db_path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across an agent crash
            self._db.executescript(_SCHEMA)
            _migrate(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"output.events_db: cannot write the event log {self.db_path}: {exc}; make its "
                              "folder writable by the agent or point output.events_db elsewhere") from exc
        self._lock = threading.Lock()
        self._jsonl: IO[str] | None = None
        if jsonl_path:
            try:
                Path(jsonl_path).parent.mkdir(parents=True, exist_ok=True)
                self._jsonl = open(jsonl_path, "w", buffering=1)  # line-buffered: a crash loses no line
            except OSError as exc:
                self._db.close()
                raise ConfigError(f"output.detections_out: cannot write {jsonl_path}: {exc.strerror}") from exc

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def write(self, event: FrameEvent) -> None:
        if self.link is not None:  # spooled first, so whatever the local log holds the cloud gets, crash or not
            try:
                message = event_message(event, self.site)
                self.link.send_later("event", message.message_id, self.link.topics.events, message.to_bytes())
            except Exception:
                log.exception("camera %s frame %d: event not queued for the cloud", event.camera, event.frame_index)
        line = event.to_line()
        with self._lock:
            self._db.execute(
                "INSERT INTO events (camera, frame_index, pts_s, decided_by, escalated, reason, cloud_failed,"
                " budget_refused, detections, wall_time, fallback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.camera, event.frame_index, event.pts_s, event.decided_by, int(event.escalated),
                 event.reason, int(event.cloud_failed), int(event.budget_refused),
                 json.dumps(line["detections"]), event.wall_time, event.fallback),
            )
            self._db.commit()
            if self._jsonl:
                self._jsonl.write(json.dumps(line) + "\n")
        if frames_log.isEnabledFor(logging.INFO):
            how = "cloud" if event.escalated else event.fallback or event.decided_by
            latency_ms = round((time.time() - event.wall_time) * 1000, 1)
            frames_log.info("camera %s frame %d: %s, %d object(s), %.0f ms after sampling", event.camera,
                            event.frame_index, how, len(line["detections"]), latency_ms,
                            extra={"camera": event.camera, "frame": event.frame_index, "pts_s": round(event.pts_s, 3),
                                   "decided_by": event.decided_by, "escalated": event.escalated,
                                   "fallback": event.fallback, "objects": len(line["detections"]),
                                   "latency_ms": latency_ms})

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._jsonl:
                self._jsonl.close()
