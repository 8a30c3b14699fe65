"""The results store on DynamoDB: one table, on-demand, keyed for the two questions asked of it.

| item | pk | sk | GSI1 (gsi1pk / gsi1sk) |
|---|---|---|---|
| result | `CAM#<camera>` | `<t_ms:013d>#<message_id>` | `SITE#<site>#<YYYY-MM-DD>` / sk |
| alert slot | `ALERT#<camera>` | `<label>` | - |
| dead letter | `DLQ#<YYYY-MM-DD>` | `<message id or digest>` | - |
| message time | `MSG#<thing>#<message_id>` | `MSG` | - |
| gateway, camera owner | see contracts/registry.py | | - |
| frame event minute | `EVB#<camera>` | `<minute epoch s:010d>` (counters, ADDed) | - |
| frame event id | `EVT#<thing>#<message_id>` | `EVT` | - |
| gateway telemetry | `FLEET` | `TEL#<thing>` | - |
| specialization step | `SPEC#<camera>` | `<t_ms:013d>#<message_id>` | - |

A result row also carries `variant` (the production variant that answered) as its own attribute when the
endpoint named one, for `framesieve-cloud ab report`.

"Camera X between t1 and t2" is one Query on pk with sk BETWEEN; "site S on day D" one Query on GSI1.
`expires_at` is the TTL attribute. The record itself is one JSON string attribute (`data`): no Decimal
round trips, and the item stays small (~1 KB: one write unit). Low-level client, so every request is
counted by `cloud.awscalls` and the page token is the plain LastEvaluatedKey.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloud import awscalls
from cloud.exceptions import StoreError
from cloud.stores.base import DeadLetter, Page, ResultRecord, ResultsStore, decode_token, encode_token, time_key
from cloud.stores.fleetdata import (
    COUNTERS,
    EVENT_DEDUP_S,
    SPECIALIZATION_KEEP_S,
    bucket_of,
    bucket_row,
    event_delta,
    specialization_row,
)
from contracts.device import FrameEventMessage, SpecializationEvent, Telemetry
from contracts.registry import Registration, gateway_key, write_dynamodb

GSI1 = "gsi1"
BATCH_WRITE_ITEMS = 25  # DynamoDB's limit per BatchWriteItem request
BATCH_ATTEMPTS = 6  # requests for one chunk's unprocessed items, backoff 0.05 s doubling with full jitter
BATCH_BACKOFF_S = 0.05


def create_table(client: Any, table: str) -> None:
    """Create the table (on demand, GSI1, TTL on `expires_at`) and wait until it is active. For tests and
    `framesieve-cloud local`; production creates it from infra/cloudformation."""
    s = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")]
    client.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=s,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": GSI1, "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"},
                          {"AttributeName": "gsi1sk", "KeyType": "RANGE"}]}],
    )
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client.update_time_to_live(TableName=table,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})


def _ms(t_s: float) -> str:
    return f"{int(round(t_s * 1000)):013d}"


class DynamoDBStore(ResultsStore):
    def __init__(self, table: str, client: Any | None = None):
        self.table = table
        self._client = client or awscalls.client("dynamodb")

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """Run one request; None when its condition failed (not an error: the item was already there)."""
        try:
            return getattr(self._client, operation)(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return None
            hint = " (create it with cloud.stores.dynamodb.create_table)" if code == "ResourceNotFoundException" else ""
            raise StoreError(f"DynamoDB {operation} on table {self.table!r} failed: {code}: "
                             f"{exc.response.get('Error', {}).get('Message', exc)}{hint}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB {operation} on table {self.table!r} failed: {exc}") from exc

    def get_result(self, camera: str, t_s: float, message_id: str) -> ResultRecord | None:
        reply = self._call("get_item", Key={"pk": {"S": f"CAM#{camera}"}, "sk": {"S": time_key(t_s, message_id)}},
                           ConsistentRead=True, ProjectionExpression="#d", ExpressionAttributeNames={"#d": "data"})
        item = (reply or {}).get("Item")
        return ResultRecord.from_dict(json.loads(item["data"]["S"])) if item else None

    @staticmethod
    def _result_item(record: ResultRecord) -> dict[str, Any]:
        item = {"pk": {"S": f"CAM#{record.camera}"}, "sk": {"S": record.key},
                "gsi1pk": {"S": f"SITE#{record.site}#{record.day}"}, "gsi1sk": {"S": record.key},
                "data": {"S": json.dumps(record.to_dict(), separators=(",", ":"))}}
        if record.expires_at:
            item["expires_at"] = {"N": str(record.expires_at)}
        if record.variant:  # a top-level attribute too, so `ab report` filters on it server-side
            item["variant"] = {"S": record.variant}
        return item

    def put_result(self, record: ResultRecord) -> bool:
        item = self._result_item(record)
        return self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)") is not None

    def put_results(self, records: list[ResultRecord]) -> int:
        """BatchWriteItem, 25 rows a request; the items DynamoDB leaves unprocessed (throttling) are sent
        again with jittered exponential backoff, and a StoreError after BATCH_ATTEMPTS names how many are
        left (the invocation fails, Lambda retries it; rows written already are found by the retry's read)."""
        for start in range(0, len(records), BATCH_WRITE_ITEMS):
            pending = [{"PutRequest": {"Item": self._result_item(r)}} for r in records[start:start + BATCH_WRITE_ITEMS]]
            for attempt in range(BATCH_ATTEMPTS):
                try:
                    reply = self._client.batch_write_item(RequestItems={self.table: pending})
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError(f"DynamoDB batch_write_item on table {self.table!r} failed: {exc}") from exc
                pending = reply.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
                if attempt + 1 < BATCH_ATTEMPTS:
                    time.sleep(random.uniform(0, BATCH_BACKOFF_S * 2 ** attempt))
            else:
                raise StoreError(f"DynamoDB batch_write_item on table {self.table!r}: {len(pending)} row(s) still "
                                 f"unprocessed after {BATCH_ATTEMPTS} attempts (throttled); the invocation fails so "
                                 "that it is retried")
        return len(records)

    def _query(self, key: dict[str, str], limit: int, token: str | None,
               **kwargs: Any) -> tuple[list[dict], str | None]:
        if token:
            start = decode_token(token, {"pk", "sk", *key, *(("gsi1sk",) if "IndexName" in kwargs else ())})
            if any(start.get(k) != v for k, v in key.items()):
                raise StoreError(f"page token {token[:40]!r} belongs to another query; start again without it")
            kwargs["ExclusiveStartKey"] = {k: {"S": str(v)} for k, v in start.items()}
        reply = self._call("query", Limit=limit, **kwargs) or {}
        last = reply.get("LastEvaluatedKey")
        return reply.get("Items", []), encode_token({k: v["S"] for k, v in last.items()}) if last else None

    def query_camera(self, camera: str, t1_s: float, t2_s: float, limit: int = 100,
                     token: str | None = None) -> Page:
        pk = f"CAM#{camera}"
        items, nxt = self._query(
            {"pk": pk}, limit, token, KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": {"S": pk}, ":lo": {"S": _ms(t1_s)},
                                       ":hi": {"S": f"{int(round(t2_s * 1000)) - 1:013d}#\uffff"}})
        return Page([ResultRecord.from_dict(json.loads(i["data"]["S"])) for i in items], nxt)

    def latest_result(self, camera: str, before_t_s: float) -> ResultRecord | None:
        pk = f"CAM#{camera}"
        reply = self._call("query", Limit=1, ScanIndexForward=False,
                           KeyConditionExpression="pk = :pk AND sk < :hi",
                           ExpressionAttributeValues={":pk": {"S": pk}, ":hi": {"S": _ms(before_t_s)}}) or {}
        items = reply.get("Items", [])
        return ResultRecord.from_dict(json.loads(items[0]["data"]["S"])) if items else None

    def query_site_day(self, site: str, day: str, limit: int = 100, token: str | None = None) -> Page:
        pk = f"SITE#{site}#{day}"
        items, nxt = self._query({"gsi1pk": pk}, limit, token, IndexName=GSI1,
                                 KeyConditionExpression="gsi1pk = :pk",
                                 ExpressionAttributeValues={":pk": {"S": pk}})
        return Page([ResultRecord.from_dict(json.loads(i["data"]["S"])) for i in items], nxt)

    def variant_results(self, t1_s: float, t2_s: float) -> Iterator[ResultRecord]:
        """A Scan filtered on the `variant` attribute: rows of every camera, read once per report (a report
        over a busy table reads it whole; export to S3 and query there when that grows too dear)."""
        start = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            reply = self._call(
                "scan",
                FilterExpression="attribute_exists(variant) AND begins_with(pk, :cam) AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":cam": {"S": "CAM#"}, ":lo": {"S": _ms(t1_s)},
                                           ":hi": {"S": f"{int(round(t2_s * 1000)) - 1:013d}#\uffff"}},
                ProjectionExpression="#d", ExpressionAttributeNames={"#d": "data"}, **extra) or {}
            yield from (ResultRecord.from_dict(json.loads(i["data"]["S"])) for i in reply.get("Items", []))
            if not (start := reply.get("LastEvaluatedKey")):
                return

    def claim_alert(self, camera: str, label: str, now_s: float, cooldown_s: float, message_id: str) -> str:
        key = {"pk": {"S": f"ALERT#{camera}"}, "sk": {"S": label}}
        reply = self._call(
            "update_item", Key=key, UpdateExpression="SET last_s = :now, message_id = :mid, expires_at = :exp",
            ConditionExpression="attribute_not_exists(pk) OR (last_s <= :cut AND message_id <> :mid)",
            ExpressionAttributeValues={":now": {"N": repr(now_s)}, ":mid": {"S": message_id},
                                       ":cut": {"N": repr(now_s - cooldown_s)},
                                       ":exp": {"N": str(int(now_s + cooldown_s + 86400))}})
        if reply is not None:
            return "claimed"
        held = (self._call("get_item", Key=key, ConsistentRead=True) or {}).get("Item", {})
        return "mine" if held.get("message_id", {}).get("S") == message_id else "cooldown"

    def release_alert(self, camera: str, label: str, message_id: str) -> None:
        self._call("delete_item", Key={"pk": {"S": f"ALERT#{camera}"}, "sk": {"S": label}},
                   ConditionExpression="message_id = :mid", ExpressionAttributeValues={":mid": {"S": message_id}})

    def put_dead_letter(self, letter: DeadLetter) -> bool:
        item = {"pk": {"S": f"DLQ#{letter.day}"}, "sk": {"S": letter.key},
                "data": {"S": json.dumps(letter.to_dict(), separators=(",", ":"))},
                "expires_at": {"N": str(int(letter.t_s + 30 * 86400))}}
        return self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)") is not None

    def dead_letters(self, day: str, limit: int = 100, token: str | None = None) -> Page:
        pk = f"DLQ#{day}"
        items, nxt = self._query({"pk": pk}, limit, token, KeyConditionExpression="pk = :pk",
                                 ExpressionAttributeValues={":pk": {"S": pk}})
        return Page([DeadLetter.from_dict(json.loads(i["data"]["S"])) for i in items], nxt)

    def register_gateway(self, entry: Registration) -> None:
        try:
            taken = write_dynamodb(self._client, self.table, entry)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"DynamoDB transact_write_items on table {self.table!r} failed: {exc}") from exc
        if taken:
            raise StoreError(f"camera(s) {taken} are registered to another gateway; a camera belongs to one "
                             f"gateway (not registering {entry.thing!r})")

    def gateway(self, thing: str) -> Registration | None:
        reply = self._call("get_item", Key=gateway_key(thing), ConsistentRead=True)
        item = (reply or {}).get("Item")
        return Registration.from_payload(json.loads(item["data"]["S"])) if item else None

    def claim_message(self, thing: str, message_id: str, t_s: float, expires_at: int) -> float:
        reply = self._call("update_item", Key={"pk": {"S": f"MSG#{thing}#{message_id}"}, "sk": {"S": "MSG"}},
                           UpdateExpression="SET t_s = if_not_exists(t_s, :t), expires_at = :exp",
                           ExpressionAttributeValues={":t": {"N": repr(t_s)}, ":exp": {"N": str(expires_at)}},
                           ReturnValues="ALL_NEW") or {}
        return float(reply["Attributes"]["t_s"]["N"])

    def claim_batch(self, thing: str, batch_id: str, t_s: float, expires_at: int) -> float:
        reply = self._call("update_item", Key={"pk": {"S": f"BATCH#{thing}#{batch_id}"}, "sk": {"S": "BATCH"}},
                           UpdateExpression="SET t_s = if_not_exists(t_s, :t), expires_at = :exp",
                           ExpressionAttributeValues={":t": {"N": repr(t_s)}, ":exp": {"N": str(expires_at)}},
                           ReturnValues="ALL_NEW") or {}
        return float(reply["Attributes"]["t_s"]["N"])

    def put_frame_event(self, thing: str, event: FrameEventMessage, now_s: float) -> bool:
        return self.put_frame_counts(thing, event.camera, event.wall_time, event_delta(event), event.message_id, now_s)

    def put_frame_counts(self, thing: str, camera: str, t_s: float, delta: dict[str, int], message_id: str,
                         now_s: float) -> bool:
        mark = {"Put": {"TableName": self.table, "ConditionExpression": "attribute_not_exists(pk)",
                        "Item": {"pk": {"S": f"EVT#{thing}#{message_id}"}, "sk": {"S": "EVT"},
                                 "expires_at": {"N": str(int(now_s + EVENT_DEDUP_S))}}}}
        minute = {"pk": {"S": f"EVB#{camera}"}, "sk": {"S": f"{bucket_of(t_s):010d}"}}
        add = {"Update": {"TableName": self.table, "Key": minute,
                          "UpdateExpression": "ADD " + ", ".join(f"#{k} :{k}" for k in COUNTERS),
                          "ExpressionAttributeNames": {f"#{k}": k for k in COUNTERS},
                          "ExpressionAttributeValues": {f":{k}": {"N": str(int(delta.get(k, 0)))}
                                                        for k in COUNTERS}}}
        try:  # one transaction: the id claimed and the minute counted, or neither (a repeat)
            awscalls.count("dynamodb", "transact_write_items")
            self._client.transact_write_items(TransactItems=[mark, add])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or \
                    "ConditionalCheckFailed" in str(exc):
                return False
            raise StoreError(f"DynamoDB transact_write_items on table {self.table!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB transact_write_items on table {self.table!r} failed: {exc}") from exc
        return True

    def event_buckets(self, camera: str, t1_s: float, t2_s: float) -> list[dict[str, int]]:
        pk, out, start = f"EVB#{camera}", [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            reply = self._call("query", KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                               ExpressionAttributeValues={":pk": {"S": pk}, ":lo": {"S": f"{bucket_of(t1_s):010d}"},
                                                          ":hi": {"S": f"{max(0, math.ceil(t2_s) - 1):010d}"}},
                               **extra) or {}
            out += [bucket_row(int(i["sk"]["S"]), {k: i.get(k, {}).get("N", 0) for k in COUNTERS})
                    for i in reply.get("Items", [])]
            if not (start := reply.get("LastEvaluatedKey")):
                return out

    def put_telemetry(self, telemetry: Telemetry) -> bool:
        return self._call(
            "put_item", Item={"pk": {"S": "FLEET"}, "sk": {"S": f"TEL#{telemetry.thing}"},
                              "t_s": {"N": repr(telemetry.t_s)},
                              "data": {"S": json.dumps(telemetry.to_payload(), separators=(",", ":"))}},
            ConditionExpression="attribute_not_exists(pk) OR t_s < :t",
            ExpressionAttributeValues={":t": {"N": repr(telemetry.t_s)}}) is not None

    def fleet_telemetry(self) -> list[Telemetry]:
        out, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            reply = self._call("query", KeyConditionExpression="pk = :pk AND begins_with(sk, :tel)",
                               ExpressionAttributeValues={":pk": {"S": "FLEET"}, ":tel": {"S": "TEL#"}}, **extra) or {}
            out += [Telemetry.from_payload(json.loads(i["data"]["S"])) for i in reply.get("Items", [])]
            if not (start := reply.get("LastEvaluatedKey")):
                return out

    def put_specialization(self, thing: str, event: SpecializationEvent) -> bool:
        item = {"pk": {"S": f"SPEC#{event.camera}"}, "sk": {"S": time_key(event.t_s, event.message_id)},
                "expires_at": {"N": str(int(event.t_s + SPECIALIZATION_KEEP_S))},
                "data": {"S": json.dumps(specialization_row(thing, event), separators=(",", ":"))}}
        return self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)") is not None

    def specialization_history(self, camera: str, limit: int = 50) -> list[dict[str, Any]]:
        reply = self._call("query", KeyConditionExpression="pk = :pk", ScanIndexForward=False, Limit=limit,
                           ExpressionAttributeValues={":pk": {"S": f"SPEC#{camera}"}}) or {}
        return [json.loads(i["data"]["S"]) for i in reply.get("Items", [])]

    def ping(self) -> None:
        self._call("describe_table")
