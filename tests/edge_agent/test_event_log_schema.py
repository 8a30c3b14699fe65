"""The event log across versions: a database written before the fallback column gets it, old rows kept."""

from __future__ import annotations

import sqlite3

from contracts.detections import Detections
from edge_agent.events import EventLog, FrameEvent

_OLD_SCHEMA = """CREATE TABLE events (id INTEGER PRIMARY KEY, camera TEXT NOT NULL, frame_index INTEGER NOT NULL,
    pts_s REAL NOT NULL, decided_by TEXT NOT NULL, escalated INTEGER NOT NULL, reason TEXT,
    cloud_failed INTEGER NOT NULL DEFAULT 0, budget_refused INTEGER NOT NULL DEFAULT 0, detections TEXT NOT NULL,
    wall_time REAL NOT NULL);
INSERT INTO events (camera, frame_index, pts_s, decided_by, escalated, detections, wall_time)
    VALUES ('cam', 0, 0.0, 'edge', 0, '[]', 1.0);"""


def test_an_old_event_log_gains_the_fallback_column(tmp_path):
    path = tmp_path / "events.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SCHEMA)
    with EventLog(path) as log:
        log.write(FrameEvent("cam", 1, 1.0, "edge", False, Detections.empty(), 2.0, cloud_failed=True,
                             fallback="cloud_open"))
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT frame_index, cloud_failed, fallback FROM events ORDER BY id").fetchall()
    assert rows == [(0, 0, None), (1, 1, "cloud_open")]
