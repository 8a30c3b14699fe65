"""Frame events a gateway could not send before it stopped are not lost, and its counts say where they are:
`edge-agent run` stopping with its uplink down says on its stop line (and in its summary's `spool_left`) how
many events it still spools; its next start sends them first, through a real Mosquitto, to the events rule
(cloud/bridge.py) and into the results store the dashboard reads, each counted once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cloud.bridge import IotRuleBridge
from cloud.router.config import RouterConfig
from cloud.router.service import Router
from cloud.stores import open_store
from contracts.registry import Registration
from tests.edge_agent.aws_side import wait_until

ROOT = Path(__file__).resolve().parents[3]


def _run(config: Path) -> tuple[dict, str, list[dict]]:
    """`edge-agent run` to the end of its clip: its summary, the message of its stop line, its JSON log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
    done = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    stops = [line for line in lines if line.get("event") == "stop"]
    return json.loads(done.stdout[done.stdout.index("{"):]), stops[-1]["msg"], lines


def _sampled(store) -> int:
    return sum(row["sampled"] for row in store.event_buckets("plaza", time.time() - 3600, time.time() + 60))


def test_events_spooled_at_stop_are_reported_then_reach_the_store_at_the_next_start(own_broker, vtest_path, tmp_path):
    config = tmp_path / "gateway.yaml"
    # 20 frames of vtest (0.25 fps); the cloud is never asked (no onboarding, audit or budget): events only
    config.write_text(json.dumps({
        "site": "site-t",
        "cameras": [{"id": "plaza", "source": str(vtest_path), "fps": 0.25, "onboarding": {"enabled": False},
                     "cascade": {"audit_fraction": 0, "budget_per_hour": 0}}],
        "escalation": {"transport": "mqtt", "thing_name": "gw-ev", "verdict_timeout_s": 2,
                       "mqtt": {"host": "127.0.0.1", "port": own_broker.port, "publish_timeout_s": 1.0},
                       "spool": {"path": str(tmp_path / "spool.sqlite"), "replay_rate_per_s": 100.0}},
        "output": {"events_db": str(tmp_path / "events.sqlite")},
        "fleet": {"shadow": False, "jobs": False, "telemetry_interval_s": 0}}))
    store = open_store(f"sqlite://{tmp_path / 'results.sqlite'}")
    store.register_gateway(Registration("gw-ev", "site-t", ("plaza",)))

    own_broker.kill()  # the uplink is down for the whole first run
    first, stop_line, lines = _run(config)
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        logged = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        spooled = {mid for (mid,) in db.execute("SELECT message_id FROM outbox WHERE kind = 'event'")}
    sampled = first["total"]["sampled"]
    assert sampled == logged == len(spooled) == 20, (first["total"], logged)
    assert first["mqtt"]["spool_left"] == {"event": sampled} and first["mqtt"]["spool_sent"] == 0
    assert stop_line.endswith(f"; {sampled} event(s) still spooled for the next start"), stop_line
    left = [line for line in lines if line.get("event") == "spool_left"]
    assert len(left) == 1 and left[0]["spool_left"] == {"event": sampled} and "(not connected)" in left[0]["msg"]
    assert str(tmp_path / "spool.sqlite") in left[0]["msg"] and "sent first at the next start" in left[0]["msg"]

    own_broker.start()
    bridge = IotRuleBridge(Router(RouterConfig(store_url="unused"), store), own_broker.port)
    try:
        assert bridge.client.connected.wait(10)
        assert _sampled(store) == 0  # nothing reached the cloud in the first run
        second, stop_line, lines = _run(config)  # the next start: the same spool file, the clip again
        wait_until(lambda: _sampled(store) == 2 * sampled, 15, f"{2 * sampled} events counted in the store")
        assert second["mqtt"]["spool_left"] == {} and second["mqtt"]["spool_sent"] == 2 * sampled
        assert stop_line.endswith("; nothing left in the spool"), stop_line
        assert not [line for line in lines if line.get("event") == "spool_left"]
        assert spooled <= bridge.frame_events and len(bridge.frame_events) == 2 * sampled
        wait_until(lambda: bridge.ingested.get("stored") == 2 * sampled, 5, "every event stored once")
        assert bridge.ingested_by_topic == {"events": {"stored": 2 * sampled}}
        assert bridge.summary_line().endswith(f"{2 * sampled} frame event(s) received (distinct message ids), 0 "
                                              f"specialization step(s); into the store: events stored {2 * sampled}")
    finally:
        bridge.close()
        store.close()
