"""Champion/challenger in the store: the variant, the call's time, the edge's labels and the shadow answer round
trip on every backend; `variant_results` lists exactly the rows that name a variant, within the time range; an
SQLite file written before the `variant` column is migrated in place and keeps its rows."""

from __future__ import annotations

import json
import sqlite3

from cloud.stores import ResultRecord, ShadowAnswer, StoredDetection
from cloud.stores.sqlite import SCHEMA_VERSION, SQLiteStore

T0 = 1_764_400_000.0


def _rec(mid: str, t_s: float, variant: str = "", camera: str = "plaza", **kw) -> ResultRecord:
    return ResultRecord(message_id=mid, camera=camera, t_s=t_s, site="s", model="teacher@1", variant=variant,
                        detections=(StoredDetection("person", 0.8, (1.0, 2.0, 3.0, 4.0), 0),), **kw)


def test_variant_fields_round_trip_and_variant_results_filters(any_store):
    shadow = ShadowAnswer("challenger", ("person",), {"person": 2}, 41.5)
    served = _rec("m1", T0 + 1, "champion", endpoint_ms=33.25, edge_labels=("person", "vehicle"), shadow=shadow,
                  reason="audit")
    assert any_store.put_result(served)
    assert any_store.get_result("plaza", T0 + 1, "m1") == served
    any_store.put_result(_rec("m2", T0 + 2, "challenger", camera="gate"))
    any_store.put_result(_rec("m3", T0 + 3))  # no variant named (an endpoint without variants): not listed
    any_store.put_result(_rec("m4", T0 + 100, "champion"))  # outside the range below
    got = sorted(r.message_id for r in any_store.variant_results(T0, T0 + 50))
    assert got == ["m1", "m2"]
    assert next(r for r in any_store.variant_results(T0, T0 + 50) if r.message_id == "m1").shadow == shadow


def test_an_sqlite_file_from_before_the_variant_column_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    old = _rec("m-old", T0, "")
    data = old.to_dict()
    for key in ("variant", "endpoint_ms", "edge_labels", "shadow"):  # as the older code wrote it
        data.pop(key)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE results (camera TEXT NOT NULL, sk TEXT NOT NULL, site TEXT NOT NULL, day TEXT NOT "
                   "NULL, expires_at INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (camera, sk))")
        db.execute("INSERT INTO results VALUES (?, ?, ?, ?, 0, ?)", ("plaza", old.key, "s", old.day, json.dumps(data)))
    store = SQLiteStore(path)
    try:
        assert store.get_result("plaza", T0, "m-old") == old  # read as before, naming no variant
        assert store.put_result(_rec("m-new", T0 + 1, "challenger"))
        assert [r.message_id for r in store.variant_results(T0 - 1, T0 + 10)] == ["m-new"]
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert dict(db.execute("SELECT message_id, variant FROM (SELECT json_extract(data, '$.message_id') AS "
                               "message_id, variant FROM results)").fetchall()) == {"m-old": "", "m-new": "challenger"}
    SQLiteStore(path).close()  # opening a migrated file again changes nothing
