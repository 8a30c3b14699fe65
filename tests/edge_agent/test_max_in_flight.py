"""`escalation.max_in_flight: auto`: the escalations a gateway awaits at once, sized at config load from its own
cameras (sum of fps x the design's escalated share x (batch window + the latency objective)), floored and capped;
an explicit integer wins; a bad value is a clear config error. The cost table compares against the same figure."""

from __future__ import annotations

import math

import pytest
import yaml

from costing.occupancy import occupancy
from edge_agent.bench.cost_batching import agent_max_in_flight, in_flight
from edge_agent.bench.pricing import DEFAULT_PRICING
from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.config.escalation import (
    DESIGN_ESCALATED_SHARE,
    LATENCY_OBJECTIVE_S,
    MAX_IN_FLIGHT,
    MIN_IN_FLIGHT,
    EscalationSettings,
)
from edge_agent.metrics import render


def _config(cameras: int, fps: float = 1.0, **escalation) -> AgentConfig:
    return AgentConfig.model_validate({
        "cameras": [{"id": f"c{i}", "source": "injected", "fps": fps} for i in range(cameras)],
        "escalation": escalation})


def test_auto_is_the_default_and_a_small_gateway_gets_the_floor():
    config = _config(4)  # 4 cameras at 1 fps: 4 x 0.3 x 2 s = 2.4 awaited at once
    assert config.escalation.max_in_flight == "auto"
    assert config.escalation.in_flight_limit == MIN_IN_FLIGHT == 8
    assert "floored at 8" in config.escalation.in_flight_basis()


def test_auto_grows_with_the_cameras_their_fps_and_the_batch_window():
    assert _config(20).escalation.in_flight_limit == 12  # url: 20 x 1 fps x 0.3 x 2 s
    assert _config(10, fps=2).escalation.in_flight_limit == 12  # the same frames per second
    # the cost model's 1,000-camera gateway: 166.7 cameras; mqtt adds the 250 ms window: 167 x 0.3 x 2.25 = 112.7
    big = _config(167, transport="mqtt")
    assert big.escalation.in_flight_limit == math.ceil(167 * DESIGN_ESCALATED_SHARE * (0.25 + LATENCY_OBJECTIVE_S))
    assert big.escalation.in_flight_limit == 113
    assert _config(167, transport="mqtt", batch_window_ms=0).escalation.in_flight_limit == 101
    capped = _config(500, transport="mqtt")  # 337.5 needed: the cap, said so at start
    assert capped.escalation.in_flight_limit == MAX_IN_FLIGHT == 256
    assert "capped at 256" in capped.escalation.in_flight_basis()


def test_an_explicit_value_wins_even_below_the_floor_or_above_the_need():
    assert _config(167, transport="mqtt", max_in_flight=8).escalation.in_flight_limit == 8
    assert _config(2, max_in_flight=3).escalation.in_flight_limit == 3
    assert _config(2, max_in_flight=200).escalation.in_flight_limit == 200
    assert _config(2, max_in_flight=200).escalation.in_flight_basis() == "set explicitly"
    # outside an agent config (no cameras to size from), auto is the floor
    assert EscalationSettings().in_flight_limit == MIN_IN_FLIGHT


def test_a_model_copy_keeps_the_sized_figure_and_a_shared_settings_object_is_not_resized():
    big = _config(167, transport="mqtt")
    assert big.model_copy(update={"student": "other"}).escalation.in_flight_limit == 113
    small = AgentConfig.model_validate({"cameras": [{"id": "a", "source": "x"}], "escalation": big.escalation})
    assert small.escalation.in_flight_limit == 8 and big.escalation.in_flight_limit == 113


@pytest.mark.parametrize("bad", ["lots", 0, 257, 2.5, "true", "8 "])
def test_a_bad_value_is_a_clear_config_error_with_its_line(bad):
    text = yaml.safe_dump({"cameras": [{"id": "a", "source": "x"}], "escalation": {"max_in_flight": bad}})
    with pytest.raises(ConfigError) as err:
        parse_config(text, "agent.yaml")
    message = str(err.value)
    assert "escalation.max_in_flight (line " in message
    assert "takes auto (sized from the cameras, the default) or a whole number of escalations from 1 to 256" in message


def test_a_yaml_boolean_is_refused_not_read_as_1():
    with pytest.raises(ConfigError, match="max_in_flight takes auto"):
        parse_config("cameras: [{id: a, source: x}]\nescalation: {max_in_flight: true}\n")


def test_the_latency_objective_is_the_price_files():
    """The design latency auto sizes for is the one the cost model plans the endpoint for."""
    assert yaml.safe_load(DEFAULT_PRICING.read_text())["backends"]["latency_objective_p95_s"] == LATENCY_OBJECTIVE_S


def test_the_cost_tables_limit_is_autos_for_that_gateway():
    one = occupancy(166.7, 1.0, 0.10, 28_713.0, 250, "test")
    busy, limit = in_flight(one, 0.38)
    assert busy == pytest.approx(16.67 * (0.125 + 0.38), rel=1e-3) and limit == 113
    assert agent_max_in_flight(one) == (113, "auto")
    assert in_flight(one, 0.38, explicit=8)[1] == 8  # an explicit 8 is below the ~8.4 needed: the table warns
    huge = occupancy(2000.0, 1.0, 0.30, 28_713.0, 250, "test")
    assert agent_max_in_flight(huge) == (256, "auto, capped") and in_flight(huge, 2.0)[0] > 256


def test_metrics_expose_the_limit_next_to_in_flight():
    text = render({"cameras": {"a": {"cloud_busy": 2}}, "cloud": {
        "state": "closed", "opens": 0, "in_flight": 3, "max_in_flight": 12, "max_in_flight_auto": True}})
    assert "# TYPE framesieve_escalations_max_in_flight gauge" in text
    assert "framesieve_escalations_max_in_flight 12" in text and 'framesieve_cloud_busy_total{camera="a"} 2' in text
