"""The mqtt (paho) and iot-core (awsiotsdk, mutual TLS) transports against a real Mosquitto broker: the
escalation goes out on the thing's topic, the verdict comes back matched by message id; timeouts, bad
verdicts and an absent broker each end with the edge deciding, and nothing is lost."""

from __future__ import annotations

import json
import logging

import cv2
import pytest

from contracts.detections import Detections
from contracts.wire import MAX_MESSAGE_BYTES
from edge_agent.escalation.base import TransportError
from edge_agent.escalation.connection import Topics, topic_matches
from edge_agent.escalation.crops import build_request
from edge_agent.escalation.mqtt import build_mqtt_transport
from tests.edge_agent.aws_side import CloudResponder, wait_until
from tests.edge_agent.conftest import THING, agent_config


@pytest.fixture()
def request_for(vtest_frames):
    def make(frame_index: int = 7, camera: str = "cam"):
        frame = vtest_frames[1]
        return build_request(camera, frame_index, float(frame_index), frame, [(0, 0, 768, 576)], "uncertain",
                             Detections.empty(), "site-t")
    return make


@pytest.fixture()
def cloud(broker):
    responder = CloudResponder(broker.port, rule="framesieve_escalations")
    yield responder
    responder.close()


def _transport(tmp_path, port, **kw):
    transport = build_mqtt_transport(agent_config(tmp_path, port, **kw))
    assert transport.link.connection.wait_connected(10), "the transport did not connect"
    return transport


@pytest.mark.parametrize(("flt", "topic", "match"), [
    ("framesieve/+/escalations", "framesieve/gw-1/escalations", True),
    ("framesieve/#", "framesieve/gw-1/verdicts", True),
    ("framesieve/+/escalations", "framesieve/gw-1/verdicts", False),
    ("#", "$aws/things/gw-1/shadow/update/delta", False),
    ("$aws/things/gw-1/jobs/+/update/rejected", "$aws/things/gw-1/jobs/j1/update/rejected", True),
])
def test_topic_filters_follow_mqtt_rules(flt, topic, match):
    assert topic_matches(flt, topic) is match


def test_topics_sit_under_the_prefix_and_thing_name():
    t = Topics("acme/fs", "gw-9")
    assert (t.escalations, t.verdicts, t.events, t.telemetry) == (
        "acme/fs/gw-9/escalations", "acme/fs/gw-9/verdicts", "acme/fs/gw-9/events", "acme/fs/gw-9/telemetry")
    assert Topics("fs", "gw-9", "fs_rule").escalations == "$aws/rules/fs_rule/fs/gw-9/escalations"
    assert t.shadow("update/delta") == "$aws/things/gw-9/shadow/update/delta"
    assert t.jobs("start-next") == "$aws/things/gw-9/jobs/start-next"


def test_mqtt_escalation_gets_its_verdict(broker, cloud, request_for, tmp_path):
    transport = _transport(tmp_path, broker.port)
    try:
        request = request_for()
        assert len(request.to_bytes()) <= MAX_MESSAGE_BYTES
        verdict = transport.escalate(request)
        assert verdict.message_id == request.message_id and verdict.detections()[0].label == "person"
        assert cloud.escalation_topics == [f"framesieve/{THING}/escalations"]
    finally:
        transport.close()


def test_iot_core_over_mutual_tls_with_the_test_ca(broker, cloud, pki, request_for, tmp_path):
    cert, key = pki.root / f"{THING}.pem", pki.root / f"{THING}.key"
    transport = _transport(tmp_path, broker.tls_port, transport="iot-core", basic_ingest_rule="framesieve_escalations",
                           mqtt={"cert_file": str(cert), "key_file": str(key), "ca_file": str(pki.ca)})
    try:
        assert transport.name == "iot-core"
        request = request_for()
        assert transport.escalate(request).message_id == request.message_id
        assert cloud.escalation_topics == [f"$aws/rules/framesieve_escalations/framesieve/{THING}/escalations"]
    finally:
        transport.close()
    assf = broker.log.read_text()
    assert f"as {THING}" in assf and f"u'{THING}'" in assf  # client id and certificate CN = the thing name


def test_paho_over_tls_with_a_client_certificate(broker, cloud, pki, request_for, tmp_path):
    cert, key = pki.root / f"{THING}.pem", pki.root / f"{THING}.key"
    transport = _transport(tmp_path, broker.tls_port, mqtt={"tls": True, "ca_file": str(pki.ca),
                                                            "cert_file": str(cert), "key_file": str(key)})
    try:
        assert transport.escalate(request_for()).model == "teacher@test"
    finally:
        transport.close()


def test_no_verdict_in_time_is_an_error_the_edge_decides_on(broker, request_for, tmp_path):
    silent = CloudResponder(broker.port, answer=False, client_id="silent-cloud")
    transport = _transport(tmp_path, broker.port, verdict_timeout_s=0.3)
    try:
        with pytest.raises(TransportError, match="no verdict .* within 0.3 s"):
            transport.escalate(request_for())
        assert transport.timeouts == 1 and transport.link.spool.rows == 0  # the broker has it: not spooled
        wait_until(lambda: len(silent.escalations) == 1, 5, "the escalation at the cloud")
    finally:
        transport.close()
        silent.close()


def test_bad_verdicts_are_rejected_and_logged_and_the_real_one_still_counts(broker, request_for, tmp_path, caplog):
    transport = _transport(tmp_path, broker.port, verdict_timeout_s=5)
    verdicts = f"framesieve/{THING}/verdicts"
    request = request_for(frame_index=3)
    bad = [b"not json", b"[1, 2]", json.dumps({"v": 99, "type": "verdict"}).encode(),
           json.dumps({"v": 1, "type": "verdict", "message_id": request.message_id, "camera": "cam",
                       "frame_index": 3, "model": "m", "crops": [{"crop_id": 0, "detections": [
                           {"label": "person", "score": 7, "box": [0, 0, 1, 1]}]}]}).encode()]

    class Mischief(CloudResponder):
        def handle(self, topic, payload):  # garbage first, then a verdict for another frame, then the truth
            for junk in bad:
                self.client.publish(verdicts, junk, qos=1)
            wrong = json.loads(request.to_bytes())
            self.client.publish(verdicts, json.dumps({"v": 1, "type": "verdict", "message_id": wrong["message_id"],
                                                      "camera": "other", "frame_index": 3, "model": "m",
                                                      "crops": []}).encode(), qos=1)
            super().handle(topic, payload)

    cloud = Mischief(broker.port, client_id="mischief")
    try:
        with caplog.at_level(logging.WARNING, logger="edge_agent.escalation.mqtt"):
            verdict = transport.escalate(request)
        assert verdict.camera == "cam"
        assert transport.rejected == len(bad) + 1
        assert sum("rejected" in r.getMessage() for r in caplog.records) == len(bad) + 1
    finally:
        transport.close()
        cloud.close()


@pytest.mark.slow
def test_broker_down_spools_and_replays_when_it_returns(own_broker, request_for, tmp_path):
    own_broker.kill()
    transport = build_mqtt_transport(agent_config(tmp_path, own_broker.port))
    try:
        requests = [request_for(frame_index=i) for i in range(5)]
        for request in requests:
            with pytest.raises(TransportError, match="spooled"):
                transport.escalate(request)
        assert transport.link.spool.rows == 5
        own_broker.start()
        cloud = CloudResponder(own_broker.port)
        wait_until(lambda: transport.link.spool.rows == 0, 15, "the spool to drain")
        wait_until(lambda: len(set(cloud.escalations)) == 5, 5, "the escalations at the cloud")
        assert cloud.escalations[:5] == [r.message_id for r in requests]  # in order
        cloud.close()
    finally:
        transport.close()


def test_a_frame_too_big_for_one_message_is_shrunk(vtest_frames):
    huge = cv2.resize(vtest_frames[2], (3840, 2160), interpolation=cv2.INTER_CUBIC)
    request = build_request("cam", 1, 1.0, huge, [(0, 0, 3840, 2160)], "uncertain", Detections.empty())
    assert len(request.to_bytes()) <= MAX_MESSAGE_BYTES
