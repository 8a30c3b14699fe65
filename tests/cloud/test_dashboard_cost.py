"""The live Cost page prices what `edge-agent cost` prices, from the same code in costing/: a batched gateway's
per-message lines (router invocation, IoT rule and action, claim) shared by the escalations of one message, by
the occupancy costing.occupancy predicts from the gateway's size and live escalated share, or by the occupancy
its result rows measured; and the Firehose sink's training lines equal to the cost model's for the same inputs."""

from __future__ import annotations

import time

import pytest

from cloud.dashboard import views
from cloud.dashboard.cost import CameraDay, fleet_cost
from cloud.stores import ResultRecord, open_store
from contracts.batch import DEFAULT_BATCH_WINDOW_MS
from contracts.device import Telemetry
from contracts.registry import Registration
from costing.occupancy import occupancy
from costing.pricing import load_pricing
from edge_agent.bench.cost_batching import cameras_per_gateway
from edge_agent.bench.cost_model import Inputs, hybrid_cost, parse_summary
from edge_agent.config.escalation import EscalationSettings
from tests.edge_agent.bench.test_cost import _summary

DAY = 86400
PER_MESSAGE = ("Lambda requests", "IoT rules triggered", "IoT rule actions")
CLAIMS = "DynamoDB message claims"


def _items(cost: dict) -> dict[str, float]:
    return {i["name"].split(" (")[0]: i["usd_per_month"] for i in cost["line_items"]}


def _gateway(cameras: int, share: float, name: str = "gw") -> list[CameraDay]:
    return [CameraDay(f"{name}-c{i}", DAY, DAY * share, 0, cameras, gateway=name) for i in range(cameras)]


def test_the_agent_and_the_cloud_read_one_batch_window():
    assert EscalationSettings().batch_window_ms == DEFAULT_BATCH_WINDOW_MS == 250


@pytest.mark.parametrize(("cameras", "share"), [(20, 0.1), (50, 0.2)])
def test_a_batched_gateway_pays_less_per_escalation_by_the_predicted_occupancy(cameras, share):
    p = load_pricing()
    days = _gateway(cameras, share)
    batched, unbatched = fleet_cost(days, p), fleet_cost(days, p, window_ms=0)
    # the model's prediction, computed here from the gateway's size, 1 fps and the share, at the agent's window
    m = occupancy(cameras, 1.0, share, p.live.bytes_per_escalation, DEFAULT_BATCH_WINDOW_MS).per_message
    assert m > 1.1
    cam, alone = batched["cameras"][0], unbatched["cameras"][0]
    assert (cam["batching"], cam["escalations_per_message"]) == ("derived", round(m, 4))
    assert alone["escalations_per_message"] == 1.0
    (gw,) = batched["batching"]
    assert gw["source"] == "derived" and gw["how"].startswith("derived: ") and f"{m:.3f} escalations" in gw["how"]
    got, base = _items(batched), _items(unbatched)
    for name in (*PER_MESSAGE, CLAIMS):  # one of each per gateway message: divided by the occupancy exactly
        assert got[name] == pytest.approx(base[name] / m, rel=1e-9), name
    for name in ("DynamoDB writes", "DynamoDB storage", "Data transfer out"):  # one per escalation: unchanged
        assert got[name] == pytest.approx(base[name], rel=1e-12), name
    assert got["IoT verdict messages"] < base["IoT verdict messages"]
    assert got["Lambda compute"] < base["Lambda compute"]  # the router's own time once per invocation
    assert cam["usd_per_escalation"] < alone["usd_per_escalation"]
    assert cam["hybrid_usd_per_day"] < alone["hybrid_usd_per_day"]
    assert cam["break_even_share"] > alone["break_even_share"]  # batching moves the break-even up


def test_result_rows_measure_the_occupancy_and_the_page_says_so(tmp_path):
    """On a real store: 40 result rows of the last hour, each answered by a router invocation of 4 images (a
    batch of 4 one-image escalations), measure 4 escalations per message, whatever the derivation says."""
    store = open_store(f"sqlite://{tmp_path / 'r.sqlite'}")
    try:
        now = time.time()
        store.register_gateway(Registration("gw", "site-1", ("plaza",)))
        store.put_telemetry(Telemetry("t1", "gw", now, 10.0, "0.1", "generic@1", 12.0, 150.0, 0, 0, 0, True,
                                      {"plaza": {"fps": 1.0, "escalation_rate": 0.1}}, site="site-1"))
        store.put_results([ResultRecord(f"m{i}", "plaza", now - 60 + i, thing="gw", crops=1, call_images=4,
                                        training_key=f"k{i}" if i % 4 == 0 else "") for i in range(40)])
        page = views.cost(store, now)
    finally:
        store.close()
    (cam,) = page["cameras"]
    assert (cam["batching"], cam["escalations_per_message"]) == ("measured", 4.0)
    assert page["batching"][0]["how"] == "measured: 40 result rows of the last hour in 10 router invocations"
    assert page["training"]["share"] == 0.25 and page["training"]["share_source"].startswith("measured")
    assert fleet_cost([CameraDay("plaza", DAY, 100, 0, 1, "gw", answered_rows=5, answered_messages=5)])[
        "cameras"][0]["batching"] == "derived"  # too few rows: derived


def test_firehose_training_and_chain_lines_are_the_cost_models_for_the_same_inputs():
    """The same fleet priced by `edge-agent cost` (a bench summary with the live page's bytes, tiers and share)
    and by the live page (the same cameras, fps, share and gateway size): the same Firehose, S3 and Glacier IR
    lines, and the same per-message lines at the same derived occupancy, from the same code."""
    live = load_pricing()
    p = live.model_copy(update={"gateway": live.gateway.model_copy(update={"max_cameras": 12})})
    assert p.training.sink == "firehose"
    s = parse_summary(_summary(message_bytes_mean=p.live.bytes_per_escalation, training_share=0.1,
                               training_tiers=p.live.training_tiers, records_answered=10, training_kept=1,
                               training_bytes_per_record=p.live.training_bytes_per_record,
                               training_json_bytes_per_record=p.live.training_json_bytes_per_record,
                               rows_per_escalation=1.0))
    per_gw, cameras, share = cameras_per_gateway(s, p), 36, 0.15
    assert per_gw == 12
    model = hybrid_cost(s, p, cameras, escalation_fraction=share, inputs=Inputs(backend="lambda-teacher"))
    days = [d for g in range(cameras // per_gw) for d in _gateway(per_gw, share, f"gw{g}")]
    page = fleet_cost(days, p)
    assert page["training"]["share"] == p.per_escalation.training_sample_rate == 0.1
    ours = {i["name"]: i["usd_per_month"] for i in page["line_items"]}
    theirs = {i.name: i.usd_per_month for i in model.cloud_items}
    training = [n for n in theirs if n.startswith(("Firehose", "S3 ", "S3 Glacier"))]
    assert len(training) == 6 and any("Glacier Instant Retrieval storage" in n for n in training)
    for name in training:  # the same names (the same code wrote them) and the same figures
        assert ours[name] == pytest.approx(theirs[name], rel=1e-9), name
    assert model.occupancy.per_message == pytest.approx(page["cameras"][0]["escalations_per_message"], abs=1e-4)
    short = {n.split(" (")[0]: v for n, v in theirs.items()}
    got = _items(page)
    for name in (*PER_MESSAGE, CLAIMS, "IoT verdict messages", "Lambda compute", "DynamoDB writes"):
        assert got[name] == pytest.approx(short[name], rel=1e-9), name


def _plan(capsys, *argv: str) -> tuple[int, str, str]:
    import argparse

    from cloud.plan import add_arguments, run_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    code = run_from_args(parser.parse_args(list(argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_derives_images_per_call_from_the_gateway_size(capsys):
    import json

    fleet = ("--cameras", "1000", "--escalation-fraction", "0.1", "--bytes-per-image", "28713", "--json")
    m = occupancy(179, 1.0, 0.1, 28713, DEFAULT_BATCH_WINDOW_MS).per_message
    code, out, _ = _plan(capsys, *fleet, "--cameras-per-gateway", "179")
    doc = json.loads(out)
    assert code == 0 and doc["batching"]["escalations_per_message"] == pytest.approx(m) and m > 2.9
    assert doc["workload"]["images_per_call"] == pytest.approx(m)
    # the flag still wins; without either, one image per call as before
    assert json.loads(_plan(capsys, *fleet, "--cameras-per-gateway", "179", "--images-per-call", "2")[1])[
        "workload"]["images_per_call"] == 2
    assert json.loads(_plan(capsys, *fleet)[1])["workload"]["images_per_call"] == 1
    code, _, err = _plan(capsys, *fleet, "--cameras-per-gateway", "0")
    assert code == 2 and "cameras per gateway must be positive to derive batch occupancy; got 0" in err
