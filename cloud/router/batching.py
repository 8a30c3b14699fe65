"""A gateway's batch (wire version 2, contracts/batch.py) through the router in one invocation: every item
validated, authorized and deduplicated as a single escalation would be (each item goes through the same
`parse_event`, with the rule's own fields), then one endpoint call for all the items' crops, and one
verdict message back to the gateway with every answer and every error verdict, matched by message id.
A malformed item is dead-lettered and answered with an error verdict; the others are answered.

What the batch stores is written once for all its items (`BatchWrites`, `Router.flush_batch`): one S3
training object holding the records of its informative items (contracts.training.TrainingBatch), then the
rows, one DynamoDB BatchWriteItem per 25. A batch claims its time once, not per item: its first receive time
per (thing, batch id) (`claim_batch`), each item's time derived from it (routing.pin_to), so a redelivered
batch, and an escalation of a refused batch re-sent alone naming its batch id (the gateway spools a refused
batch escalation by escalation), key every item's row as the first delivery did. A batch write cannot be
conditional; a redelivered batch still stores nothing twice because every item's row key is read first
(step 4, as for a single escalation) and only the items without a row go on, and the training object is
keyed by the batch's id and written with If-None-Match, so a retry's PUT is refused and the first object,
which holds every record the retry could add, stands. Two deliveries racing past the read write the same
row under the same key: one row."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloud import constants as c
from cloud.exceptions import EndpointError
from cloud.router.config import RouterConfig
from cloud.router.endpoint import Answer, call
from cloud.router.routing import Outcome, Parsed, Rejected, batch_training_key, parse_event, pin_to, record_key
from cloud.stores import DeadLetter, ResultRecord, ResultsStore
from cloud.stores.base import day_of
from contracts.batch import EscalationBatch, is_batch, reply_of
from contracts.codec import MAX_MESSAGE_BYTES, loads
from contracts.training import TrainingBatch, TrainingRecord, batch_tier
from contracts.wire import InvocationRequest, InvocationResponse, Verdict, WireError, verdict_from_response


class Router(Protocol):
    """What a batch needs of the router (service.Router): its store and settings, the endpoint client, and the
    steps a single escalation goes through, so a batch's items are checked, stored and answered the same way."""

    config: RouterConfig
    store: ResultsStore

    @property
    def runtime(self) -> Any: ...

    def authorize(self, parsed: Parsed, now_s: float, claim: bool = True) -> Parsed: ...

    def batch_anchor(self, parsed: Parsed, batch_id: str) -> float: ...

    def claim_message(self, parsed: Parsed) -> Parsed: ...

    def dead_letter_quietly(self, rejected: Rejected) -> list[Verdict]: ...

    def commit(self, parsed: Parsed, response: InvocationResponse, verdict: Verdict, publish: bool = False,
               answer: Answer | None = None, batch: BatchWrites | None = None) -> Outcome: ...

    def flush_batch(self, batch: BatchWrites) -> int: ...

    def publish_batch(self, thing: str, batch_id: str, verdicts: list[Verdict]) -> str: ...


@dataclass
class BatchWrites:
    """What one batch writes once for all its items: the training records of its informative items, kept
    as one object at `key`, and its rows."""

    key: str
    batch_id: str
    thing: str
    records: list[TrainingRecord] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    rows: list[ResultRecord] = field(default_factory=list)

    def capture(self, record: TrainingRecord, tier: str) -> str:
        """Add a record; its key (the object's, `#`, its message id) goes in its row."""
        self.records.append(record)
        self.tiers.append(tier)
        return record_key(self.key, record.message_id)

    def body(self) -> bytes:
        return TrainingBatch(self.batch_id, self.thing, tuple(self.records)).to_bytes()

    def tier(self) -> str:
        return batch_tier(self.tiers)


def batch_payload(event: Any) -> dict | None:
    """The event's message when it is a batch (read strictly; a broken one is left to parse_event)."""
    if not isinstance(event, dict):
        return None
    if c.EVENT_PAYLOAD not in event:
        return event if is_batch(event) else None
    try:
        payload = loads(base64.b64decode(event[c.EVENT_PAYLOAD], validate=True), "the message")
    except (ValueError, TypeError, WireError):
        return None
    return payload if is_batch(payload) else None


def process_batch(router: Router, event: dict, payload: dict, now_s: float) -> Outcome:
    rule = {k: event[k] for k in c.RULE_FIELDS if k in event}
    thing = rule.get(c.EVENT_THING, "")
    raw = json.dumps(payload, separators=(",", ":")).encode()
    answers: list[Verdict] = []
    try:
        if len(raw) > MAX_MESSAGE_BYTES:
            raise WireError(f"the batch is {len(raw)} bytes, over the {MAX_MESSAGE_BYTES}-byte IoT limit; the "
                            "gateway must send fewer or smaller escalations per batch")
        batch = EscalationBatch.from_payload(payload)
    except WireError as exc:  # the batch as a whole: every item whose id is readable gets an error verdict
        key = hashlib.sha256(raw).hexdigest()[:32]
        letter = DeadLetter(key=f"{key}:malformed", t_s=now_s, kind="malformed", reason=str(exc)[:300],
                            topic=str(rule.get(c.EVENT_TOPIC, ""))[:200], thing=thing if isinstance(thing, str) else "",
                            size=len(raw), excerpt=raw[:300].decode("utf-8", "replace"))
        router.store.put_dead_letter(letter)
        items = payload.get("escalations")
        replies = [r for r in map(reply_of, items if isinstance(items, list) else []) if r]
        answers = [Verdict.failed(mid, cam, idx, f"malformed batch: {exc}") for mid, cam, idx in replies]
        batch_id = payload.get("batch_id")
        published = router.publish_batch(thing if isinstance(thing, str) else "",
                                         batch_id if isinstance(batch_id, str) else key, answers)
        return Outcome("dead_letter", key, reason=f"malformed batch: {exc}"[:300], published_to=published)
    ready: list[Parsed] = []
    first_t = math.inf  # the earliest event time of its items: the day its training object is filed under
    statuses: dict[str, int] = {}
    for err in batch.errors:
        mid = err.reply[0] if err.reply else hashlib.sha256(err.reason.encode()).hexdigest()[:32]
        letter = DeadLetter(key=f"{mid}:malformed", t_s=now_s, kind="malformed", reason=err.reason[:300],
                            topic=str(rule.get(c.EVENT_TOPIC, ""))[:200], thing=thing, size=len(raw),
                            excerpt=err.reason[:300])
        router.store.put_dead_letter(letter)
        statuses["dead_letter"] = statuses.get("dead_letter", 0) + 1
        if err.reply:
            answers.append(Verdict.failed(*err.reply, f"malformed: {err.reason}"))
    authorized: list[Parsed] = []
    for request in batch.escalations:
        item = {**rule, c.EVENT_PAYLOAD: base64.b64encode(request.encoded).decode()}
        try:
            authorized.append(router.authorize(parse_event(item, now_s, router.config.event_window_s), now_s,
                                               claim=False))
        except Rejected as exc:
            answers.extend(router.dead_letter_quietly(exc))
            statuses["dead_letter"] = statuses.get("dead_letter", 0) + 1
    # A gateway that names its batch when it re-sends a refused one's escalations: one claim for the whole batch
    # (its first receive time), each item's time derived from it (routing.pin_to). An older gateway's batch: a
    # claim per item, as its re-sent escalations name nothing.
    anchor = router.batch_anchor(authorized[0], batch.batch_id) if authorized and batch.resends_named else None
    for parsed in authorized:
        parsed = pin_to(parsed, anchor, router.config.event_window_s) if anchor is not None \
            else router.claim_message(parsed)
        r = parsed.request
        first_t = min(first_t, parsed.t_s)  # every delivery's items keep their first times: the same day
        if router.store.get_result(r.camera, parsed.t_s, r.message_id) is not None:
            statuses["duplicate"] = statuses.get("duplicate", 0) + 1  # stored before: nothing is done again
            continue
        ready.append(parsed)
    if ready:
        r0 = ready[0]
        writes = BatchWrites(batch_training_key(router.config.training_prefix, r0.request.site, r0.thing,
                                                batch.batch_id, day_of(first_t)), batch.batch_id, r0.thing)
        answers.extend(_answer(router, ready, now_s, statuses, writes))
        router.flush_batch(writes)
    published = router.publish_batch(thing, batch.batch_id, answers)
    return Outcome("batch", batch.batch_id, reason=json.dumps(dict(sorted(statuses.items()))),
                   detections=sum(len(v.detections()) for v in answers), published_to=published)


def _answer(router: Router, ready: list[Parsed], now_s: float, statuses: dict[str, int],
            writes: BatchWrites) -> list[Verdict]:
    """One endpoint call for every crop of every item (ids "item:crop"), split back per item."""
    images = tuple((f"{k}:{crop.crop_id}", crop.jpeg) for k, p in enumerate(ready) for crop in p.request.crops)
    try:
        answer = call(router.runtime, router.config.endpoint_name, InvocationRequest(images),
                      attempts=router.config.endpoint_attempts, backoff_s=router.config.endpoint_backoff_s)
        response = answer.response
    except (EndpointError, WireError) as exc:
        out = []
        for p in ready:
            r = p.request
            letter = DeadLetter(key=f"{r.message_id}:endpoint", t_s=now_s, kind="endpoint", reason=str(exc)[:300],
                                topic=p.topic, thing=p.thing, size=p.size,
                                excerpt=f"camera={r.camera} frame_index={r.frame_index} crops={len(r.crops)}")
            out.extend(router.dead_letter_quietly(Rejected(letter, (r.message_id, r.camera, r.frame_index))))
            statuses["dead_letter"] = statuses.get("dead_letter", 0) + 1
        return out
    verdicts = []
    for k, parsed in enumerate(ready):
        prefix = f"{k}:"
        own = InvocationResponse(response.model, tuple((i[len(prefix):], d) for i, d in response.predictions
                                                       if i.startswith(prefix)))
        try:
            verdict = verdict_from_response(parsed.request, own)
        except WireError as exc:
            r = parsed.request
            letter = DeadLetter(key=f"{r.message_id}:endpoint", t_s=now_s, kind="endpoint", reason=str(exc)[:300],
                                topic=parsed.topic, thing=parsed.thing, size=parsed.size, excerpt="")
            verdicts.extend(router.dead_letter_quietly(Rejected(letter, (r.message_id, r.camera, r.frame_index))))
            continue
        # every item was answered by the same variant in the same call; its time is the call's, per item
        outcome = router.commit(parsed, own, verdict, answer=Answer(own, answer.attempts, answer.variant, answer.ms,
                                                                    answer.images), batch=writes)
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        verdicts.append(verdict)
    return verdicts
