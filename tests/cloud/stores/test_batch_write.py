"""A batch's rows in one write: `put_results` on every backend (DynamoDB on moto_server over HTTP: one
BatchWriteItem per 25 rows), the items DynamoDB leaves unprocessed sent again, and a StoreError naming what
is left when they never go."""

from __future__ import annotations

import uuid

import pytest

from cloud import awscalls
from cloud.exceptions import StoreError
from cloud.stores.dynamodb import DynamoDBStore, create_table
from tests.cloud.conftest import DUMMY_ENV, aws
from tests.cloud.stores.test_contract import T0, record


def test_a_batch_of_rows_is_written_and_read_back_on_every_backend(any_store):
    rows = [record(f"m{k:02d}", T0 + k, camera=("plaza", "gate")[k % 2], training_key=f"b.json#m{k:02d}")
            for k in range(30)]
    with awscalls.counting() as counter:
        assert any_store.put_results(rows) == 30
    got = any_store.query_camera("plaza", T0, T0 + 60, limit=100).items + \
        any_store.query_camera("gate", T0, T0 + 60, limit=100).items
    assert sorted(got, key=lambda r: r.message_id) == rows
    if isinstance(any_store, DynamoDBStore):  # 30 rows: two requests of at most 25
        assert counter.kinds()["store_writes"] == 2
    assert any_store.put_result(rows[0]) is False  # the row is there: a single repeat still writes nothing


class _Throttled:
    """The real moto client, with DynamoDB's throttled answer played: each request writes only its first
    `take` items and returns the rest as UnprocessedItems (moto itself never throttles)."""

    def __init__(self, client, take: int):
        self.client, self.take, self.requests = client, take, []

    def batch_write_item(self, RequestItems):  # noqa: N803 (boto3's argument name)
        [(table, items)] = RequestItems.items()
        self.requests.append(len(items))
        if self.take:
            self.client.batch_write_item(RequestItems={table: items[:self.take]})
        rest = items[self.take:]
        return {"UnprocessedItems": {table: rest} if rest else {}}

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.fixture()
def table(monkeypatch, moto):
    for key, value in DUMMY_ENV.items():
        monkeypatch.setenv(key, value)
    name = f"t{uuid.uuid4().hex[:10]}"
    create_table(aws("dynamodb", moto.url), name)
    return name


def test_unprocessed_items_are_sent_again_until_written(table, moto, monkeypatch):
    monkeypatch.setattr("cloud.stores.dynamodb.BATCH_BACKOFF_S", 0.001)
    client = _Throttled(aws("dynamodb", moto.url), take=4)
    store = DynamoDBStore(table, client)
    rows = [record(f"u{k}", T0 + k) for k in range(10)]
    assert store.put_results(rows) == 10
    assert client.requests == [10, 6, 2]  # 4 written each time, the rest sent again
    assert [r.message_id for r in store.query_camera("plaza", T0, T0 + 60).items] == [f"u{k}" for k in range(10)]


def test_items_never_processed_fail_the_write_and_say_how_many(table, moto, monkeypatch):
    monkeypatch.setattr("cloud.stores.dynamodb.BATCH_BACKOFF_S", 0.001)
    store = DynamoDBStore(table, _Throttled(aws("dynamodb", moto.url), take=0))
    with pytest.raises(StoreError, match=r"3 row\(s\) still unprocessed after 6 attempts"):
        store.put_results([record(f"n{k}", T0 + k) for k in range(3)])
