"""Every sampled frame's final decision into the results store, as a gateway's frame events reach it (the
per-minute counters of the dashboard's fleet view), but summed per camera and minute in the sieve first: one
store write per camera-minute (a DynamoDB transaction of two items, 4 write units) instead of one per frame,
60 times fewer at 1 fps. A minute is written once a later one has begun for the camera (events can settle a
few seconds out of order while answers are awaited), and every open minute when the run ends.

Ids are derived from the video and the minute (uuid5), so the same video sieved again counts nothing twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

from cloud.stores import ResultsStore
from cloud.stores.fleetdata import BUCKET_S, bucket_of, event_delta
from edge_agent.events import FrameEvent, FrameSink, event_message
from landed.transport import _IDS


class MinuteCounts:
    """Wraps the agent's event log (its FrameSink): each event is written there as before, and counted for the
    store."""

    def __init__(self, log: FrameSink, store: ResultsStore, thing: str, site: str, origin: str,
                 starts: dict[str, float]):
        self._log, self.store, self.thing, self.site, self.origin, self.starts = log, store, thing, site, origin, starts
        self._open: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self.frames = self.minutes_written = self.repeats = 0

    def write(self, event: FrameEvent) -> None:
        self._log.write(event)
        start = self.starts.get(event.camera)
        t_s = start + event.pts_s if start is not None else event.wall_time
        minute = bucket_of(t_s)
        with self._lock:
            self.frames += 1
            counts = self._open[(event.camera, minute)]
            for key, value in event_delta(event_message(event, self.site)).items():
                counts[key] += value
            latest = self._latest[event.camera] = max(minute, self._latest.get(event.camera, minute))
            done = [k for k in self._open if k[0] == event.camera and k[1] < latest - BUCKET_S]
        self._flush(done)

    def close(self) -> None:
        """Write every minute still open (the run has ended)."""
        with self._lock:
            done = list(self._open)
        self._flush(done)

    def _flush(self, keys: list[tuple[str, int]]) -> None:
        for camera, minute in keys:
            with self._lock:
                counts = self._open.pop((camera, minute), None)
            if not counts:
                continue
            mid = str(uuid.uuid5(_IDS, f"{self.origin}|{camera}|{minute}|minute"))
            if self.store.put_frame_counts(self.thing, camera, minute, dict(counts), mid, time.time()):
                self.minutes_written += 1
            else:
                self.repeats += 1
