"""The training records' line items, shared by `edge-agent cost` (edge_agent/bench/cost_model.py) and the
dashboard's live Cost page (cloud/dashboard/cost.py), so both price a kept record the same way. Following the
price file's sink (training.sink, the template's TrainingSink):

- s3: one gzip object per escalation or gateway batch (a PUT each), kept in S3 Standard for its tier's months
  (S3 does not move objects under 128 KB to the cheaper classes, and they would bill each as 128 KB);
- firehose: each record a line through a Kinesis Data Firehose stream per lifecycle (ingestion per GB, records
  rounded up to 5 KB), packed into objects of up to 128 MiB or 900 s (a PUT and, for the training set, a
  transition each), in Standard for transition_months, then in Glacier Instant Retrieval for the rest of the
  tier's months (at least 90 days), read back from there `training.archived_reads` times (retrievals per GB).
  Audits expire with the rows (1 month) and stay in Standard.

Stored bytes per record are the bench's measured gzip-encoded record (the router's encoding; Firehose's gzip of
a whole object of JSON lines is at least as small); ingested bytes are the same record as plain JSON.
"""

from __future__ import annotations

from typing import Any

from costing.lineitem import GB, LineItem, ceil, item
from costing.pricing import Pricing
from costing.summary import BenchSummary

MIB = 1024 * 1024


def tier_counts(summary: BenchSummary | dict[str, float] | None) -> dict[str, float]:
    """Kept records by tier: the bench's, or given (one "kept" tier when not measured)."""
    tiers = summary.total.training_tiers if isinstance(summary, BenchSummary) else summary
    return dict(tiers) if tiers and sum(tiers.values()) else {"kept": 1.0}


def direct_objects(escalations: float, messages: float, share: float) -> float:
    """The s3 sink's objects: the router keeps a batch's informative records in one object (one PUT), so a batch
    of n escalations holds at least one kept record with probability 1 - (1 - share)^n (records kept
    independently); n = 1 is one object per kept record, as without batching."""
    per_batch = escalations / messages if messages else 1.0
    return messages * (1 - (1 - share) ** per_batch) if per_batch > 1 else escalations * share


def months_of(tier: str, pricing: Pricing) -> float:
    return pricing.s3.retention_months_by_tier.get(tier, pricing.s3.retention_months)


def training_items(summary: BenchSummary | dict[str, float] | None, pricing: Pricing, escalations: float,
                   share: float, per_kept: float,
                   json_per_kept: float, objects_direct: float, per_batch: float) -> list[LineItem]:
    """$ per month of keeping `escalations x share` records (the fleet's month), by the chosen sink.
    `summary`: the bench's summary, or the kept records by tier. `objects_direct`: the s3 sink's objects (one per
    batch holding a kept record: direct_objects)."""
    p = pricing
    kept = escalations * share
    tiers = tier_counts(summary)
    total = sum(tiers.values())
    months = sum(n * months_of(t, p) for t, n in tiers.items()) / total
    if p.training.sink == "s3" or p.firehose is None:
        return [
            item(f"S3 PUTs (training samples, {share:.0%}"
                 + (f"; one object per batch of {per_batch:.3g}" if per_batch > 1 else "") + ")",
                 objects_direct * p.per_escalation.s3_puts_per_sample / 1e3, p.s3.puts),
            item(f"S3 storage ({per_kept / 1000:,.1f} KB per record, {months:.3g} months kept on average by tier)",
                 kept * per_kept * months / GB, p.s3.storage),
        ]
    fh, s3 = p.firehose, p.s3
    billed = ceil(json_per_kept / fh.record_rounding_bytes) * fh.record_rounding_bytes
    month_s = p.hours_per_month * 3600
    items = [item(f"Firehose ingestion ({share:.0%} kept; {json_per_kept / 1000:,.1f} KB records billed as "
                  f"{billed // fh.record_rounding_bytes} x 5 KB)", kept * billed / GB, fh.ingestion)]
    puts = transitions = standard_gb_months = glacier_gb_months = archived_gb = 0.0
    for life, life_tiers in (("audit", {t: n for t, n in tiers.items() if t == "audit"}),
                             ("training", {t: n for t, n in tiers.items() if t != "audit"})):
        records = kept * sum(life_tiers.values()) / total
        if not records:
            continue
        rate = records * json_per_kept / month_s  # bytes a second into the stream
        interval = min(fh.buffer_s, fh.buffer_mb * MIB / rate) if rate else fh.buffer_s
        objects = min(records, month_s / interval)  # one per buffer, and none without records
        object_bytes = records * per_kept / objects
        puts += objects
        for tier, n in life_tiers.items():
            gb = kept * n / total * per_kept / GB
            keep = months_of(tier, p)
            moves = (life == "training" and keep > s3.transition_months
                     and object_bytes >= s3.glacier_ir_min_object_bytes)  # S3 moves no object under 128 KB
            if not moves:
                standard_gb_months += gb * keep
                continue
            standard_gb_months += gb * s3.transition_months
            glacier_gb_months += gb * max(keep - s3.transition_months, s3.glacier_ir_min_months)
            archived_gb += gb * p.training.archived_reads
            transitions += objects * n / sum(life_tiers.values())
    items += [
        item(f"S3 PUTs (Firehose objects of up to {fh.buffer_mb:g} MiB or {fh.buffer_s:g} s)", puts / 1e3, s3.puts),
        item(f"S3 storage, Standard ({per_kept / 1000:,.1f} KB per record; audits, and the rest for "
             f"{s3.transition_months:g} month(s))", standard_gb_months, s3.storage),
    ]
    if glacier_gb_months:
        items += [
            item(f"S3 Glacier Instant Retrieval storage (the rest of {months_by_life(tiers, p)} months, "
                 f"at least {s3.glacier_ir_min_months:g})", glacier_gb_months, _req(s3.glacier_ir_storage)),
            item("S3 lifecycle transitions to Glacier IR (one per object)", transitions / 1e3,
                 _req(s3.glacier_ir_transitions)),
            item(f"S3 Glacier IR retrievals (each record read back {p.training.archived_reads:g} time(s): "
                 "specialization)", archived_gb, _req(s3.glacier_ir_retrieval)),
        ]
    return items


def months_by_life(tiers: dict[str, float], pricing: Pricing) -> str:
    kept = sorted({months_of(t, pricing) for t in tiers if t != "audit"})
    return "/".join(f"{m:g}" for m in kept) or "0"


def _req(price: Any) -> Any:
    assert price is not None  # Pricing's validator requires it with the firehose sink
    return price
