"""The cloud circuit breaker on a clock the test moves: opens on failures within its window, decides at the
edge without asking while open, probes once per interval, closes on the probe's success."""

from __future__ import annotations

import json
import logging

from edge_agent.config import BreakerSettings
from edge_agent.escalation.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from edge_agent.logs import JsonFormatter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _breaker(**settings) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(BreakerSettings(**{"failures": 3, "window_s": 30, "probe_interval_s": 10, **settings}),
                          clock), clock


def test_it_opens_after_failures_within_the_window_and_probes_back(caplog):
    breaker, clock = _breaker()
    with caplog.at_level(logging.INFO, "edge_agent.escalation.breaker"):
        for _ in range(2):
            assert breaker.allow()
            breaker.record(False, "timeout")
        assert breaker.state == CLOSED  # two failures are not three
        breaker.record(False, "timeout")
        assert breaker.state == OPEN and breaker.opens == 1
        assert not breaker.allow()  # open: the edge decides without asking
        clock.t += 9.9
        assert not breaker.allow()
        clock.t += 0.1
        assert breaker.allow() and breaker.state == HALF_OPEN  # the probe
        assert not breaker.allow()  # one probe at a time
        breaker.record(False, "still down")
        assert breaker.state == OPEN and not breaker.allow()
        clock.t += 10
        assert breaker.allow()
        breaker.record(True)
        assert breaker.state == CLOSED and breaker.allow() and breaker.probes == 2
    states = [(r.previous, r.state) for r in caplog.records if hasattr(r, "state")]
    assert states == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    line = json.loads(JsonFormatter().format(caplog.records[0]))  # one structured line per transition
    assert (line["breaker"], line["state"], line["level"]) == ("cloud", "open", "warning") and "timeout" in line["why"]


def test_old_failures_and_a_healthy_share_keep_it_closed():
    breaker, clock = _breaker()
    breaker.record(False)
    breaker.record(False)
    clock.t += 31  # out of the window
    breaker.record(False)
    assert breaker.state == CLOSED
    for _ in range(6):
        breaker.record(True)
    breaker.record(False)
    breaker.record(False)  # 3 failures of 9 in the window: under the 0.5 share
    assert breaker.state == CLOSED


def test_disabled_it_always_asks():
    breaker, _ = _breaker(enabled=False)
    for _ in range(10):
        breaker.record(False)
    assert breaker.allow() and breaker.state == CLOSED


def test_a_probe_never_sent_frees_its_slot():
    breaker, clock = _breaker(failures=1)
    breaker.record(False)
    clock.t += 10
    assert breaker.allow()
    breaker.release()  # the message could not be built
    assert breaker.allow()
