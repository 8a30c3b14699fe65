"""A camera's own training data: the teacher's answers to the frames it escalated (training records),
turned into a Dataset the distillation code trains and evaluates on.

Only what the running system had is used: crops it sent and what the teacher said about them. The split
is in time: the oldest records train, the next calibrate, the newest are held back for the
champion/challenger decision.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from contracts.training import TrainingRecord
from models.exceptions import ModelError
from models.student.data import LABEL_INDEX, ClipData, Split
from models.student.records import load_records, split_points
from models.student.train import Dataset

log = logging.getLogger(__name__)
__all__ = ["load_records", "records_dataset"]


def records_dataset(records: list[TrainingRecord], store_wh: tuple[int, int], train_fraction: float = 0.7,
                    calib_fraction: float = 0.1, min_records: int = 8) -> Dataset:
    """One ClipData holding every crop (resized to `store_wh`), teacher boxes normalised to the crop."""
    if len(records) < min_records:
        raise ModelError(f"{len(records)} training record(s) for this camera; at least {min_records} are needed "
                         "(let the agent collect longer, or lower --min-records)")
    frames, det_frame, det_boxes, det_scores, det_labels, owner = [], [], [], [], [], []
    for k, record in enumerate(records):
        for crop in record.crops:
            image = cv2.imdecode(np.frombuffer(crop.crop.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("record %s crop %d is not a decodable JPEG; skipped", record.message_id, crop.crop.crop_id)
                continue
            h, w = image.shape[:2]
            index = len(frames)
            frames.append(cv2.resize(image, store_wh, interpolation=cv2.INTER_AREA))
            owner.append(k)
            for d in crop.teacher:
                if d.label not in LABEL_INDEX:
                    continue
                x1, y1, x2, y2 = d.box
                det_frame.append(index)
                det_boxes.append([x1 / w, y1 / h, x2 / w, y2 / h])
                det_scores.append(d.score)
                det_labels.append(LABEL_INDEX[d.label])
    clip = ClipData(f"{records[0].camera} (collected)", 1.0, store_wh, np.stack(frames),
                    np.array(det_frame, np.int64), np.array(det_boxes, np.float32).reshape(-1, 4),
                    np.array(det_scores, np.float32), np.array(det_labels, np.int64))
    # Split by record (all crops of one frame on the same side), in time.
    t_end, c_end = split_points(len(records), train_fraction, calib_fraction)
    owners = np.array(owner)
    split = Split(np.flatnonzero(owners < t_end), np.flatnonzero((owners >= t_end) & (owners < c_end)),
                  np.flatnonzero(owners >= c_end))
    return Dataset([clip], [split], [False])
