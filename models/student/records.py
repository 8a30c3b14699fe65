"""A camera's training records on disk, read without PyTorch (the gateway counts its evidence with it):
loading them oldest first, the split in time, and which labels the teacher saw in each."""

from __future__ import annotations

import logging
from pathlib import Path

from contracts.training import PACKED_SUFFIX, TrainingRecord, read_records
from contracts.wire import WireError

log = logging.getLogger(__name__)
TRAIN_FRACTION, CALIB_FRACTION = 0.7, 0.1  # the oldest records train, the next calibrate, the newest judge
REFERENCE_THRESHOLD = 0.4  # a teacher detection at or above this makes its label present (TrainConfig's default)


def load_records(folder: Path, camera: str, skipped: list[str] | None = None) -> list[TrainingRecord]:
    """Every readable training record of `camera` under `folder` (recursively), oldest first: files of one
    escalation, the router's batch objects (`=batches/`, several cameras each) and packed Firehose objects
    (`*.jsonl`, JSON lines of the whole fleet) alike; each message id once (Firehose delivers at least once). A bad file
    (corrupt, partial, not a record) is skipped with a warning and named in `skipped`, never a crash;
    half-written `.part` files are not records."""
    records, seen = [], set()
    paths = sorted([*Path(folder).rglob("*.json"), *Path(folder).rglob(f"*{PACKED_SUFFIX}")])
    for path in paths:
        bad: list[str] = []
        try:
            # one escalation's, a gateway batch's (several cameras), or a packed Firehose object (the fleet's)
            found = read_records(path.read_bytes(), bad)
        except (OSError, WireError) as exc:
            log.warning("skipping training record %s: %s", path, exc)
            if skipped is not None:
                skipped.append(f"{path.name}: {exc}")
            continue
        for line in bad:  # a packed object's unreadable lines: the rest of it is read
            log.warning("skipping a training record in %s: %s", path, line)
            if skipped is not None:
                skipped.append(f"{path.name}: {line}")
        for record in found:
            if record.camera == camera and record.message_id not in seen:  # once, however it was filed
                seen.add(record.message_id)
                records.append(record)
    return sorted(records, key=lambda r: (r.t_s, r.message_id))


def split_points(n: int, train_fraction: float = TRAIN_FRACTION,
                 calib_fraction: float = CALIB_FRACTION) -> tuple[int, int]:
    """(end of training, end of calibration) over n records in time order; the rest is held back."""
    held = max(2, round(n * (1 - train_fraction - calib_fraction)))  # the decision needs a few frames
    c_end = n - held
    t_end = min(max(1, round(n * train_fraction)), c_end - 1)
    return t_end, c_end


def present_labels(record: TrainingRecord, threshold: float = REFERENCE_THRESHOLD) -> set[str]:
    """The product labels the teacher found in any crop of the record."""
    return {d.label for crop in record.crops for d in crop.teacher if d.score >= threshold}


def camera_span_s(records: list[TrainingRecord]) -> float:
    """Camera time the records cover: the sum of forward steps of their media time, in record order (a
    source that restarts at 0 adds its new stretch rather than cancelling the old one); records without
    media time (all at 0) are measured by the edge's clock instead."""
    pairs = list(zip(records, records[1:], strict=False))
    media = float(sum(max(0.0, b.pts_s - a.pts_s) for a, b in pairs))
    return media if media > 0 else float(sum(max(0.0, b.t_s - a.t_s) for a, b in pairs))
