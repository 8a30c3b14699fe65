"""Batching is on by default, and negotiated, so a gateway never sends batches to a cloud that cannot read
them: against a real Mosquitto, a cloud older than batches gets only version-1 messages, a cloud that says
it reads version 2 gets batches after its first verdict, and a cloud rolled back while the gateway batches
costs one unanswered batch (its frames decided at the edge, as on any timeout), then version 1 again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from contracts.wire import Crop, EscalationRequest
from edge_agent.config import EscalationSettings
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.mqtt import build_mqtt_transport
from tests.edge_agent.aws_side import CloudResponder
from tests.edge_agent.conftest import agent_config

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


def request(mid: str, camera: str = "cam") -> EscalationRequest:
    return EscalationRequest(mid, camera, 1, 0.1, "uncertain", (Crop(0, (0.0, 0.0, 8.0, 8.0), JPEG, (8, 8)),))


@pytest.fixture()
def cloud(broker):
    responder = CloudResponder(broker.port)
    yield responder
    responder.close()


@pytest.fixture()
def transport(broker, tmp_path):
    t = build_mqtt_transport(agent_config(tmp_path, broker.port, batch_window_ms=200, verdict_timeout_s=1.0))
    assert t.link.connection.wait_connected(10)
    yield t
    t.close()


def escalate_together(transport, prefix: str, n: int = 4) -> list[object]:
    """n escalations at once, as n cameras' worker threads would; each its verdict or its TransportError."""
    def one(k: int):
        try:
            return transport.escalate(request(f"{prefix}{k}", f"cam{k}"))
        except TransportError as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_the_default_window_is_on_and_bounded():
    window = EscalationSettings().batch_window_ms
    assert 0 < window <= 500


def test_a_cloud_older_than_batches_never_gets_one(cloud, transport):
    for round_ in range(2):
        answers = escalate_together(transport, f"old{round_}-")
        assert all(not isinstance(a, Exception) for a in answers), answers
    assert cloud.batches == [] and len(cloud.escalations) == 8  # all version 1, all answered
    assert transport.cloud_batches is False and transport.stats()["batched_escalations"] == 0
    assert transport.stats()["messages_up"] == 8


def test_a_cloud_that_reads_batches_gets_them_after_its_first_verdict(cloud, transport):
    cloud.reads_batches = True
    transport.escalate(request("first"))  # before any verdict: version 1
    assert cloud.batches == [] and transport.cloud_batches is True
    answers = escalate_together(transport, "new-")
    assert all(not isinstance(a, Exception) for a in answers), answers
    assert sum(len(b) for b in cloud.batches) + sum(1 for m in cloud.escalations if m == "first") >= 4
    assert any(len(b) > 1 for b in cloud.batches), cloud.batches  # several cameras' escalations left together
    assert sorted(cloud.escalations) == sorted(["first", *(f"new-{k}" for k in range(4))])


def test_a_rolled_back_cloud_is_noticed_by_its_first_verdict(cloud, transport):
    cloud.reads_batches = True
    transport.escalate(request("first"))
    cloud.reads_batches = False  # the router was rolled back to one that cannot read batches
    during = escalate_together(transport, "during-")  # answered, or (a batch already queued) decided at the edge
    assert all(isinstance(a, TransportError) or a.message_id.startswith("during-") for a in during), during
    assert transport.cloud_batches is False and transport.stats()["batching_fallbacks"] == 1
    batches = len(cloud.batches)
    answers = escalate_together(transport, "again-")
    assert all(not isinstance(a, Exception) for a in answers), answers
    assert len(cloud.batches) == batches  # version 1 again
    assert {m for m in cloud.escalations if m.startswith("again-")} == {f"again-{k}" for k in range(4)}


def test_a_cloud_that_answers_nothing_since_a_batch_left_turns_batching_off(cloud, transport):
    cloud.reads_batches = True
    transport.escalate(request("first"))
    cloud.reads_batches, cloud.answer = False, False  # an older router that drops what it cannot read
    lost = escalate_together(transport, "lost-", 2)
    assert all(isinstance(a, TransportError) for a in lost), lost  # no answer: decided at the edge, as on a timeout
    assert transport.cloud_batches is False and transport.stats()["batching_fallbacks"] == 1
    cloud.answer = True
    assert transport.escalate(request("again")).message_id == "again"  # version 1: answered
