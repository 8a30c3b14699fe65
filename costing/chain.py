"""The serverless chain behind each escalation, priced per month from how many gateway messages, images and
result rows it carried: the uplink message, the verdict messages, the IoT rule and its action, the result rows
and the message claim. Shared by `edge-agent cost` (edge_agent/bench/cost_model.py usage_items) and the
dashboard's live Cost page (cloud/dashboard/cost.py), so a batched gateway's message lines are divided over its
escalations the same way in both: one uplink message, rule, action, router invocation, claim and verdict
message per gateway message, however many escalations it holds.
"""

from __future__ import annotations

from costing.lineitem import GB, LineItem, ceil, item
from costing.pricing import Pricing


def message_units(nbytes: float, unit_bytes: int = 5120) -> int:
    """IoT Core meters each message in 5 KB units, rounded up: 5120 bytes is 1 unit, 5121 is 2."""
    return max(1, ceil(nbytes / unit_bytes))


def uplink_item(pricing: Pricing, messages: float, units: float) -> LineItem:
    """The gateways' escalation messages (`units` 5 KB units each), free with Basic Ingest."""
    iot = pricing.iot_core
    up = messages * units / 1e6
    if iot.basic_ingest:
        return item("IoT escalations (Basic Ingest: no messaging charge)", up, iot.messaging, unit_price=0.0)
    return item(f"IoT escalation messages ({units:g} x 5 KB units)", up, iot.messaging)


def verdicts_of(pricing: Pricing, images: float, per_verdict: float) -> tuple[float, int]:
    """(verdict messages, 5 KB units each) for `images` answered images, `per_verdict` images in each."""
    pe = pricing.per_escalation
    units = message_units(pricing.per_escalation.verdict_bytes * per_verdict / max(1.0, pe.images_per_call),
                          pricing.iot_core.message_unit_bytes)
    return images / per_verdict, units


def chain_items(pricing: Pricing, messages: float, images: float, per_verdict: float, rows: float,
                rows_each: float) -> list[LineItem]:
    """$ per month of the chain after the uplink: verdict messages, rule, action, result rows, claims, row storage.
    `messages`: gateway messages (one router invocation each); `images`: images the teacher answered, `per_verdict`
    of them per verdict message; `rows`: result rows written, `rows_each` per escalation."""
    p, pe, iot = pricing, pricing.per_escalation, pricing.iot_core
    verdicts, units = verdicts_of(pricing, images, per_verdict)
    return [
        item(f"IoT verdict messages ({per_verdict:.4g} image(s) each)", verdicts * pe.verdict_messages * units / 1e6,
             iot.messaging),
        item("IoT rules triggered", messages * pe.rules_triggered / 1e6, iot.rules_triggered),
        item("IoT rule actions", messages * pe.rule_actions / 1e6, iot.rule_actions),
        item(f"DynamoDB writes ({rows_each:g} row(s) per escalation)", rows * ceil(p.dynamodb.item_bytes / 1024) / 1e6,
             p.dynamodb.writes),
        item(f"DynamoDB message claims ({pe.dynamodb_claims:g} per gateway message: a batch's first receive time, "
             "so a repeat finds its rows)", messages * pe.dynamodb_claims / 1e6, p.dynamodb.writes),
        item(f"DynamoDB storage ({p.dynamodb.retention_months:g} months kept)",
             rows * p.dynamodb.item_bytes * p.dynamodb.retention_months / GB, p.dynamodb.storage),
    ]


def transfer_out_item(pricing: Pricing, images: float) -> LineItem:
    """Data transfer out: the verdicts' bytes, per answered image."""
    pe = pricing.per_escalation
    return item("Data transfer out (verdicts)", images * pe.verdict_bytes / max(1.0, pe.images_per_call) / GB,
                pricing.data_transfer.outbound)
