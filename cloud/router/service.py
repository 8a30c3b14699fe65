"""`Router`: the clients, the store and the rules, held across invocations (a Lambda container handles
many events), and `process`, which runs the steps of `routing` for one event and counts its AWS calls."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from functools import cached_property
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloud import awscalls
from cloud.alerts import evaluate
from cloud.exceptions import EndpointError
from cloud.router.authority import Authority
from cloud.router.batching import BatchWrites, batch_payload, process_batch
from cloud.router.config import RouterConfig
from cloud.router.endpoint import Answer, call
from cloud.router.firehose import put_records
from cloud.router.routing import (
    Outcome,
    Parsed,
    Rejected,
    alert_message,
    captured,
    direct_key,
    packed_key,
    parse_event,
    training_entry,
    training_key,
    training_record,
)
from cloud.router.shadow import shadow_call, shadow_target
from cloud.stores import DeadLetter, ResultRecord, ResultsStore, StoredDetection, open_store
from cloud.stores.base import day_of
from contracts.batch import BATCH_VERSION, VerdictBatch
from contracts.registry import Registration
from contracts.training import TrainingRecord, encode_object, informative, lifecycle, to_line
from contracts.wire import InvocationResponse, Verdict, WireError, invocation_for, verdict_from_response

log = logging.getLogger("framesieve.router")


class Router(Authority):
    def __init__(self, config: RouterConfig, store: ResultsStore | None = None):
        self.config = config
        self.store = store or open_store(config.store_url)
        self._gateways: dict[str, tuple[float, Registration]] = {}

    @classmethod
    def from_env(cls) -> Router:
        return cls(RouterConfig.from_env())

    @cached_property
    def runtime(self) -> Any:
        # botocore retries off: routing.endpoint retries, and each attempt is one counted invocation
        return awscalls.client("sagemaker-runtime", max_attempts=1, read_timeout=self.config.endpoint_timeout_s)

    @cached_property
    def s3(self) -> Any:
        return awscalls.client("s3")

    @cached_property
    def firehose(self) -> Any:
        # botocore retries off and short timeouts: cloud/router/firehose.py retries only the failed records,
        # within its own time budget, so a slow Firehose cannot hold the invocation past its timeout
        return awscalls.client("firehose", max_attempts=1, connect_timeout=2, read_timeout=5)

    @cached_property
    def sns(self) -> Any:
        return awscalls.client("sns")

    @cached_property
    def iot(self) -> Any:
        return awscalls.client("iot-data", endpoint_url=self.config.iot_data_endpoint or None)

    def process(self, event: Any, now_s: float | None = None) -> Outcome:
        """Route one event. Never raises for a bad message or a failing endpoint (both become dead letters);
        raises StoreError / botocore errors when the store or SNS fail, so the invocation is retried."""
        t0 = time.perf_counter()
        with awscalls.counting() as counter:
            outcome = self._process(event, time.time() if now_s is None else now_s, counter)
        outcome.calls = counter.kinds()
        level = logging.WARNING if outcome.status == "dead_letter" else logging.INFO
        log.log(level, json.dumps({"event": "escalation", **outcome.to_dict(),
                                   "ms": round((time.perf_counter() - t0) * 1000, 1)}))
        return outcome

    def _dead_letter(self, rejected: Rejected) -> Outcome:
        """Record why, and tell the gateway at once (an error verdict) so it decides instead of waiting."""
        letter = rejected.letter
        self.store.put_dead_letter(letter)
        published = ""
        if rejected.reply and letter.thing:
            mid, camera, index = rejected.reply
            failed = Verdict.failed(mid, camera, index, f"{letter.kind}: {letter.reason}")
            published = self._publish(letter.thing, failed)
        return Outcome("dead_letter", letter.key.rsplit(":", 1)[0], reason=f"{letter.kind}: {letter.reason}",
                       published_to=published)

    def _process(self, event: Any, now_s: float, counter: awscalls.CallCounter) -> Outcome:
        batch = batch_payload(event)
        if batch is not None:  # wire version 2: a gateway's escalations together (cloud/router/batching.py)
            return process_batch(self, event, batch, now_s)
        try:
            parsed = self._authorize(parse_event(event, now_s, self.config.event_window_s), now_s)
        except Rejected as exc:
            return self._dead_letter(exc)
        r = parsed.request
        if self.store.get_result(r.camera, parsed.t_s, r.message_id) is not None:
            return Outcome("duplicate", r.message_id, reason="already stored; nothing done again")
        try:
            answer = call(self.runtime, self.config.endpoint_name, invocation_for(r),
                          attempts=self.config.endpoint_attempts, backoff_s=self.config.endpoint_backoff_s)
            verdict = verdict_from_response(r, answer.response)
        except (EndpointError, WireError) as exc:
            kind = exc.kind if isinstance(exc, EndpointError) else "refused"
            letter = DeadLetter(key=f"{r.message_id}:endpoint", t_s=now_s, kind="endpoint",
                                reason=f"{kind}: {exc}", topic=parsed.topic, thing=parsed.thing, size=parsed.size,
                                excerpt=f"camera={r.camera} frame_index={r.frame_index} crops={len(r.crops)}")
            return self._dead_letter(Rejected(letter, (r.message_id, r.camera, r.frame_index)))
        return self.commit(parsed, answer.response, verdict, publish=True, answer=answer)

    def commit(self, parsed: Parsed, response: InvocationResponse, verdict: Verdict, publish: bool = False,
               answer: Answer | None = None, batch: BatchWrites | None = None) -> Outcome:
        """Training capture, alerts, the verdict (when `publish`; a batch publishes all its verdicts at once)
        and the row: steps 6-9 for one answered escalation. `answer` names the production variant that
        answered and the call's time (kept in the row); a shadow call, when this escalation is sampled for
        one, is made after the verdict is published and only adds to the row. With `batch`, the training
        record and the row are left to it (`flush_batch`: one S3 object and one DynamoDB batch write for
        the whole batch)."""
        r = parsed.request
        day = day_of(parsed.t_s)
        key = self._capture(parsed, response, day, verdict, batch)
        alerts = self._alert(parsed, verdict)
        topic = self._publish(parsed.thing, verdict, r.site) if publish else ""
        variant = answer.variant if answer else ""
        target = shadow_target(self.config, r.message_id, variant)
        shadow = shadow_call(self.runtime, self.config, r, target) if target else None
        detections = tuple(StoredDetection(d.label, d.score, d.box, cv.crop_id)
                           for cv in verdict.crops for d in cv.detections)
        if self.config.store_writes == "change" and not alerts:
            previous = self.store.latest_result(r.camera, parsed.t_s)
            if previous is not None and {d.label for d in previous.detections} == {d.label for d in detections}:
                return Outcome("unchanged", r.message_id, detections=len(detections), training_key=key,
                               published_to=topic, reason="same labels as the camera's last row: no write",
                               clock=parsed.clock)
        calls = awscalls.current_kinds()
        calls["store_writes"] += 1  # the row's own write, below
        expires = int(parsed.t_s + self.config.retention_days * 86400) if self.config.retention_days else 0
        record = ResultRecord(
            message_id=r.message_id, camera=r.camera, t_s=parsed.t_s, site=r.site, thing=parsed.thing,
            frame_index=r.frame_index, pts_s=r.pts_s, reason=r.reason, model=verdict.model, crops=len(r.crops),
            detections=detections, alerts=tuple(alerts), training_key=key, calls=calls, expires_at=expires,
            variant=variant, endpoint_ms=answer.ms if answer else 0.0, call_images=answer.images if answer else 0,
            edge_labels=tuple(sorted({d.label for d in r.student})), shadow=shadow)
        if batch is not None:  # written with the batch's other rows, after its training object
            batch.rows.append(record)
            stored = True
        else:
            stored = self.store.put_result(record)
        return Outcome("stored" if stored else "duplicate", r.message_id, detections=len(detections),
                       alerts=alerts, training_key=key, published_to=topic, clock=parsed.clock,
                       reason="" if stored else "stored concurrently by another delivery")

    # what a batch (cloud/router/batching.py) needs of the single-escalation steps (authorize and the claims:
    # cloud/router/authority.py)
    def dead_letter_quietly(self, rejected: Rejected) -> list[Verdict]:
        """Record why; the error verdict is returned for the batch's one verdict message, not published."""
        letter = rejected.letter
        self.store.put_dead_letter(letter)
        if rejected.reply and letter.thing:
            mid, camera, index = rejected.reply
            return [Verdict.failed(mid, camera, index, f"{letter.kind}: {letter.reason}")]
        return []

    def publish_batch(self, thing: str, batch_id: str, verdicts: list[Verdict]) -> str:
        """Every answer of a batch in one message to the gateway's verdict topic (best effort, as _publish)."""
        template = self.config.verdict_topic
        if not verdicts or not template or not thing or any(ch in thing for ch in "/#+\0"):
            return ""
        topic = template.format(thing=thing, camera=verdicts[0].camera, site="")
        try:
            self.iot.publish(topic=topic, qos=1, payload=VerdictBatch(batch_id, tuple(verdicts)).to_bytes())
        except (ClientError, BotoCoreError, WireError) as exc:
            log.warning(json.dumps({"event": "verdict_publish_failed", "batch_id": batch_id, "topic": topic,
                                    "error": str(exc)}))
            return ""
        return topic

    def _capture(self, parsed: Parsed, response: InvocationResponse, day: str, verdict: Verdict,
                 batch: BatchWrites | None = None) -> str:
        """The training object's key, or "" when not captured: only informative escalations are kept
        (contracts.training.informative; FRAMESIEVE_TRAINING_KEEP=all keeps every one), tagged with their
        tier for the bucket's lifecycle rules. Best effort: a failure is logged, not raised. In a batch the
        record joins the batch's one object (written by `flush_batch`); the key names it in there."""
        cfg, r = self.config, parsed.request
        mid = r.message_id
        tier = informative(r.reason, r.student, verdict.detections()) or ("kept" if cfg.training_keep == "all" else "")
        if not cfg.training_bucket or not tier or not captured(mid, cfg.training_sample_rate):
            return ""
        if batch is not None:
            return batch.capture(training_entry(parsed, response), tier)
        if cfg.training_sink == "firehose":
            return self._pack([(training_entry(parsed, response), tier)]).get(mid, "")
        key = training_key(cfg.training_prefix, parsed, day)
        return key if self._put_training(key, training_record(parsed, response), tier, mid) else ""

    def _pack(self, entries: list[tuple[TrainingRecord, str]]) -> dict[str, str]:
        """The Firehose sink (cloud/router/firehose.py): each record to its lifecycle's delivery stream, failed
        ones retried; a record Firehose refuses (over 1,000 KiB) or that still fails is written as a direct
        S3 object instead, so nothing is lost. Returns each kept record's key by message id."""
        cfg, keys = self.config, {}
        sent_s = time.time()
        by_lifecycle: dict[str, list[tuple[TrainingRecord, str]]] = {}
        for record, tier in entries:
            by_lifecycle.setdefault(lifecycle(tier), []).append((record, tier))
        for life, group in by_lifecycle.items():
            stream = cfg.training_stream.format(lifecycle=life)
            result = put_records(self.firehose, stream, [to_line(r) for r, _ in group])
            for i in result.delivered:
                keys[group[i][0].message_id] = packed_key(cfg.training_packed_prefix, life, sent_s,
                                                          group[i][0].message_id)
            if result.retried:
                log.info(json.dumps({"event": "training_firehose_retried", "stream": stream,
                                     "records": result.retried, "calls": result.calls}))
            for i, why in [*((i, "oversized: over Firehose's 1,000 KiB record limit") for i in result.oversized),
                           *result.failed.items()]:
                record, tier = group[i]
                log.warning(json.dumps({"event": "training_firehose_fallback", "message_id": record.message_id,
                                        "stream": stream, "why": why[:300], "sink": "s3 object"}))
                key = direct_key(cfg.training_prefix, record.site, record.camera, record.message_id,
                                 day_of(record.t_s))
                if self._put_training(key, record.to_bytes(), tier, record.message_id):
                    keys[record.message_id] = key
        return keys

    def _put_training(self, key: str, body: bytes, tier: str, what: str) -> bool:
        """One training object, written once (If-None-Match: a retry's PUT is refused, the first one stands)."""
        try:
            # gzip-encoded (contracts.training.encode_object): a quarter less S3 storage for the crops' base64
            self.s3.put_object(Bucket=self.config.training_bucket, Key=key, Body=encode_object(body),
                               ContentType="application/json", ContentEncoding="gzip", IfNoneMatch="*",
                               Tagging=f"tier={tier}")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict"):  # else: a retry; it is there
                log.warning(json.dumps({"event": "training_capture_failed", "message_id": what, "key": key,
                                        "error": f"{code}: {exc}"}))
                return False
        except BotoCoreError as exc:
            log.warning(json.dumps({"event": "training_capture_failed", "message_id": what, "error": str(exc)}))
            return False
        return True

    def flush_batch(self, batch: BatchWrites) -> int:
        """A batch's writes, in commit order: its one training object (one PUT for all its records; with the
        Firehose sink, its records to their delivery streams), then its rows (one DynamoDB batch write per 25).
        Rows whose record could not be kept lose their key."""
        rows = batch.rows
        if batch.records and self.config.training_sink == "firehose":
            keys = self._pack(list(zip(batch.records, batch.tiers, strict=True)))
            rows = [replace(row, training_key=keys.get(row.message_id, ""))
                    if row.training_key.startswith(f"{batch.key}#") else row for row in rows]
        elif batch.records and not self._put_training(batch.key, batch.body(), batch.tier(), batch.batch_id):
            rows = [replace(row, training_key="") if row.training_key.startswith(f"{batch.key}#") else row
                    for row in rows]
        return self.store.put_results(rows) if rows else 0

    def _alert(self, parsed: Parsed, verdict: Verdict) -> list[str]:
        """Alerts sent for this escalation ("label:rule"), cooldown per camera and label."""
        cfg, r = self.config, parsed.request
        if not cfg.alert_topic_arn or not cfg.rules:
            return []
        matches = evaluate(cfg.rules, r.camera, r.site, parsed.t_s,
                           [(d.label, d.score, d.box) for d in verdict.detections()])
        claimed, sent = [], []
        for m in matches:
            state = self.store.claim_alert(r.camera, m.label, parsed.t_s, m.rule.cooldown_s, r.message_id)
            if state == "claimed":
                claimed.append(m)
            elif state == "mine":  # a repeated delivery that already alerted
                sent.append(f"{m.label}:{m.rule.name}")
        if not claimed:
            return sent
        labels = sorted({m.label for m in claimed})
        try:
            self.sns.publish(
                TopicArn=cfg.alert_topic_arn, Message=json.dumps(alert_message(parsed, claimed)),
                Subject=f"FrameSieve: {', '.join(labels)} at {r.camera}"[:100],
                MessageAttributes={"camera": {"DataType": "String", "StringValue": r.camera},
                                   "site": {"DataType": "String", "StringValue": r.site or "-"},
                                   "labels": {"DataType": "String.Array", "StringValue": json.dumps(labels)}})
        except (ClientError, BotoCoreError):
            for m in claimed:  # give the slots back so the retried invocation can alert
                self.store.release_alert(r.camera, m.label, r.message_id)
            raise
        return sent + [f"{m.label}:{m.rule.name}" for m in claimed]

    def _publish(self, thing: str, verdict: Verdict, site: str = "") -> str:
        """The topic the verdict went to, or "". Best effort: without it the gateway decides on its own."""
        template = self.config.verdict_topic
        values = {"thing": thing, "camera": verdict.camera, "site": site}
        # a name with a topic separator or wildcard could aim the verdict at another gateway's topic
        if not template or not thing or any(ch in v for v in values.values() for ch in "/#+\0"):
            return ""
        topic = template.format(**values)
        try:
            # every verdict says this router reads per-gateway batches: a gateway batches only once told so
            self.iot.publish(topic=topic, qos=1, payload=replace(verdict, accepts_v=BATCH_VERSION).to_bytes())
        except (ClientError, BotoCoreError, WireError) as exc:
            log.warning(json.dumps({"event": "verdict_publish_failed", "message_id": verdict.message_id,
                                    "topic": topic, "error": str(exc)}))
            return ""
        return topic
