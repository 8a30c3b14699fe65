"""A camera's specialization steps reach the operator dashboard. Produced by the agent's own code paths (the
specialization loop's attempt and its verdict; the promoted student installed through the agent's port,
health-checked on a real vtest frame), queued in the gateway's spool, published on its events topic to a
real Mosquitto, taken into the results store by the events rule's stand-in (cloud/bridge.py, the code the
ingest Lambda runs) and served by the dashboard's JSON API. The trainer is a child process that writes the
decision a short collection gets ("collect": too little evidence, nothing trained), so no training runs; the
guard's rollback is reported by the same reporter (test_camera_students.py checks it on a real run)."""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import threading
import time
from pathlib import Path

from cloud.api import start_in_thread
from cloud.bridge import IotRuleBridge
from cloud.router.config import RouterConfig
from cloud.router.service import Router
from cloud.stores import open_store
from contracts.registry import Registration
from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.pipeline.sources import SampledFrame
from edge_agent.specialization.loop import SpecializationLoop
from models.paths import CENTERNET_STUDENT_MANIFEST
from tests.decisions import decision
from tests.edge_agent.aws_side import PacedSource, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s" * 24
WHY = "too little evidence: keep collecting (person present in 3 held-back frames, 30 needed)"
TRAINER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from tests.decisions import decision
out = Path(sys.argv[sys.argv.index("--out") + 1])
decision("collect").model_copy(update={{"why": {WHY!r}}}).save(out / "decision.json")
"""


def _api(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_attempt_verdict_and_promotion_reach_the_dashboard_api(own_broker, tmp_path, vtest_every_2s):
    store = open_store(f"sqlite://{tmp_path / 'results.sqlite'}")
    store.register_gateway(Registration("gw-spec", "site-t", ("plaza",)))
    bridge = IotRuleBridge(Router(RouterConfig(store_url="unused"), store), own_broker.port)
    config = AgentConfig.model_validate({
        "site": "site-t",
        "cameras": [{"id": "plaza", "source": "injected", "onboarding": {"enabled": False}}],
        "escalation": {"transport": "mqtt", "thing_name": "gw-spec",
                       "mqtt": {"host": "127.0.0.1", "port": own_broker.port, "publish_timeout_s": 2.0},
                       "spool": {"path": str(tmp_path / "spool.sqlite"), "replay_rate_per_s": 100.0}},
        "output": {"events_db": str(tmp_path / "events.sqlite")},
        "fleet": {"models_dir": str(tmp_path / "models"), "telemetry_interval_s": 0},
        "specialization": {"records_dir": str(tmp_path / "records")}})
    agent = Agent(config, sources=[PacedSource("plaza", [], 0)])
    server, port = start_in_thread(store, token=TOKEN)
    try:
        (tmp_path / "trainer.py").write_text(TRAINER)
        loop = SpecializationLoop(agent, config.specialization, command=[sys.executable, str(tmp_path / "trainer.py")])
        assert loop.run_once("plaza", why="200 new records") == {"outcome": "collecting", "why": WHY}

        # a promoted challenger, installed through the agent's port and checked on a live frame
        folder = tmp_path / "challenger"
        shutil.copytree(CENTERNET_STUDENT_MANIFEST.parent, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["training"]["specialization"] = {"camera": "plaza"}
        manifest["version"] = "plaza-challenger-1"
        (folder / "manifest.json").write_text(json.dumps(manifest))
        promoted = decision("promote", camera="plaza")
        refused: list[str | None] = []
        install = threading.Thread(target=lambda: refused.append(
            loop.install("plaza", folder / "manifest.json", promoted, wait_s=30)))
        install.start()
        while install.is_alive():
            agent.run_commands([SampledFrame("plaza", 0, 0.0, vtest_every_2s[0], time.time())])
            time.sleep(0.05)
        assert refused == [None] and agent.cameras["plaza"].own_student is not None
        assert [s.kind for s in agent.steps.recent] == ["attempt", "collect", "promotion"]

        history: list[dict] = []

        def arrived() -> bool:
            nonlocal history
            status, body = _api(port, "/dashboard/cameras/plaza")
            history = body.get("specialization", []) if status == 200 else []
            return len(history) >= 3

        wait_until(arrived, 15, "three specialization steps served by the API")
        assert [(h["kind"], h["outcome"], h["thing"]) for h in history] == [
            ("promotion", "promoted", "gw-spec"), ("collect", "collecting", "gw-spec"),
            ("attempt", "training", "gw-spec")]
        assert history[0]["reason"] == promoted.why and history[0]["version"] == "plaza-challenger-1"
        assert history[1]["reason"] == WHY
        assert history[2]["reason"].startswith("200 new records; training from ")
        assert history[0]["t_s"] >= history[1]["t_s"] >= history[2]["t_s"]
        assert len(bridge.specialization_events) == 3 and bridge.frame_events == set()  # not counted as frames
        assert store.event_buckets("plaza", 0, time.time() + 60) == []
    finally:
        server.stop()
        agent.close()
        bridge.close()
        store.close()
