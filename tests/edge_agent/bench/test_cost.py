"""Cost model: line items, break-even and the 1/10 goal on constructed summaries with hand-computed answers."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from edge_agent.bench.cost import (
    baseline_cost,
    break_even_escalation_fraction,
    build_report,
    format_cost,
    hybrid_cost,
    plot_cost,
    report_text,
    run_cost_cli,
    scale_projection,
    ten_x_target,
)
from edge_agent.bench.cost_model import (
    Inputs,
    SummaryError,
    load_summary,
    message_units,
    monthly_escalation_fraction,
    parse_summary,
)
from edge_agent.bench.pricing import DEFAULT_PRICING, Pricing, PricingError, load_pricing, merge

FRAMES_PER_MONTH = 730 * 3600  # sampled frames per camera-month at 1 fps
G4DN = Inputs(backend="realtime-g4dn", batch_window_ms=0)  # a GPU real-time endpoint, one message per escalation


def _g4dn(**fields) -> dict:
    return {"backends": {"options": {"realtime-g4dn": fields}}}


def _summary(**total):
    t = {"sampled_frames": 1000, "escalation_fraction": 0.05, "escalated": 50, "messages": 50,
         "message_bytes_mean": 60000.0, "edge_cpu_s_per_frame": 0.013, "baseline_cpu_s_per_frame": 0.06,
         "cameras_per_core": 75.0, "bytes_sent": 3_000_000, "labels": {}}
    warmup = total.pop("warmup", None)
    t.update(total)
    return {"schema": "framesieve.bench/1", "fps": 1.0, "total": t, "clips": {}, "warmup": warmup}


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_PRICING.read_text())


def _prices(override: dict | None = None, zero: bool = False) -> Pricing:
    """The shipped file, optionally with every price set to 0 (so one line can be checked alone), then overrides."""
    raw = _raw()
    if zero:
        for section in raw.values():
            if isinstance(section, dict):
                for line in section.values():
                    if isinstance(line, dict) and "usd" in line:
                        line["usd"] = 0.0
    return Pricing.model_validate(merge(raw, override or {}))


# Simple figures for hand computation: $0.10 per 2-vCPU instance-hour, 50% target utilisation, no headroom.
SIMPLE_BASELINE = {"baseline": {"instance": {"usd": 0.10, "vcpus": 2}, "target_utilisation": 0.5, "headroom": 1.0}}


@pytest.mark.parametrize(("cameras", "cpu", "instances", "fleet_usd"), [
    (1, None, 1, 73.0),  # 0.05 CPU-s/frame at 1 fps = 0.05 vCPU / 0.5 = 0.1 vCPU -> 1 instance x 730 h x $0.10
    (100, None, 5, 365.0),  # 10 vCPU -> 5 instances
    (101, None, 6, 438.0),  # 10.1 vCPU -> rounded up to 6
    (100, 0.2, 20, 1460.0),  # the user's heavier teacher: 0.4 vCPU per camera -> 40 vCPU -> 20
])
def test_baseline_known_answers(cameras, cpu, instances, fleet_usd):
    b = baseline_cost(parse_summary(_summary(baseline_cpu_s_per_frame=0.05)), _prices(SIMPLE_BASELINE), cameras, cpu)
    assert b.instances == instances
    assert b.usd_per_month == pytest.approx(fleet_usd)
    assert b.usd_per_camera_month == pytest.approx(fleet_usd / cameras)
    (item,) = b.items
    assert (item.quantity, item.unit, item.unit_price_usd) == (instances * 730, "instance-hour", 0.10)
    assert item.source.startswith("https://aws.amazon.com/ec2/")


def test_hybrid_line_items_known_answers():
    # 10 cameras x 10% x 1 fps x 730 h = 2,628,000 escalations, one message each, 6,000 B = 2 units of 5 KB.
    # the direct S3 sink (one object per escalation); the Firehose sink's lines: test_cost_training.py
    prices = _prices(merge({"iot_core": {"basic_ingest": False}, "lambda": {"duration_ms": 100, "memory_mb": 512},
                            "sagemaker": {"target_utilisation": 1.0, "headroom": 1.0}, "training": {"sink": "s3"}},
                           _g4dn(images_per_s=10)))
    h = hybrid_cost(parse_summary(_summary(message_bytes_mean=6000.0)), prices, 10, escalation_fraction=0.1,
                    inputs=G4DN)
    items = {i.name.split(" (")[0]: i for i in h.cloud_items}
    assert h.escalations == pytest.approx(2_628_000)
    assert items["IoT escalation messages"].quantity == pytest.approx(5.256)  # million 5 KB units
    assert items["IoT escalation messages"].usd_per_month == pytest.approx(5.256)  # at $1.00 per million
    assert items["IoT verdict messages"].usd_per_month == pytest.approx(5.256)  # publish + delivery, 1 unit each
    assert items["IoT rules triggered"].usd_per_month == pytest.approx(2.628 * 0.15)
    assert items["Lambda requests"].usd_per_month == pytest.approx(2.628 * 0.20)
    assert items["Lambda compute"].quantity == pytest.approx(131_400)  # 0.5 GB x 0.1 s per invocation
    assert items["S3 PUTs"].quantity == pytest.approx(262.8)  # 10% kept x 1 PUT, in thousands
    assert items["DynamoDB message claims"].quantity == pytest.approx(2.628)  # one per escalation, million
    # 1 image/s against 10 images/s per instance: 0.1 busy, the minimum of 1 is paid for.
    assert (h.gpu_instances, h.gpu_at_minimum) == (1, True)
    assert items["SageMaker ml.g4dn.xlarge"].usd_per_month == pytest.approx(730 * 0.736)
    # 75 cameras/core x 4 cores x 0.7 = 210 per gateway -> 1 gateway, connected 43,800 minutes.
    assert (h.cameras_per_gateway, h.gateways) == (210, 1)
    assert items["IoT connectivity"].quantity == pytest.approx(0.0438)
    hw, power = h.gateway_items
    assert hw.usd_per_month == pytest.approx(400 / 36) and power.usd_per_month == pytest.approx(1.64)
    assert h.all_in_usd_per_camera_month == pytest.approx(h.cloud_usd_per_camera_month + (400 / 36 + 1.64) / 10)
    # The per-escalation breakdown adds back up to the cloud bill, less the fixed connectivity.
    per = sum(usd for _, usd in h.per_escalation())
    assert per * h.escalations + items["IoT connectivity"].usd_per_month == pytest.approx(h.cloud_usd_per_month)


def test_basic_ingest_has_no_messaging_charge_but_rules_still_count():
    h = hybrid_cost(parse_summary(_summary()), _prices(), 10)
    (uplink,) = [i for i in h.cloud_items if i.name.startswith("IoT escalations")]
    assert uplink.usd_per_month == 0 and uplink.quantity > 0
    assert any(i.name == "IoT rules triggered" and i.usd_per_month > 0 for i in h.cloud_items)


@pytest.mark.parametrize(("nbytes", "units"), [(0, 1), (1, 1), (5120, 1), (5121, 2), (10240, 2), (10241, 3)])
def test_iot_5kb_units_round_up(nbytes, units):
    assert message_units(nbytes) == units


def test_iot_units_reach_the_line_item():
    prices = _prices({"iot_core": {"basic_ingest": False}})
    up = {}
    for nbytes in (5120.0, 5121.0):
        h = hybrid_cost(parse_summary(_summary(message_bytes_mean=nbytes)), prices, 1, escalation_fraction=0.1,
                        inputs=Inputs(batch_window_ms=0))
        up[nbytes] = next(i for i in h.cloud_items if i.name.startswith("IoT escalation messages")).quantity
    assert up[5121.0] == pytest.approx(2 * up[5120.0])
    assert up[5120.0] == pytest.approx(0.1 * FRAMES_PER_MONTH / 1e6)


def test_break_even_on_a_linear_stretch_equals_the_baseline():
    # A fast endpoint keeps one instance over the whole range, so the crossing is on a straight line.
    prices = _prices(_g4dn(images_per_s=1e6))
    s = parse_summary(_summary())
    base = baseline_cost(s, prices, 1000).usd_per_camera_month
    f = break_even_escalation_fraction(s, prices, 1000, base, G4DN, "realtime-g4dn")
    assert 0 < f < 1
    assert hybrid_cost(s, prices, 1000, f, G4DN).cloud_usd_per_camera_month == pytest.approx(base, abs=0.01)
    assert hybrid_cost(s, prices, 1000, f + 0.001, G4DN).cloud_usd_per_camera_month > base


def test_break_even_at_an_instance_step_and_the_extremes():
    s, prices = parse_summary(_summary()), _prices()
    base = baseline_cost(s, prices, 1000).usd_per_camera_month  # $3.65 with the shipped prices
    f = break_even_escalation_fraction(s, prices, 1000, base, G4DN, "realtime-g4dn")
    assert hybrid_cost(s, prices, 1000, f - 1e-6, G4DN).cloud_usd_per_camera_month <= base
    assert hybrid_cost(s, prices, 1000, f + 1e-6, G4DN).cloud_usd_per_camera_month > base
    # 3 cameras: the idle endpoint ($537/month) alone costs more than their baseline.
    assert break_even_escalation_fraction(s, prices, 3, baseline_cost(s, prices, 3).usd_per_camera_month,
                                          G4DN, "realtime-g4dn") == 0.0
    assert break_even_escalation_fraction(s, prices, 1000, 1e6, G4DN, "realtime-g4dn") is None


def test_ten_x_target_arithmetic():
    # Only Lambda requests cost anything: $10 per million = $1e-5 per escalation, so the cloud costs
    # f x 2,628,000 x 1e-5 = f x $26.28 per camera-month. Baseline (simple prices, 100 cameras): $3.65.
    prices = _prices(merge(SIMPLE_BASELINE, {"lambda": {"requests": {"usd": 10.0}}}), zero=True)
    s = parse_summary(_summary(baseline_cpu_s_per_frame=0.05))
    base = baseline_cost(s, prices, 100)
    assert base.usd_per_camera_month == pytest.approx(3.65)
    lam = Inputs(backend="lambda-teacher", batch_window_ms=0)  # per use: no instance minimum; one message each
    h = hybrid_cost(s, prices, 100, inputs=lam)
    assert h.cloud_usd_per_camera_month == pytest.approx(0.05 * 26.28)
    t = ten_x_target(s, prices, h, base, inputs=lam)
    assert t.target_usd_per_camera_month == pytest.approx(0.365)
    assert t.ratio_reached == pytest.approx(1.314 / 3.65)
    assert t.fraction_needed == pytest.approx(0.365 / 26.28)
    assert t.usd_per_escalation_now == pytest.approx(1e-5)
    assert t.usd_per_escalation_needed == pytest.approx(0.365 / (0.05 * FRAMES_PER_MONTH))


def test_ten_x_target_unreachable_when_the_endpoint_minimum_exceeds_it():
    s, prices = parse_summary(_summary()), _prices()
    h = hybrid_cost(s, prices, 10, inputs=G4DN)
    t = ten_x_target(s, prices, h, baseline_cost(s, prices, 10), inputs=G4DN)
    # 10 cameras x 0.111 vCPU -> 1 c7i.large = $65.15 -> $6.5153/camera; the goal is a tenth of it.
    assert t.target_usd_per_camera_month == pytest.approx(0.65153, abs=1e-5)
    assert t.fraction_needed == 0.0  # the idle endpoint alone, $53.73/camera, is far above the goal
    assert t.fixed_usd_per_camera_month > t.target_usd_per_camera_month
    # What each escalation may cost, all-in: the goal less connectivity (1 gateway, 43,800 min x $0.08/M / 10).
    conn = 43_800 / 1e6 * 0.08 / 10
    assert t.usd_per_escalation_needed == pytest.approx((0.651525 - conn) / (0.05 * FRAMES_PER_MONTH))
    assert t.usd_per_escalation_now > 50 * t.usd_per_escalation_needed  # the shared idle GPU dominates


def test_scale_projection_is_monotone_with_a_known_large_fleet():
    rows = scale_projection(parse_summary(_summary()), _prices(), (10, 1000, 100_000), inputs=G4DN)
    assert [r.cameras for r in rows] == [10, 1000, 100_000]
    assert [r.gpu_instances for r in rows] == sorted(r.gpu_instances for r in rows)
    # 100,000 x 5% = 5,000 images/s x 1.3 headroom / (100 x 0.7) = 92.9 -> 93 instances.
    assert rows[-1].images_per_s == pytest.approx(5000)
    assert rows[-1].gpu_instances == 93
    assert rows[0].gpu_at_minimum and not rows[-1].gpu_at_minimum
    assert rows[0].cloud_usd_per_camera_month > rows[-1].cloud_usd_per_camera_month  # the idle minimum, shared


def test_warmup_is_amortised_over_the_month():
    s = parse_summary(_summary(warmup={"escalation_fraction": 0.5, "hours": 73}))
    assert monthly_escalation_fraction(s, _prices()) == pytest.approx(0.05 + 0.45 * 73 / 730)  # 0.095
    assert monthly_escalation_fraction(s, _prices({"warmup_amortisation_months": 2})) == pytest.approx(0.0725)
    assert hybrid_cost(s, _prices(), 1).escalations == pytest.approx(0.095 * FRAMES_PER_MONTH)
    report = build_report(s, _prices(), 1000)
    plain = hybrid_cost(s, _prices(), 1000, 0.05).cloud_usd_per_camera_month
    assert report.warmup_usd_per_camera_month == pytest.approx(report.hybrid.cloud_usd_per_camera_month - plain)
    assert report.warmup_usd_per_camera_month > 0
    assert build_report(parse_summary(_summary()), _prices(), 1000).warmup_usd_per_camera_month is None


def test_shipped_pricing_is_dated_and_sourced():
    p = load_pricing()
    assert p.as_of and "check" in p.note.lower()
    backends = [getattr(o, "instance", None) or o.compute for o in p.backends.options.values() if o.kind != "lambda"]
    for line in (p.baseline.instance, p.iot_core.messaging, p.lambda_.compute, p.dynamodb.writes, p.s3.puts,
                 p.sns.publishes, p.data_transfer.outbound, *backends):
        assert line.source.startswith("https://aws.amazon.com/")
    # no GPU on this project's machines: their throughput stays an assumption, and says so
    assert all(o.assumed for o in p.backends.options.values() if "GPU" in o.label)


@pytest.mark.parametrize(("override", "names"), [
    ("lambda:\n  memory_mbs: 1024\n", ["lambda.memory_mbs", "1024", "Extra inputs"]),
    ("s3:\n  puts: {usd: -1}\n", ["s3.puts.usd", "-1", "greater than or equal to 0"]),
    ("sns:\n  publishes: {unit: requests}\n", ["sns.publishes.unit must be 'million requests'", "'requests'"]),
])
def test_pricing_errors_name_the_key_and_value(tmp_path, override, names):
    over = tmp_path / "over.yaml"
    over.write_text(override)
    with pytest.raises(PricingError) as err:
        load_pricing(overrides=over)
    for name in names:
        assert name in str(err.value)


def test_pricing_override_merges_and_reports_its_line(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text("# measured\nbackends:\n  options:\n    realtime-g4dn:\n      images_per_s: 250\n"
                    "      performance_source: measured on a g4dn\n")
    p = load_pricing(overrides=over)
    g4dn = p.backends.options["realtime-g4dn"]
    assert g4dn.images_per_s == 250 and g4dn.instance.type == "ml.g4dn.xlarge" and not g4dn.assumed
    assert p.sources == [str(DEFAULT_PRICING), str(over)]
    over.write_text("# measured\nbackends:\n  options:\n    realtime-g4dn:\n      images_per_s: -5\n")
    with pytest.raises(PricingError, match=r"over.yaml line 5"):
        load_pricing(overrides=over)


def test_missing_summary_key_names_file_and_key(tmp_path, capsys):
    data = _summary()
    del data["total"]["message_bytes_mean"]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SummaryError, match=r"summary.json.*\n.*missing key 'total.message_bytes_mean'"):
        load_summary(path)
    assert run_cost_cli(path, 10, None, None, None, None) == 2
    assert "total.message_bytes_mean" in capsys.readouterr().err
    assert "cost model not run" in report_text(tmp_path / "absent.json")


def test_bad_summary_values_are_named():
    bad = copy.deepcopy(_summary(escalation_fraction=1.5))
    with pytest.raises(SummaryError, match=r"total.escalation_fraction.*1.5"):
        parse_summary(bad, "x.json")
    with pytest.raises(SummaryError, match="schema"):
        parse_summary({**_summary(), "schema": "other/2"})


def test_cli_prints_the_table_and_writes_a_png(tmp_path, capsys):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(_summary()))
    png = tmp_path / "plots" / "cost.png"
    assert run_cost_cli(path, 1000, None, None, 0.5, png) == 0
    out = capsys.readouterr().out
    for text in ("Baseline, measured teacher", "Baseline, user-given teacher", "Break-even", "1/10 goal",
                 "Projection at", "100,000", "Teacher backends for 1,000 cameras", "[assumed performance]"):
        assert text in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    import cv2

    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] > 1000


def test_format_cost_without_user_teacher_and_plot_function(tmp_path):
    report = build_report(parse_summary(_summary()), _prices(), 1000, summary_path="s.json")
    text = format_cost(report)
    assert "user-given" not in text and "$ per million escalations" in text
    assert plot_cost(report, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="cameras"):
        build_report(parse_summary(_summary()), _prices(), 0)
    with pytest.raises(ValueError, match="teacher CPU"):
        build_report(parse_summary(_summary()), _prices(), 10, teacher_cpu_s=-1)


def test_default_pricing_path_exists():
    assert Path(DEFAULT_PRICING).is_file()


def test_a_bill_projected_from_a_few_frames_says_it_is_a_guess(tmp_path, capsys):
    thin = tmp_path / "thin.json"  # the new user's bench: 36 frames, 5 escalated
    thin.write_text(json.dumps(_summary(sampled_frames=36, escalated=5, messages=5, escalation_fraction=5 / 36)))
    assert run_cost_cli(thin, 1000, None, None, None, None) == 0
    err = capsys.readouterr().err
    assert "rests on 36 sampled frames (5 escalated)" in err and "95% interval of 6.1%-28.7%" in err
    enough = tmp_path / "enough.json"
    enough.write_text(json.dumps(_summary()))  # 1,000 frames
    assert run_cost_cli(enough, 1000, None, None, None, None) == 0
    assert "warning" not in capsys.readouterr().err
