"""Keep detections' identity across samples so the cloud's answer about an object is reused.

At 1 fps people move a fair way between samples, so matching is greedy on IoU with a low threshold,
per label. A track the cloud has labelled keeps that label (or the cloud's "nothing here") while it
lives, so one person walking for a minute is escalated once, not sixty times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.detections import Detections, box_iou

NOTHING = ""  # cloud_label of a track the cloud looked at and found no object in


@dataclass
class Track:
    track_id: int
    label: str
    box: np.ndarray
    score: float
    first_seen_s: float
    last_seen_s: float
    hits: int = 1
    cloud_label: str | None = None  # None: never checked; NOTHING: checked, no object
    cloud_score: float = 0.0
    checked_s: float = 0.0  # when the cloud answered
    checked_student_score: float = 0.0  # the student's score for the track at that moment

    def answer_holds(self, score: float, now_s: float, nothing_ttl_s: float, rise: float) -> bool:
        """Whether the cloud's answer still stands for this detection. A label holds while the track
        lives (a person stays a person). "Nothing here" is weaker evidence: it lapses after
        `nothing_ttl_s`, or at once when the student's score rises by `rise`, since someone may have
        stepped into the spot where the student first saw a shadow."""
        if self.cloud_label is None:
            return False
        if self.cloud_label != NOTHING:
            return True
        return now_s - self.checked_s <= nothing_ttl_s and score < self.checked_student_score + rise


class IouTracker:
    def __init__(self, iou_threshold: float = 0.2, max_age_s: float = 3.0, confirm_iou: float = 0.3):
        self.iou_threshold = iou_threshold
        self.max_age_s = max_age_s
        self.confirm_iou = confirm_iou
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, dets: Detections, pts_s: float) -> Detections:
        """Assign a track id to every detection (new tracks for the unmatched); drop stale tracks."""
        self.tracks = {k: t for k, t in self.tracks.items() if pts_s - t.last_seen_s <= self.max_age_s}
        ids = np.zeros(len(dets), np.int64)
        live = list(self.tracks.values())
        if live and len(dets):
            iou = box_iou(dets.xyxy, np.stack([t.box for t in live]))
            same = dets.labels[:, None] == np.array([t.label for t in live])[None, :]
            iou = np.where(same, iou, 0.0)
            used: set[int] = set()
            for flat in np.argsort(-iou, axis=None):
                d, k = divmod(int(flat), iou.shape[1])
                if iou[d, k] < self.iou_threshold:
                    break
                if ids[d] or k in used:
                    continue
                used.add(k)
                ids[d] = live[k].track_id
                self._touch(live[k], dets, d, pts_s)
        for d in np.nonzero(ids == 0)[0]:
            track = Track(self._next_id, str(dets.labels[d]), dets.xyxy[d].copy(), float(dets.scores[d]),
                          pts_s, pts_s)
            self.tracks[track.track_id] = track
            ids[d] = track.track_id
            self._next_id += 1
        return Detections(dets.xyxy, dets.scores, dets.labels, ids)

    @staticmethod
    def _touch(track: Track, dets: Detections, d: int, pts_s: float) -> None:
        track.box = dets.xyxy[d].copy()
        track.score = float(dets.scores[d])
        track.last_seen_s = pts_s
        track.hits += 1

    def confirm(self, track_ids: np.ndarray, cloud: Detections, now_s: float = 0.0) -> None:
        """Record the cloud's answer for these tracks: the label of the best-overlapping cloud box, or
        NOTHING when the cloud saw no object there."""
        for tid in track_ids:
            track = self.tracks.get(int(tid))
            if track is None:
                continue
            track.checked_s = now_s
            track.checked_student_score = track.score
            if len(cloud):
                iou = box_iou(track.box[None, :], cloud.xyxy)[0]
                k = int(iou.argmax())
                hit = iou[k] >= self.confirm_iou
                track.cloud_label = str(cloud.labels[k]) if hit else NOTHING
                track.cloud_score = float(cloud.scores[k]) if hit else 0.0
            else:
                track.cloud_label = NOTHING

    def get(self, track_id: int) -> Track | None:
        return self.tracks.get(int(track_id))

