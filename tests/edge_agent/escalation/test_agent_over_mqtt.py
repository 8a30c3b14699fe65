"""The whole agent over a real broker: the broker killed and restarted mid-stream, the agent itself
killed with SIGKILL and restarted, bad messages on every topic it listens to. Nothing is lost: every
escalation and every frame event reaches the cloud exactly once after deduplication by message id."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from edge_agent.app import Agent
from tests.edge_agent.aws_side import CloudResponder, PacedSource, wait_until
from tests.edge_agent.conftest import THING, agent_config

pytestmark = pytest.mark.slow  # every test here runs real services, clips or training


def _start(agent: Agent) -> threading.Thread:
    thread = threading.Thread(target=agent.run, name="agent-under-test", daemon=True)
    thread.start()
    return thread


def _record_escalations(agent: Agent) -> list[str]:
    sent: list[str] = []
    original = agent.transport.escalate

    def escalate(request):
        sent.append(request.message_id)
        return original(request)

    agent.transport.escalate = escalate
    return sent


def test_broker_killed_and_restarted_mid_stream_loses_nothing(own_broker, vtest_frames, tmp_path):
    cloud = CloudResponder(own_broker.port, persistent=True)  # its session outlives the broker's restart
    connected_at = time.time()
    config = agent_config(tmp_path, own_broker.port, verdict_timeout_s=1.0, fleet={"shadow": False, "jobs": False})
    agent = Agent(config, sources=[PacedSource("cam", vtest_frames, count=10_000, interval_s=0.05)])
    sent = _record_escalations(agent)
    thread = _start(agent)
    try:
        wait_until(lambda: len(cloud.events) >= 10, 20, "events before the outage")
        # Mosquitto saves sessions every second or two; the cloud's must be on disk before the crash (IoT
        # Core's rules engine needs no such care: it never goes away).
        wait_until(lambda: own_broker.saved_since(connected_at + 0.01), 10, "the broker to save the sessions")
        own_broker.kill()
        down_at = len(sent)
        wait_until(lambda: len(sent) >= down_at + 5, 20, "escalations during the outage")
        assert agent.link.spool.rows > 0
        own_broker.start()
        wait_until(lambda: agent.link.connection.connected, 15, "the agent to reconnect")
        back_at = len(sent)
        wait_until(lambda: len(sent) >= back_at + 5 and agent.link.spool.rows == 0, 20, "the spool to replay")
    finally:
        agent.stop()
        thread.join(30)
    summary = agent.summary()["total"]
    wait_until(lambda: set(cloud.escalations) >= set(sent), 10, "every escalation at the cloud")
    wait_until(lambda: len({e.message_id for e in cloud.events}) == summary["sampled"], 10, "every event")
    cloud.close()
    assert len(set(sent)) == len(sent) and set(cloud.escalations) == set(sent)  # exactly once after dedup
    assert summary["cloud_failed"] >= 5 and summary["escalated"] >= 5
    frames = sorted({e.frame_index for e in cloud.events})
    assert frames == list(range(summary["sampled"]))  # every sampled frame's event, none twice after dedup
    print(f"broker restart: {len(sent)} escalations ({summary['cloud_failed']} decided at the edge), "
          f"{summary['sampled']} events; duplicates before dedup: {len(cloud.escalations) - len(sent)} escalations,"
          f" {len(cloud.events) - summary['sampled']} events")


def _spool_ids(path) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT kind, message_id FROM outbox ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the agent has created the file but not its table yet
        return []


def _run_cli(config_path, log_path):
    with open(log_path, "w") as log_file:
        return subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config_path)],
                                stdout=subprocess.DEVNULL, stderr=log_file)


def test_agent_sigkilled_with_a_full_spool_replays_it_after_restart(own_broker, vtest_path, tmp_path):
    spool = tmp_path / "spool.sqlite"

    def write_config(name: str, events_db: str) -> object:
        path = tmp_path / name
        path.write_text(f"""
cameras:
  - {{id: cam, source: '{vtest_path}', fps: 10, cascade: {{audit_fraction: 1.0}}}}
escalation:
  transport: mqtt
  thing_name: {THING}
  verdict_timeout_s: 2.0
  mqtt: {{host: 127.0.0.1, port: {own_broker.port}, publish_timeout_s: 1.0}}
  spool: {{path: '{spool}', replay_rate_per_s: 100}}
output: {{events_db: '{tmp_path / events_db}'}}
fleet: {{shadow: false, jobs: false, telemetry_interval_s: 0}}
""")
        return path

    own_broker.kill()  # the site's uplink is down: everything goes to the spool
    first = _run_cli(write_config("a.yaml", "events-a.sqlite"), tmp_path / "a.log")
    try:
        wait_until(lambda: spool.exists() and len(_spool_ids(spool)) >= 40, 60, "the spool to fill")
    finally:
        first.kill()  # SIGKILL: no clean shutdown, no flush
        first.wait(10)
    at_kill = _spool_ids(spool)
    with sqlite3.connect(tmp_path / "events-a.sqlite") as db:
        logged = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    spooled_events = sum(kind == "event" for kind, _ in at_kill)
    assert logged <= spooled_events <= logged + 1  # every locally logged frame is in the spool

    own_broker.start()
    cloud = CloudResponder(own_broker.port)
    second = _run_cli(write_config("b.yaml", "events-b.sqlite"), tmp_path / "b.log")
    started = time.monotonic()
    try:
        expected = {mid for _, mid in at_kill}
        wait_until(lambda: expected <= set(cloud.escalations) | {e.message_id for e in cloud.events}, 60,
                   "the spool from before the kill at the cloud")
        replayed_s = time.monotonic() - started
    finally:
        second.terminate()
        second.wait(30)
    cloud.close()
    assert second.returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "b.log").read_text().splitlines() if line.startswith("{")]
    assert any("spool" in ln["msg"] and "from before" in ln["msg"] for ln in lines), "no JSON log of the replay"
    print(f"kill -9: {len(at_kill)} spooled messages replayed within {replayed_s:.1f} s of the restart "
          f"(process start included)")


def test_bad_messages_on_every_topic_are_rejected_and_the_agent_keeps_running(broker, vtest_frames, tmp_path,
                                                                              caplog):
    cloud = CloudResponder(broker.port, client_id="cloud-bad-msgs")
    agent = Agent(agent_config(tmp_path, broker.port, thing="gw-bad"),
                  sources=[PacedSource("cam", vtest_frames, count=10_000, interval_s=0.05)])
    thread = _start(agent)
    base = "$aws/things/gw-bad"
    junk = [
        ("framesieve/gw-bad/verdicts", b"\xff\xfe not json"),
        ("framesieve/gw-bad/verdicts", json.dumps({"v": 1, "type": "verdict"}).encode()),
        (f"{base}/shadow/update/delta", b"{{{"),
        (f"{base}/shadow/update/delta", json.dumps({"state": "fps=1000", "version": 3}).encode()),
        (f"{base}/shadow/get/accepted", json.dumps([1, 2, 3]).encode()),
        (f"{base}/jobs/notify-next", b"null"),
        (f"{base}/jobs/start-next/accepted", json.dumps({"execution": {"jobId": "../../#"}}).encode()),
        (f"{base}/jobs/start-next/accepted", b"<xml/>"),
    ]
    try:
        with caplog.at_level(logging.WARNING):
            wait_until(lambda: len(cloud.events) >= 5, 20, "the agent to run")
            for topic, payload in junk:
                cloud.client.publish(topic, payload, qos=1)
            before = agent.summary()["total"]["sampled"]
            fleet = agent.fleet
            wait_until(lambda: agent.transport.rejected >= 2 and fleet.shadow.rejected >= 3
                       and fleet.jobs.rejected >= 3, 10, "every bad message to be rejected")
            wait_until(lambda: agent.summary()["total"]["sampled"] >= before + 10, 20, "frames after the junk")
    finally:
        agent.stop()
        thread.join(30)
        cloud.close()
    assert not thread.is_alive() and agent.errors == 0
    assert agent.link.connection.handler_errors == 0  # rejected by the handlers, not by crashing them
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) >= len(junk)
