"""Frame events counted at every hop of a real-time run (not a test: a run of minutes). `framesieve-cloud local
--mqtt` and one `edge-agent run` playing vtest in real time, looping, on CAMERAS cameras at FPS, over the mqtt
transport; SIGINT after RUN_S seconds. Printed, one JSON object: the agent's sampled frames, the rows of its
event log, what its spool sent and still holds at stop (by kind; its stop line), the frame events seen on
`framesieve/+/events` by an independent subscriber, the events rule's own line (cloud/bridge.py) and the
dashboard's hour and day counts from the results store.
Run: `.venv/bin/python -m tests.cloud.events_hops RUN_S FPS CAMERAS [--specialization]`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from models.fetch import fetch_vtest
from models.teacher.build import ensure_teacher
from tests.cloud.test_local_and_bench import ROOT, _request, start_local, stop_local


def main(run_s: float, fps: float, cameras: int, specialization: bool) -> dict:
    import paho.mqtt.client as paho

    work = Path(tempfile.mkdtemp(prefix="events-hops-"))
    names = [f"cam{i}" for i in range(cameras)]
    proc, urls = start_local(work / "cloud", "--model", str(ensure_teacher()), "--mqtt",
                             "--gateway", f"gw-local=site-local:{','.join(names)}")
    port = int(urls["mqtt broker"].rsplit(":", 1)[1])
    seen: set[str] = set()
    lock = threading.Lock()

    def on_message(_c, _u, msg) -> None:
        body = json.loads(msg.payload)
        if body.get("type") != "specialization":
            with lock:
                seen.add(body["message_id"])

    monitor = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="events-hops-monitor")
    monitor.on_message = on_message
    monitor.on_connect = lambda client, *_a: client.subscribe("framesieve/+/events", qos=1)
    monitor.connect("127.0.0.1", port)
    monitor.loop_start()
    config = work / "gateway.yaml"
    config.write_text(json.dumps({
        "site": "site-local", "student_threads": 1,
        "cameras": [{"id": n, "source": str(fetch_vtest()), "fps": fps, "realtime": True, "loop": True}
                    for n in names],
        "escalation": {"transport": "mqtt", "thing_name": "gw-local", "verdict_timeout_s": 20,
                       "mqtt": {"host": "127.0.0.1", "port": port}, "spool": {"path": str(work / "spool.sqlite")}},
        "output": {"events_db": str(work / "events.sqlite")},
        "fleet": {"telemetry_interval_s": 2, "models_dir": str(work / "models")},
        **({"specialization": {"enabled": True, "records_dir": str(work / "records"), "min_records": 8,
                               "retrain_after_records": 40, "check_interval_s": 1}} if specialization else {})}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(run_s)
    agent.send_signal(signal.SIGINT)
    out, err = agent.communicate(timeout=300)
    summary = json.loads(out[out.index("{"):])
    stop = [json.loads(line) for line in err.splitlines() if line.startswith("{") and '"stop"' in line]
    with sqlite3.connect(work / "events.sqlite") as db:
        logged = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    with sqlite3.connect(work / "spool.sqlite") as db:
        left = dict(db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
    time.sleep(5)  # the last events through the broker and the rule
    base = urls["results API"].rsplit("/health", 1)[0]
    token = (work / "cloud" / "api-token").read_text().strip()
    fleet = _request(base + "/dashboard/fleet", token=token)[1]
    rule = [line for line in stop_local(proc).splitlines() if line.startswith("events rule")]
    monitor.loop_stop()
    mqtt = summary.get("mqtt", {})
    return {"run_s": run_s, "fps": fps, "cameras": cameras, "agent_sampled": summary["total"]["sampled"],
            "event_log_rows": logged, "spool_sent": mqtt.get("spool_sent"), "spool_left": mqtt.get("spool_left"),
            "spool_file_left": left, "stop_line": stop[-1]["msg"] if stop else None,
            "events_topic_seen": len(seen), "events_rule": rule[0] if rule else None,
            "dashboard": {c["camera"]: {"hour": c["hour"]["sampled"], "day": c["day"]["sampled"]}
                          for c in fleet.get("cameras", [])}}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(json.dumps(main(float(args[0]), float(args[1]), int(args[2]), "--specialization" in sys.argv), indent=1))
