"""The occupancy check (edge-agent bench-batching --poisson) on a real broker: real vtest escalations through the
real mqtt transport and batcher, a stand-in cloud that reads batches answering each; the row carries the
model's prediction beside the batcher's own counts. Loose bounds: the check is of the plumbing, the formula is
checked exactly against a simulation in tests/costing/test_occupancy.py."""

from __future__ import annotations

import pytest

from edge_agent.bench.occupancy_check import format_poisson, run_poisson, vtest_crops
from tests.edge_agent.aws_side import CloudResponder


@pytest.fixture()
def cloud(broker):
    responder = CloudResponder(broker.port)
    responder.reads_batches = True
    yield responder
    responder.close()


def test_predicted_and_measured_escalations_per_message_side_by_side(broker, cloud, vtest_path, tmp_path):
    row = run_poisson("127.0.0.1", broker.port, "gw-occ", "site-t", ["c1", "c2"], vtest_path, gateway_cameras=40,
                      share=0.5, fps=1.0, window_ms=200, seconds=3.0, seed=3, workdir=tmp_path)
    assert row["failed"] == 0 and row["arrived"] >= 30, row
    assert row["escalations"] == row["arrived"]  # every one left, in fewer messages
    assert row["messages"] < row["escalations"]
    assert row["arrivals_per_window"] == pytest.approx(4.0) and row["cap_per_message"] == 4  # ~28 KB each
    assert 20_000 < row["bytes_per_escalation"] < 40_000
    assert row["measured_per_message"] == pytest.approx(row["predicted_at_arrived_rate"], rel=0.4)
    assert len(cloud.escalations) == row["escalations"] + 1  # each answered once, and the negotiating first one
    assert "predicted" in format_poisson([row])


def test_the_message_is_the_agents_default_frame(vtest_path):
    crop = vtest_crops(vtest_path, n=2)[0]
    assert max(crop.size) == 416 and crop.jpeg[:2] == b"\xff\xd8"


def test_bad_arguments_are_named(vtest_path):
    with pytest.raises(ValueError, match="0 < SHARE <= 1"):
        run_poisson("127.0.0.1", 1, "gw", "s", ["c"], vtest_path, 10, 1.5, 1.0, 250, 1.0)
