"""`edge-agent models status --config FILE`: per camera, what the specialization loop has and did, read
from disk (works whether the agent runs or not): the student the camera runs (or that it is onboarding),
its rollback limits, bands and guard, its training records, the evidence its last decision counted ("too
little evidence: keep collecting" and what is missing) and the last attempts with their reasons."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.specialization.loop import record_files
from edge_agent.students.store import camera_store
from models.exceptions import ModelError
from models.student.decision import Decision


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
        history = state.get(cam.id, {}).get("history", [])
        out[cam.id] = {
            "onboarding": bool(cam.onboarding.enabled and active is None and not cam.student),
            "evidence": _last_evidence(history),
            "student": student or (cam.student and f"configured: {cam.student}") or "the agent's student",
            "limits": extra.get("limits"), "bands": extra.get("bands"),
            "since": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(extra["t_s"])) if "t_s" in extra else None,
            "records": records,
            "warmup": bool(s.enabled and active is None and records < s.warmup_records),
            "history": history}
    return out


def _last_evidence(history: list[dict]) -> dict | None:
    """The evidence the camera's last decision counted (from its decision.json), if any."""
    for entry in reversed(history):
        run = entry.get("run")
        if run and (Path(run) / "decision.json").is_file():
            try:
                decision = Decision.load(Path(run) / "decision.json")
            except ModelError:
                return None
            return {"verdict": decision.verdict, **decision.evidence.model_dump()}
    return None


def format_status(status: dict[str, dict], last: int = 3) -> str:
    lines = []
    for camera, c in status.items():
        lines.append(f"camera {camera}: " + ("onboarding (the cloud decides every frame with motion)"
                                             if c["onboarding"] else f"runs {c['student']}")
                     + (f" since {c['since']} UTC" if c["since"] else ""))
        if (e := c["evidence"]) is not None:
            counts = ", ".join(f"{label} present {v['present']} / absent {v['absent']}"
                               for label, v in e["labels"].items())
            lines.append(f"  evidence ({e['held_back']} held-back frames over {e['span_s']:.0f} s): {counts}")
            if e["missing"]:
                lines.append("  too little evidence: keep collecting (" + "; ".join(e["missing"]) + ")")
        if c["limits"]:
            limits = c["limits"]
            shares = [f"{k} {limits[k]:.0%}" for k in ("max_escalation", "max_audit_disagreement") if k in limits]
            if shares:
                lines.append(f"  rolled back above: {', '.join(shares)}")
            if limits.get("recall_threshold"):
                lines.append(f"  guard: audits {limits.get('audit_fraction') or 0:.1%} of its frames; "
                             f"{'/'.join(limits.get('recall_labels', []))} recall test alarms at "
                             f"{limits['recall_threshold']} (a miss adds {limits.get('recall_weight')}, a hit takes 1)")
        if c["bands"]:
            lines.append(f"  its bands: accept {c['bands']['accept']} / reject {c['bands']['reject']}")
        lines.append(f"  training records: {c['records']}" + (" (warming up: auditing more)" if c["warmup"] else ""))
        for h in c["history"][-last:]:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h["t_s"]))
            lines.append(f"  {when} UTC {h['outcome']}: {h['why']}")
        if not c["history"]:
            lines.append("  no specialization attempt yet")
    return "\n".join(lines)
