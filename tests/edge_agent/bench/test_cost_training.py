"""The training records' lines with the Firehose sink (config/pricing.yaml's default, the template's TrainingSink),
by hand: ingestion per GB with records rounded up to 5 KB, one PUT per packed object (a full 128 MiB buffer, or
900 s when the fleet is too small to fill it), audits a month in Standard, the training set a month in Standard
and the rest of its months (at least three) in Glacier Instant Retrieval with a transition per object and each
record read back once; a fleet whose objects stay under 128 KB never moves them."""

import pytest

from costing.lineitem import GB
from edge_agent.bench.cost_model import Inputs, hybrid_cost, parse_summary
from edge_agent.bench.pricing import load_pricing
from tests.edge_agent.bench.test_cost import _summary

MONTH_S = 730 * 3600


def lines(cameras: int) -> tuple[dict, float, object]:
    p = load_pricing()
    s = parse_summary(_summary(message_bytes_mean=20_000.0, escalation_fraction=0.1, training_share=0.5,
                               records_answered=10, training_kept=5, training_tiers={"audit": 1, "disagreement": 4},
                               training_bytes_per_record=20_000.0, training_json_bytes_per_record=26_000.0))
    h = hybrid_cost(s, p, cameras, escalation_fraction=0.1, inputs=Inputs(backend="lambda-teacher"))
    return {i.name.split(" (")[0]: i for i in h.cloud_items}, h.escalations, p


def test_firehose_sink_lines_by_hand():
    items, escalations, p = lines(1000)
    assert p.training.sink == "firehose"
    kept = escalations * 0.5
    assert escalations == pytest.approx(1000 * 0.1 * MONTH_S)
    assert items["Firehose ingestion"].quantity == pytest.approx(kept * 30_720 / GB)  # 26,000 B billed as 6 x 5 KB
    assert items["Firehose ingestion"].unit_price_usd == 0.029
    # the training set's stream: 4/5 of the records, 26 KB each, 1,445 KB/s: a 128 MiB buffer every ~93 s
    training_rate = kept * 0.8 * 26_000 / MONTH_S
    audit_rate = kept * 0.2 * 26_000 / MONTH_S
    objects = MONTH_S / (128 * 2**20 / training_rate) + MONTH_S / min(900, 128 * 2**20 / audit_rate)
    assert items["S3 PUTs"].quantity == pytest.approx(objects / 1e3)
    gb = kept * 20_000 / GB  # stored gzip bytes
    assert items["S3 storage, Standard"].quantity == pytest.approx(gb * (0.2 * 1 + 0.8 * 1))
    assert items["S3 Glacier Instant Retrieval storage"].quantity == pytest.approx(gb * 0.8 * 11)
    assert items["S3 Glacier Instant Retrieval storage"].unit_price_usd == 0.004
    assert items["S3 Glacier IR retrievals"].quantity == pytest.approx(gb * 0.8 * 1)  # read back once
    assert items["S3 lifecycle transitions to Glacier IR"].quantity == pytest.approx(
        MONTH_S / (128 * 2**20 / training_rate) / 1e3)
    assert "S3 storage" not in items  # the direct sink's line is not there


def test_a_fleet_too_small_to_fill_128_kb_in_900_s_stays_in_standard():
    items, escalations, p = lines(1)  # one camera: 0.04 training records a second, ~36 in 900 s
    per_object = escalations * 0.5 * 0.8 * 20_000 / (MONTH_S / 900)
    assert per_object > 128 * 1024  # one camera's training objects still reach 128 KB here: they move
    assert "S3 Glacier Instant Retrieval storage" in items
    small = load_pricing().model_copy(update={"s3": load_pricing().s3.model_copy(
        update={"glacier_ir_min_object_bytes": 10**9})})  # no object of this fleet reaches it
    s = parse_summary(_summary(message_bytes_mean=20_000.0, training_share=0.5, records_answered=10,
                               training_tiers={"disagreement": 5}, training_bytes_per_record=20_000.0))
    h = hybrid_cost(s, small, 1, escalation_fraction=0.1, inputs=Inputs(backend="lambda-teacher"))
    got = {i.name.split(" (")[0]: i for i in h.cloud_items}
    assert "S3 Glacier Instant Retrieval storage" not in got  # S3's lifecycle skips objects under the minimum
    assert got["S3 storage, Standard"].quantity == pytest.approx(h.escalations * 0.5 * 20_000 / GB * 12)


def test_the_firehose_sink_needs_its_prices():
    import yaml

    from costing.pricing import Pricing
    from edge_agent.bench.pricing import DEFAULT_PRICING

    raw = yaml.safe_load(DEFAULT_PRICING.read_text())
    del raw["firehose"]
    with pytest.raises(ValueError, match="training.sink firehose needs firehose"):
        Pricing.model_validate(raw)
    raw["training"]["sink"] = "s3"  # the direct sink does without them
    assert Pricing.model_validate(raw).firehose is None
