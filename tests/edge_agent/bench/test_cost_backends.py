"""`edge-agent cost` on the chosen backend: --json, the projection at the given fleet, batching and lean-message
inputs, and `framesieve-cloud plan` agreeing with it."""

import json
import subprocess
import sys

import pytest

from edge_agent.bench.cost import build_report, run_cost_cli
from edge_agent.bench.cost_model import Inputs, hybrid_cost, parse_summary
from edge_agent.bench.pricing import load_pricing

from .test_cost import _summary


@pytest.fixture
def summary_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(_summary(message_bytes_mean=100_000.0)))
    return path


def test_cost_json_has_every_answer(summary_file, capsys):
    assert run_cost_cli(summary_file, 2500, as_json=True, teacher_cpu_s=0.5) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "framesieve.cost/1" and doc["cameras"] == 2500
    assert [p["cameras"] for p in doc["projection"]] == [10, 100, 1000, 2500, 10_000, 100_000]
    assert doc["backend"]["chosen"] in {o["name"] for o in doc["backends"]}
    chosen = next(o for o in doc["backends"] if o["name"] == doc["backend"]["chosen"])
    assert chosen["meets_objective"] and chosen["usd_per_month"] == min(
        o["usd_per_month"] for o in doc["backends"] if o["meets_objective"])
    measured, heavier = doc["baseline"]
    h = doc["hybrid"]
    assert measured["ratio_cloud"] == pytest.approx(h["cloud_usd_per_camera_month"] / measured["usd_per_camera_month"])
    assert heavier["cpu_s_per_frame"] == 0.5
    assert heavier["break_even_escalation_fraction"] is None or \
        heavier["break_even_escalation_fraction"] > measured["break_even_escalation_fraction"]
    per = doc["usd_per_million_escalations"]
    assert per["total"] == pytest.approx(sum(per["items"].values()))
    # every cloud line but connectivity, per million escalations, adds back up to the cloud bill
    conn = sum(i["usd_per_month"] for i in h["cloud_items"] if "connectivity" in i["name"])
    assert per["total"] * h["escalations_per_month"] / 1e6 + conn == pytest.approx(h["cloud_usd_per_month"])
    row = next(p for p in doc["projection"] if p["cameras"] == 2500)
    assert row["cloud_usd_per_camera_month"] == pytest.approx(h["cloud_usd_per_camera_month"])


def s3_sink():
    """The shipped prices with training records kept by the direct S3 sink (an object per escalation or batch;
    the Firehose sink's lines: test_cost_training.py)."""
    from costing.pricing import TrainingPricing

    return load_pricing().model_copy(update={"training": TrainingPricing(sink="s3")})


def test_batching_and_lean_messages_plug_in_as_inputs():
    s, p = parse_summary(_summary(message_bytes_mean=100_000.0)), s3_sink()
    today = hybrid_cost(s, p, 1000, inputs=Inputs(backend="lambda-teacher"))
    lines = {i.name.split(" (")[0]: i.usd_per_month for i in today.cloud_items}
    batched = hybrid_cost(s, p, 1000, inputs=Inputs(backend="lambda-teacher", images_per_router_invocation=10,
                                                     images_per_verdict_message=10, images_per_endpoint_call=10))
    blines = {i.name.split(" (")[0]: i.usd_per_month for i in batched.cloud_items}
    assert blines["Lambda requests"] == pytest.approx(lines["Lambda requests"] / 10)
    assert blines["IoT rules triggered"] == pytest.approx(lines["IoT rules triggered"] / 10)
    assert blines["IoT verdict messages"] == pytest.approx(lines["IoT verdict messages"] / 5)  # 10 KB: 2 units
    assert blines["DynamoDB writes"] == pytest.approx(lines["DynamoDB writes"])  # a batch write bills per item
    # one time claim per gateway message: a batch's, which its items' times derive from
    assert blines["DynamoDB message claims"] == pytest.approx(lines["DynamoDB message claims"] / 10)
    # one training object per batch: a batch of 10 holds a kept record (10% each) with p = 1 - 0.9^10
    assert blines["S3 PUTs"] == pytest.approx(lines["S3 PUTs"] * (1 - 0.9 ** 10) / 10 / 0.1)
    assert blines["S3 storage"] == pytest.approx(lines["S3 storage"])  # the same bytes, fewer objects
    lean = hybrid_cost(s, p, 1000, inputs=Inputs(backend="lambda-teacher", bytes_per_escalation=10_000))
    llines = {i.name.split(" (")[0]: i.usd_per_month for i in lean.cloud_items}
    assert llines["S3 storage"] == pytest.approx(lines["S3 storage"] / 10)
    assert lean.cloud_usd_per_month < today.cloud_usd_per_month
    with pytest.raises(ValueError, match="images per router invocation must be at least 1; got 0"):
        Inputs(images_per_router_invocation=0)


def test_small_fleet_avoids_the_idle_gpu_minimum():
    s, p = parse_summary(_summary()), load_pricing()
    report = build_report(s, p, 100)
    gpu = next(o for o in report.hybrid.plan.options if o.name == "realtime-g4dn")
    assert report.hybrid.backend.usd_per_month < gpu.usd_per_month
    assert {r.cameras for r in report.scale} == {10, 100, 1000, 10_000, 100_000}


def _cloud(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cloud.cli", *args], capture_output=True, text=True, timeout=60)


def test_plan_prints_only_the_choice_and_agrees_with_the_cost_report(summary_file):
    out = _cloud("plan", "--cameras", "1000", "--bench", str(summary_file))
    assert out.returncode == 0, out.stderr
    report = build_report(parse_summary(json.loads(summary_file.read_text())), load_pricing(), 1000)
    assert out.stdout.strip() == report.hybrid.backend.name
    doc = json.loads(_cloud("plan", "--cameras", "1", "--escalation-fraction", "0.0008", "--json").stdout)
    assert doc["chosen"] == "realtime-c6i"  # one image every 20 minutes: a Lambda would start cold
    params = _cloud("plan", "--cameras", "1000", "--bench", str(summary_file), "--params").stdout.split()
    assert params == [w for k, v in report.hybrid.backend.stack.items() for w in ("--param", f"{k}={v}")]
    bad = _cloud("plan", "--cameras", "10", "--escalation-fraction", "1.5")
    assert bad.returncode == 2 and "--escalation-fraction must be in [0, 1]; got 1.5" in bad.stderr


def test_informative_records_only_plug_in_from_the_bench_or_a_flag():
    p = s3_sink()
    plain = parse_summary(_summary(message_bytes_mean=100_000.0))
    lines = {i.name.split(" (")[0]: i.usd_per_month for i in hybrid_cost(plain, p, 1000).cloud_items}
    # a bench that measured it: 2% of escalations kept for training, a row for 30% of them
    measured = parse_summary(_summary(message_bytes_mean=100_000.0, training_share=0.02, rows_per_escalation=0.3))
    m = {i.name.split(" (")[0]: i.usd_per_month for i in hybrid_cost(measured, p, 1000).cloud_items}
    assert m["S3 storage"] == pytest.approx(lines["S3 storage"] * 0.02 / 0.1)  # the price file keeps 10%
    assert m["S3 PUTs"] == pytest.approx(lines["S3 PUTs"] * 0.2)
    assert m["DynamoDB writes"] == pytest.approx(lines["DynamoDB writes"] * 0.3)
    assert m["DynamoDB storage"] == pytest.approx(lines["DynamoDB storage"] * 0.3)
    # the flag wins over the bench
    f = {i.name.split(" (")[0]: i.usd_per_month
         for i in hybrid_cost(measured, p, 1000, inputs=Inputs(rows_per_escalation=1.0)).cloud_items}
    assert f["DynamoDB writes"] == pytest.approx(lines["DynamoDB writes"])
    with pytest.raises(ValueError, match=r"training share must be in \[0, 1\]; got 1.5"):
        Inputs(training_share=1.5)


def test_a_forced_backend_is_reported_as_given_not_as_chosen():
    from edge_agent.bench.cost import format_cost

    s, p = parse_summary(_summary()), load_pricing()
    text = format_cost(build_report(s, p, 1000, inputs=Inputs(backend="async-g4dn")))
    assert "chosen: async-g4dn" in text and "as given by --backend (MISSES the objective)" in text
    assert "the cheapest that meets the objective" in format_cost(build_report(s, p, 1000))


def test_a_heavier_teacher_runs_on_every_backend_too():
    """--teacher-cpu-s changes the hybrid's teacher as well as the baseline's: each option's compute per image
    and throughput scale by teacher_cpu_s / the measured teacher's CPU, and the planner chooses again."""
    s, p = parse_summary(_summary(message_bytes_mean=20_000.0)), load_pricing()
    k = 0.6 / 0.06  # the summary's measured teacher: 0.06 CPU-s per frame
    report = build_report(s, p, 1000, teacher_cpu_s=0.6, inputs=Inputs(backend="lambda-teacher", batch_window_ms=0))
    measured, heavier = report.comparisons
    assert measured.hybrid is None and heavier.teacher_scale == pytest.approx(k)
    h = heavier.hybrid
    lam = p.backends.options["lambda-teacher"]
    escalations = 1000 * 0.05 * 1.0 * p.hours_per_month * 3600  # one image per escalation and invocation
    compute = escalations * lam.memory_mb / 1024 * (lam.router_s + lam.s_per_image * k) * p.lambda_.compute.usd
    line = next(i for i in h.cloud_items if i.name.startswith("Lambda compute"))
    assert line.usd_per_month == pytest.approx(compute, rel=1e-9)
    assert line.usd_per_month > 4 * next(i for i in report.hybrid.cloud_items
                                         if i.name.startswith("Lambda compute")).usd_per_month
    # the ratio against the heavier baseline is the heavier hybrid's, not the light teacher's
    assert heavier.target.ratio_reached == pytest.approx(h.cloud_usd_per_camera_month
                                                         / heavier.baseline.usd_per_camera_month)
    # an instance option: a tenth of the images per second, so ten times the load
    c6i = p.backends.options["realtime-c6i"]
    rate = escalations / (p.hours_per_month * 3600)
    row = next(o for o in h.plan.options if o.name == "realtime-c6i")
    per_instance = c6i.images_per_s / k * p.sagemaker.target_utilisation
    assert row.load == pytest.approx(rate * p.sagemaker.headroom / per_instance)
    assert row.p95_s == pytest.approx(p.backends.path_overhead_s + c6i.p95_s * k)
    with pytest.raises(ValueError, match="positive"):
        p.backends.scaled(0)


def test_storage_is_priced_per_tier_and_from_the_measured_record(tmp_path, capsys):
    """Storage uses the bench's measured bytes per kept record and each tier's months (an agreeing audit goes
    after a month, as the template's lifecycle rule says); --training-from takes another bench's pooled figures."""
    p = s3_sink()
    tiers = {"audit": 3, "disagreement": 1}
    s = parse_summary(_summary(message_bytes_mean=20_000.0, training_share=0.4, records_answered=10,
                               training_kept=4, training_tiers=tiers, training_bytes_per_record=30_000.0))
    h = hybrid_cost(s, p, 1000, inputs=Inputs(backend="lambda-teacher"))
    months = (3 * p.s3.retention_months_by_tier["audit"] + 1 * p.s3.retention_months) / 4
    assert p.s3.retention_months_by_tier["audit"] == 1 and p.s3.retention_months == 12
    line = next(i for i in h.cloud_items if i.name.startswith("S3 storage"))
    assert line.usd_per_month == pytest.approx(h.escalations * 0.4 * 30_000 * months / 2**30 * p.s3.storage.usd)
    # a bench of one clip priced with the training figures of a bench over every clip
    one, every = tmp_path / "one.json", tmp_path / "every.json"
    one.write_text(json.dumps(_summary(message_bytes_mean=20_000.0, training_share=0.5, records_answered=4)))
    every.write_text(json.dumps(_summary(training_share=0.25, records_answered=60, training_kept=15,
                                         training_share_ci95=[0.158, 0.372], training_tiers={"disagreement": 15},
                                         training_bytes_per_record=25_000.0, rows_per_escalation=0.3)))
    assert run_cost_cli(one, 1000, as_json=True, training_from=every) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["training"]["training_share"] == 0.25 and doc["training"]["training_kept"] == 15
    assert doc["training"]["training_source"] == str(every)
    assert any(n.startswith("Firehose ingestion (25% kept") for n in doc["usd_per_million_escalations"]["items"])
    assert run_cost_cli(one, 1000, training_from=one) == 0  # counts shown: 2 of 4 escalations
    assert "Training share 0.500 (2 kept of 4 escalations" in capsys.readouterr().out
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(_summary()))
    assert run_cost_cli(one, 1000, training_from=bare) == 2
    assert "no measured training share" in capsys.readouterr().err
    # a --training-from file that is not there: the flag is named, not only "bench summary" (which of the two?)
    assert run_cost_cli(one, 1000, training_from=tmp_path / "nope.json") == 2
    assert f"--training-from: cannot read bench summary {tmp_path / 'nope.json'}" in capsys.readouterr().err
