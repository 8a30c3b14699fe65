"""What every transport offers the agent, whatever it wraps."""

from contracts.wire import EscalationRequest, Verdict
from edge_agent.escalation.base import Transport
from edge_agent.escalation.collect import CollectingTransport


class Silent(Transport):
    def escalate(self, request: EscalationRequest) -> Verdict:
        raise NotImplementedError


def test_every_transport_has_stats_even_one_that_counts_nothing(tmp_path):
    # The agent's summary asks its transport for stats(); one without counters answers {}, not AttributeError.
    assert Silent().stats() == {}
    assert CollectingTransport(Silent(), tmp_path).stats() == {"training_records": 0}
