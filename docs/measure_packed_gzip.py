"""Bytes of the same training records: as plain JSON, gzip per record (the s3 sink's objects), and gzip over a
whole object of JSON lines (what Firehose's GZIP writes). Run: python docs/measure_packed_gzip.py

Records: two halves of every 2nd s of vtest.avi at the lean message's size (208x312, JPEG q70), the
teacher's boxes faked as one per crop (boxes are a few bytes)."""
from __future__ import annotations

import gzip

import cv2

from contracts.training import TrainingCrop, TrainingRecord, encode_object, to_line
from contracts.wire import Crop, DetectionRecord
from models.fetch import fetch_vtest

cap = cv2.VideoCapture(str(fetch_vtest()))
records, i = [], 0
while True:
    ok, frame = cap.read()
    if not ok:
        break
    if i % 20 == 0:
        crops = []
        for cid, (x1, x2) in enumerate(((0, 384), (384, 768))):
            small = cv2.resize(frame[:, x1:x2], (208, 312), interpolation=cv2.INTER_AREA)
            jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
            crops.append(TrainingCrop(Crop(cid, (float(x1), 0.0, float(x2), 576.0), jpeg, (208, 312)),
                                      (DetectionRecord("person", 0.8, (10, 10, 50, 120)),)))
        records.append(TrainingRecord(f"m{i}", "plaza", 1000.0 + i, i / 10, i, "uncertain", "yolov3-tiny",
                                      tuple(crops), "s", "gw"))
    i += 1
lines = [to_line(r) for r in records]
plain = sum(map(len, lines))
per_record = sum(len(encode_object(line)) for line in lines)
whole = len(gzip.compress(b"".join(lines), 6))
n = len(records)
print(f"{n} records: JSON {plain/n:,.0f} B; gzip per record {per_record/n:,.0f} B ({per_record/plain:.3f}); "
      f"gzip of the whole object {whole/n:,.0f} B ({whole/plain:.3f})")
