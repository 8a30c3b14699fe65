"""`edge-agent models status --config FILE`: per camera, what the specialization loop has and did, read
from disk (works whether the agent runs or not): the student the camera runs and its rollback limits and
bands, its training records and warm-up, and the last attempts with their reasons."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.specialization.loop import record_files
from edge_agent.students.store import camera_store


def camera_status(config: AgentConfig) -> dict[str, dict]:
    s = config.specialization
    try:
        state = json.loads((Path(config.fleet.models_dir).expanduser() / "cameras" / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    out = {}
    for cam in config.cameras:
        store = camera_store(config.fleet.models_dir, cam.id)
        active, extra = store.active_manifest(), store.active_extra()
        records = len(record_files(Path(s.records_dir).expanduser() / cam.id))
        student = None
        if active is not None:
            try:
                student = json.loads(active.read_text()).get("version")
            except (OSError, ValueError):
                student = f"unreadable manifest {active}"
        out[cam.id] = {
            "student": student or (cam.student and f"configured: {cam.student}") or "the agent's student",
            "limits": extra.get("limits"), "bands": extra.get("bands"),
            "since": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(extra["t_s"])) if "t_s" in extra else None,
            "records": records,
            "warmup": bool(s.enabled and active is None and records < s.warmup_records),
            "history": state.get(cam.id, {}).get("history", [])}
    return out


def format_status(status: dict[str, dict], last: int = 3) -> str:
    lines = []
    for camera, c in status.items():
        lines.append(f"camera {camera}: runs {c['student']}" + (f" since {c['since']} UTC" if c["since"] else ""))
        if c["limits"]:
            lines.append(f"  rolled back above: {', '.join(f'{k} {v:.0%}' for k, v in c['limits'].items())}")
        if c["bands"]:
            lines.append(f"  its bands: accept {c['bands']['accept']} / reject {c['bands']['reject']}")
        lines.append(f"  training records: {c['records']}" + (" (warming up: auditing more)" if c["warmup"] else ""))
        for h in c["history"][-last:]:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h["t_s"]))
            lines.append(f"  {when} UTC {h['outcome']}: {h['why']}")
        if not c["history"]:
            lines.append("  no specialization attempt yet")
    return "\n".join(lines)
