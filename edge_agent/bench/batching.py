"""Escalation latency, edge to verdict, with and without per-gateway batching, on a running cloud (the local
stack: `framesieve-cloud local --mqtt --gateway THING=SITE:CAM,...`): one gateway (this process, transport
mqtt) with live cameras on a looped clip, onboarding (every frame with motion goes to the cloud), run once per
`batch_window_ms`, the same seconds each; printed side by side. Latency is the transport's own clock from the
escalation handed to it to its verdict back, the batching window included."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np

from edge_agent.app import Agent
from edge_agent.config import AgentConfig


def gateway_config(host: str, port: int, thing: str, site: str, cameras: list[dict], window_ms: int, workdir: Path,
                   verdict_timeout_s: float, **extra) -> AgentConfig:
    """A bench gateway on the local stack's broker: its spool and events per window, no shadow, jobs or telemetry."""
    return AgentConfig.model_validate({
        "site": site, **extra, "cameras": cameras,
        "escalation": {"transport": "mqtt", "thing_name": thing, "verdict_timeout_s": verdict_timeout_s,
                       "batch_window_ms": window_ms, "mqtt": {"host": host, "port": port},
                       "spool": {"path": str(workdir / f"spool-{window_ms}.sqlite")}},
        "output": {"events_db": str(workdir / f"events-{window_ms}.sqlite")},
        "fleet": {"telemetry_interval_s": 0, "shadow": False, "jobs": False, "models_dir": str(workdir / "models")}})


def run_once(host: str, port: int, thing: str, site: str, cameras: list[str], clip: Path, fps: float,
             seconds: float, window_ms: int, workdir: Path) -> dict:
    live = [{"id": cam, "source": str(clip), "fps": fps, "realtime": True, "loop": True} for cam in cameras]
    config = gateway_config(host, port, thing, site, live, window_ms, workdir, 20, student_threads=1)
    agent = Agent(config)
    timer = threading.Timer(seconds, agent.stop)
    timer.start()
    try:
        summary = agent.run()
    finally:
        timer.cancel()
    transport = agent.transport
    lat = np.array(list(getattr(getattr(transport, "inner", transport), "latencies_s", [])), float) * 1000
    mqtt = summary.get("mqtt", {})
    return {"window_ms": window_ms, "escalated": summary["total"]["escalated"], "answered": len(lat),
            "cloud_failed": summary["total"]["cloud_failed"],
            "messages": mqtt.get("messages_up", summary["total"]["escalated"]),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None}


def run_batching_bench(host: str, port: int, thing: str, site: str, cameras: list[str], clip: Path,
                       fps: float = 1.0, seconds: float = 30.0, windows: tuple[int, ...] = (0, 250)) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="framesieve-batching-") as tmp:
        return [run_once(host, port, thing, site, cameras, clip, fps, seconds, w, Path(tmp)) for w in windows]


def format_batching(rows: list[dict]) -> str:
    lines = [f"{'batch_window_ms':>15} {'escalated':>9} {'answered':>8} {'failed':>6} {'messages up':>11} "
             f"{'p50 ms':>8} {'p95 ms':>8}"]
    for r in rows:
        lines.append(f"{r['window_ms']:>15} {r['escalated']:>9} {r['answered']:>8} {r['cloud_failed']:>6} "
                     f"{r['messages']:>11} {r['p50_ms'] if r['p50_ms'] is not None else '-':>8} "
                     f"{r['p95_ms'] if r['p95_ms'] is not None else '-':>8}")
    return "\n".join(lines)


def write_into_summary(rows: list[dict], summary_path: Path) -> dict:
    """The cost model's batching inputs, from the largest window measured, into a bench summary's `total`:
    escalations per message up, which is also per router invocation, per endpoint call and per verdict
    message (one of each per batch). The summary keeps what it was otherwise."""
    import json

    row = max(rows, key=lambda r: r["window_ms"])
    if not row["messages"] or not row["answered"]:
        raise ValueError(f"batch_window_ms {row['window_ms']}: no escalation was answered; nothing to write")
    per = round(row["escalated"] / row["messages"], 3)
    data = json.loads(summary_path.read_text())
    data["total"].update(images_per_endpoint_call=per, images_per_router_invocation=per,
                         images_per_verdict_message=per,
                         batching={"batch_window_ms": row["window_ms"], "escalations": row["escalated"],
                                   "messages": row["messages"], "p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"],
                                   "measured_by": "edge-agent bench-batching"})
    summary_path.write_text(json.dumps(data, indent=2) + "\n")
    return data["total"]["batching"]
