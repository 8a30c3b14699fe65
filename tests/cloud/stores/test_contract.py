"""One contract, every backend: SQLite on a temp file and DynamoDB on moto_server over HTTP."""

from __future__ import annotations

import pytest

from cloud.exceptions import StoreError
from cloud.stores import DeadLetter, ResultRecord, StoredDetection

T0 = 1_764_400_000.0  # 2025-11-29 07:06:40 UTC


def record(mid: str, t_s: float, camera: str = "plaza", site: str = "site-1", **kw) -> ResultRecord:
    dets = kw.pop("detections", (StoredDetection("person", 0.8, (10.0, 20.0, 30.0, 60.0), 0),))
    return ResultRecord(message_id=mid, camera=camera, t_s=t_s, site=site, detections=dets, model="teacher@1",
                        **kw)


def all_pages(fetch, limit: int) -> list:
    items, token, pages = [], None, 0
    while True:
        page = fetch(limit=limit, token=token)
        items.extend(page.items)
        pages += 1
        assert pages < 50
        if not (token := page.next_token):
            return items


def test_put_is_idempotent_and_round_trips(any_store):
    rec = record("m1", T0 + 0.25, thing="gw", alerts=("person:r",), calls={"s3_puts": 1}, expires_at=int(T0) + 99)
    assert any_store.put_result(rec) is True
    assert any_store.put_result(record("m1", T0 + 0.25, detections=())) is False  # a repeat: no second row
    assert any_store.get_result("plaza", T0 + 0.25, "m1") == rec
    assert any_store.get_result("plaza", T0 + 0.25, "other") is None
    assert any_store.query_camera("plaza", T0, T0 + 1).items == [rec]


def test_camera_time_range_is_half_open_and_paginated(any_store):
    for k in range(7):
        any_store.put_result(record(f"m{k}", T0 + k))
    any_store.put_result(record("x", T0 + 3, camera="gate"))
    got = all_pages(lambda **kw: any_store.query_camera("plaza", T0 + 1, T0 + 6, **kw), limit=2)
    assert [r.message_id for r in got] == ["m1", "m2", "m3", "m4", "m5"]
    assert [r.message_id for r in any_store.query_camera("gate", T0, T0 + 10).items] == ["x"]
    assert any_store.query_camera("plaza", T0 + 100, T0 + 200).items == []


def test_site_day_index(any_store):
    any_store.put_result(record("a", T0, camera="plaza"))
    any_store.put_result(record("b", T0 + 60, camera="gate"))
    any_store.put_result(record("c", T0 + 86400, camera="plaza"))  # the next day
    any_store.put_result(record("d", T0 + 30, camera="yard", site="site-2"))
    got = all_pages(lambda **kw: any_store.query_site_day("site-1", "2025-11-29", **kw), limit=1)
    assert [r.message_id for r in got] == ["a", "b"]
    assert [r.message_id for r in any_store.query_site_day("site-1", "2025-11-30").items] == ["c"]


def test_counters_come_from_the_rows(any_store):
    any_store.put_result(record("a", T0, alerts=("person:r",), training_key="k"))
    any_store.put_result(record("b", T0 + 1, reason="audit", detections=()))
    counters = any_store.counters("plaza", T0, T0 + 10)
    assert counters == {"escalated": 2, "uncertain": 1, "audit": 1, "with_detections": 1,
                        "frames_with_label": {"person": 1}, "alerts": 1, "training_captured": 1}


def test_alert_slot_cooldown_and_release(any_store):
    assert any_store.claim_alert("plaza", "person", T0, 300, "m1") == "claimed"
    assert any_store.claim_alert("plaza", "person", T0 + 1, 300, "m1") == "mine"  # a repeat of m1
    assert any_store.claim_alert("plaza", "person", T0 + 10, 300, "m2") == "cooldown"
    assert any_store.claim_alert("plaza", "vehicle", T0 + 10, 300, "m2") == "claimed"  # per label
    assert any_store.claim_alert("gate", "person", T0 + 10, 300, "m2") == "claimed"  # per camera
    assert any_store.claim_alert("plaza", "person", T0 + 301, 300, "m3") == "claimed"  # cooled down
    any_store.release_alert("plaza", "person", "m2")  # not the holder: nothing happens
    assert any_store.claim_alert("plaza", "person", T0 + 302, 300, "m4") == "cooldown"
    any_store.release_alert("plaza", "person", "m3")
    assert any_store.claim_alert("plaza", "person", T0 + 302, 300, "m4") == "claimed"


def test_dead_letters_are_recorded_once(any_store):
    letter = DeadLetter(key="m1:malformed", t_s=T0, kind="malformed", reason="escalation: missing field 'crops'",
                        topic="framesieve/gw/escalations", thing="gw", size=42, excerpt="{...")
    assert any_store.put_dead_letter(letter) is True
    assert any_store.put_dead_letter(letter) is False
    any_store.put_dead_letter(DeadLetter(key="z:oversized", t_s=T0 + 5, kind="oversized", reason="big"))
    got = all_pages(lambda **kw: any_store.dead_letters("2025-11-29", **kw), limit=1)
    assert got[0] == letter and [d.key for d in got] == ["m1:malformed", "z:oversized"]


def test_a_forged_page_token_is_refused(any_store):
    with pytest.raises(StoreError, match="page token"):
        any_store.query_camera("plaza", T0, T0 + 1, token="not-a-token!")
    any_store.put_result(record("a", T0))
    any_store.put_result(record("b", T0 + 1))
    token = any_store.query_camera("plaza", T0, T0 + 10, limit=1).next_token
    assert token
    if type(any_store).__name__ == "DynamoDBStore":  # its tokens carry their partition
        with pytest.raises(StoreError, match="another query"):
            any_store.query_camera("gate", T0, T0 + 10, token=token)


def test_latest_result_is_the_newest_row_before_a_time(any_store):
    for mid, t in (("a", 100.0), ("b", 200.0), ("c", 300.0)):
        any_store.put_result(record(mid, t))
    any_store.put_result(record("other", 250.0, camera="door"))
    assert any_store.latest_result("plaza", 250.0).message_id == "b"
    assert any_store.latest_result("plaza", 1e12).message_id == "c"
    assert any_store.latest_result("plaza", 100.0) is None  # strictly before
    assert any_store.latest_result("nobody", 1e12) is None


def test_gateway_registry_one_owner_per_camera(any_store):
    from contracts.registry import Registration

    a = Registration("gw-a", "site-a", ("plaza", "gate"))
    assert any_store.gateway("gw-a") is None
    any_store.register_gateway(a)
    assert any_store.gateway("gw-a") == a
    with pytest.raises(StoreError, match="'gate'.*another gateway|'gate' is registered to gateway 'gw-a'"):
        any_store.register_gateway(Registration("gw-b", "site-b", ("yard", "gate")))
    assert any_store.gateway("gw-b") is None  # all or nothing: yard was not claimed either
    any_store.register_gateway(Registration("gw-b", "site-b", ("yard",)))
    any_store.register_gateway(Registration("gw-a", "site-a", ("plaza", "gate", "lobby")))  # again: replaced
    assert any_store.gateway("gw-a").cameras == ("plaza", "gate", "lobby")
    assert a.refusal("site-a", "plaza") == "" and a.refusal("", "gate") == ""
    assert "not 'site-b'" in a.refusal("site-b", "plaza") and "not registered" in a.refusal("site-a", "yard")


def test_a_message_keeps_the_time_of_its_first_delivery(any_store):
    assert any_store.claim_message("gw-a", "m1", T0, int(T0) + 99) == T0
    assert any_store.claim_message("gw-a", "m1", T0 + 7.5, int(T0) + 99) == T0  # a repeat: the first time
    assert any_store.claim_message("gw-b", "m1", T0 + 3, int(T0) + 99) == T0 + 3  # another gateway's id


def test_a_batch_keeps_the_time_of_its_first_delivery_apart_from_message_claims(any_store):
    assert any_store.claim_batch("gw-a", "b1", T0, int(T0) + 99) == T0
    assert any_store.claim_batch("gw-a", "b1", T0 + 60, int(T0) + 99) == T0  # again, or an item re-sent alone
    assert any_store.claim_batch("gw-b", "b1", T0 + 3, int(T0) + 99) == T0 + 3  # another gateway's batch
    assert any_store.claim_message("gw-a", "b1", T0 + 5, int(T0) + 99) == T0 + 5  # a message id is not a batch id
    assert any_store.claim_batch("gw-a", "b2", T0 + 9, int(T0) + 99) == T0 + 9


@pytest.mark.slow
def test_counters_over_many_rows_hold_one_page_at_a_time(tmp_path):
    """/counters over 31 days once loaded every row: 20000 rows are ~10x the peak a running sum needs."""
    import tracemalloc

    from cloud.stores import open_store

    store = open_store(f"sqlite://{tmp_path / 'many.sqlite'}")
    for k in range(20_000):
        store.put_result(record(f"m{k:05d}", T0 + k, alerts=("person:r",) if k % 10 == 0 else ()))
    tracemalloc.start()
    counters = store.counters("plaza", T0, T0 + 20_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store.close()
    assert counters["escalated"] == 20_000 and counters["alerts"] == 2000
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB while summing"
