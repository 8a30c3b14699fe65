"""The backend planner on hand-computed answers: what each option costs, when it is cold, which one is chosen."""

import math

import pytest
import yaml

from costing.planner import Workload, evaluate, plan
from costing.pricing import DEFAULT_PRICING, Pricing, PricingError, load_pricing, merge

HOURS = 730
SECONDS = HOURS * 3600


def _prices(override: dict | None = None) -> Pricing:
    raw = yaml.safe_load(DEFAULT_PRICING.read_text())
    return Pricing.model_validate(merge(raw, override or {}))


def _w(images_per_s: float, cameras: int = 100, per_call: float = 1.0) -> Workload:
    return Workload(cameras, images_per_s, per_call, per_call, 100_000.0, 1024.0)


def test_realtime_instances_and_lines_known_answers():
    p = _prices()
    o = p.backends.options["realtime-c6i"]  # 28.7 images/s, $0.119/h
    # 60 images/s x 1.3 headroom / (28.7 x 0.7) = 3.88 -> 4 instances
    r = evaluate("realtime-c6i", o, p, _w(60.0))
    assert (r.instances, r.load) == (4, pytest.approx(60 * 1.3 / (28.7 * 0.7)))
    lines = {i.name.split(" (")[0]: i for i in r.items}
    assert lines["SageMaker ml.c6i.large"].usd_per_month == pytest.approx(4 * HOURS * 0.119)
    images = 60 * SECONDS
    assert lines["Lambda requests"].quantity == pytest.approx(images / 1e6)
    # the router waits on the endpoint: 512 MB x 150 ms per invocation
    assert lines["Lambda compute"].quantity == pytest.approx(images * 0.5 * 0.150)
    assert lines["SageMaker data processed"].quantity == pytest.approx(images * 101_024 / 1024**3)
    assert r.p95_s == pytest.approx(0.3 + 0.073) and r.meets
    # an idle fleet still pays the minimum instance
    assert evaluate("realtime-c6i", o, p, _w(0.0)).instances == 1


def test_lambda_teacher_bills_the_invocation_with_the_teacher_inside():
    p = _prices()
    o = p.backends.options["lambda-teacher"]  # 1769 MB, 28.2 ms per image, 40 ms of router calls
    r = evaluate("lambda-teacher", o, p, _w(10.0))
    (requests, compute) = r.items  # no endpoint, no data-processed charge
    assert requests.quantity == pytest.approx(10 * SECONDS / 1e6)
    assert compute.quantity == pytest.approx(10 * SECONDS * 1769 / 1024 * (0.04 + o.s_per_image))
    assert compute.usd_per_month == pytest.approx(compute.quantity * 0.0000166667)
    assert r.instances == 0 and r.cold_share == pytest.approx(math.exp(-10 * 300))
    # batching: 10 images per invocation -> a tenth of the requests; the router's own 40 ms paid once per 10
    b = evaluate("lambda-teacher", o, p, _w(10.0, per_call=10))
    assert b.items[0].quantity == pytest.approx(requests.quantity / 10)
    assert b.items[1].quantity == pytest.approx(10 * SECONDS / 10 * 1769 / 1024 * (0.04 + 10 * o.s_per_image))


def test_rare_escalations_start_cold_and_the_objective_picks_an_always_warm_endpoint():
    p = _prices()
    rare = _w(1 / 1200, cameras=1)  # one image every 20 minutes
    lam = evaluate("lambda-teacher", p.backends.options["lambda-teacher"], p, rare)
    assert lam.cold_share == pytest.approx(math.exp(-300 / 1200))  # 78% of requests find no warm container
    assert lam.p95_s == pytest.approx(0.3 + 2.8) and not lam.meets
    chosen = plan(p, rare)
    assert chosen.met and chosen.chosen.kind == "realtime" and chosen.chosen.name == "realtime-c6i"
    # a looser objective accepts the cold starts, and the Lambda is far cheaper
    loose = plan(p, rare, objective_p95_s=5.0)
    assert loose.chosen.name == "lambda-teacher" and loose.chosen.usd_per_month < 1.0


def test_serverless_concurrency_quota_and_async_scale_to_zero():
    p = _prices()
    # 10,000 images/s x 28.2 ms x 1.3 = 367 concurrent requests, over Serverless Inference's 200
    s = evaluate("serverless-3gb", p.backends.options["serverless-3gb"], p, _w(10_000.0))
    assert not s.meets and "over its quota of 200" in s.note
    o = p.backends.options["async-g4dn"]
    idle = evaluate("async-g4dn", o, p, _w(0.0))
    assert idle.items[0].usd_per_month == 0.0  # scaled to zero all month
    assert idle.p95_s == pytest.approx(0.3 + o.scale_from_zero_s) and not idle.meets
    busy = evaluate("async-g4dn", o, p, _w(50.0))
    assert busy.cold_share < 1e-9 and busy.items[0].usd_per_month == pytest.approx(HOURS * 0.736)


def test_cheapest_meeting_the_objective_is_chosen_and_none_meeting_is_said():
    p = _prices()
    result = plan(p, _w(50.0, cameras=1000))
    meeting = [o for o in result.options if o.meets]
    assert result.met and result.chosen.usd_per_month == min(o.usd_per_month for o in meeting)
    assert {o.name for o in result.options} == set(p.backends.options)
    tight = plan(p, _w(50.0, cameras=1000), objective_p95_s=0.2)  # the path alone takes 0.3 s
    assert not tight.met and tight.chosen.p95_s == min(o.p95_s for o in tight.options)
    forced = plan(p, _w(50.0), only="realtime-g5")
    assert forced.chosen.name == "realtime-g5"


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: Workload(0, 1.0), "cameras must be at least 1; got 0"),
    (lambda p: Workload(1, 1.0, images_per_call=0.5), "images_per_call must be at least 1; got 0.5"),
    (lambda p: plan(p, _w(1.0), only="gpu-big"), "backend 'gpu-big' is not in the price file"),
    (lambda p: plan(p, _w(1.0), objective_p95_s=0), "latency objective must be a positive number"),
])
def test_bad_inputs_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call(_prices())


@pytest.mark.parametrize(("override", "names"), [
    ("backends:\n  options:\n    lambda-teacher:\n      performance_source: fast\n",
     ["backends.options.lambda-teacher", "must start with 'measured' or 'assumption'", "'fast'"]),
    ("backends:\n  options:\n    realtime-g5:\n      instance: {unit: instance-second}\n",
     ["backends.options.realtime-g5.instance.unit must be 'instance-hour'", "'instance-second'"]),
    ("backends:\n  options:\n    lambda-teacher:\n      memory_mb: 20000\n",
     ["backends.options.lambda-teacher.memory_mb (over.yaml line 4)", "20000"]),
    ("backends:\n  options:\n    tpu:\n      kind: tpu\n", ["backends.options.tpu", "'tpu'"]),
])
def test_backend_price_errors_name_the_key(tmp_path, override, names):
    over = tmp_path / "over.yaml"
    over.write_text(override)
    with pytest.raises(PricingError) as err:
        load_pricing(overrides=over)
    for name in names:
        assert name in str(err.value)
