"""The Firehose sink for training records: the router sends each kept record (one JSON line) to a Kinesis Data
Firehose delivery stream, one stream per lifecycle (contracts.training.LIFECYCLES), and Firehose packs them into
large compressed S3 objects (its buffer: up to 128 MiB or 900 s) under the stream's own prefix, where the
bucket's lifecycle rule for that prefix moves them to Glacier Instant Retrieval and expires them. Objects that
large can use the cheaper classes (S3 bills an object under 128 KB there as 128 KB), and one S3 PUT carries
thousands of records instead of one gateway batch's.

PutRecordBatch takes at most 500 records and 4 MB a call and each record up to 1,000 KiB; a call can succeed
for some records and fail for others (FailedPutCount, an ErrorCode per record): only the failed ones are sent
again, a bounded number of times with jittered backoff. What is left (and a record over 1,000 KiB, which Firehose
refuses) is the caller's to keep another way: the router writes it as a direct S3 object, so nothing is lost.
Firehose delivers at least once: a record may be in two objects, and every reader dedups by message id.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1000 * 1000  # "4 MB for the entire request": counted as 10^6, the stricter reading
MAX_RECORD_BYTES = 1000 * 1024  # one record, before base64 encoding
DEFAULT_ATTEMPTS = 4  # calls per record at most: the first and three retries of what failed
DEFAULT_BUDGET_S = 10.0  # no retry starts after this long: what is left goes to the caller's fallback
# Errors a retry cannot fix: the stream is not there, not ours, or the request is refused as such
_FINAL = {"ResourceNotFoundException", "InvalidArgumentException", "AccessDeniedException",
          "InvalidKMSResourceException", "ValidationException"}


@dataclass
class PutResult:
    """What became of each record of a put_records call, by its index in the input."""

    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # index -> the last error (ErrorCode: message)
    oversized: list[int] = field(default_factory=list)
    calls: int = 0
    retried: int = 0  # records sent again after a failure


def chunks(sizes: Sequence[int], max_records: int = MAX_RECORDS_PER_CALL,
           max_bytes: int = MAX_BYTES_PER_CALL) -> list[list[int]]:
    """The indexes of records of these sizes, in order, grouped into calls within PutRecordBatch's limits (every
    size must be <= MAX_RECORD_BYTES, so one record always fits a call)."""
    out: list[list[int]] = []
    group: list[int] = []
    nbytes = 0
    for i, size in enumerate(sizes):
        if group and (len(group) == max_records or nbytes + size > max_bytes):
            out.append(group)
            group, nbytes = [], 0
        group.append(i)
        nbytes += size
    if group:
        out.append(group)
    return out


def put_records(client: Any, stream: str, records: Sequence[bytes], attempts: int = DEFAULT_ATTEMPTS,
                backoff_s: float = 0.1, sleep: Callable[[float], None] = time.sleep,
                budget_s: float = DEFAULT_BUDGET_S) -> PutResult:
    """Send `records` to `stream` with PutRecordBatch, retrying only the records that failed (per-record
    ErrorCode, or the whole call on a throttling/5xx/connection error), at most `attempts` calls per record
    and no retry begun after `budget_s`."""
    result = PutResult(oversized=[i for i, r in enumerate(records) if len(r) > MAX_RECORD_BYTES])
    pending = [i for i, r in enumerate(records) if len(r) <= MAX_RECORD_BYTES]
    start = time.monotonic()
    for attempt in range(attempts):
        if not pending or (attempt and time.monotonic() - start > budget_s):
            break
        if attempt:
            result.retried += len(pending)
            sleep(backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
        still: list[int] = []
        for group in chunks([len(records[i]) for i in pending]):
            ids = [pending[k] for k in group]
            result.calls += 1
            try:
                reply = client.put_record_batch(DeliveryStreamName=stream,
                                                Records=[{"Data": records[i]} for i in ids])
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "")
                for i in ids:
                    result.failed[i] = f"{code}: {error.get('Message', exc)}"
                if code in _FINAL:  # the rest of this attempt would meet the same refusal
                    rest = pending[pending.index(ids[-1]) + 1:]
                    for i in rest:
                        result.failed[i] = f"not sent: {code}"
                    return _final(result, [*still, *ids, *rest])
                still.extend(ids)
                continue
            except BotoCoreError as exc:
                for i in ids:
                    result.failed[i] = f"{type(exc).__name__}: {exc}"
                still.extend(ids)
                continue
            answers = reply.get("RequestResponses", [])
            for k, i in enumerate(ids):
                answer = answers[k] if k < len(answers) else {"ErrorCode": "Missing",
                                                              "ErrorMessage": "no response for this record"}
                if answer.get("ErrorCode"):
                    result.failed[i] = f"{answer['ErrorCode']}: {answer.get('ErrorMessage', '')}"
                    still.append(i)
                else:
                    result.failed.pop(i, None)
                    result.delivered.append(i)
        pending = still
    return _final(result, pending)


def _final(result: PutResult, failed: list[int]) -> PutResult:
    keep = set(failed)
    result.failed = {i: e for i, e in result.failed.items() if i in keep}
    result.delivered.sort()
    return result
