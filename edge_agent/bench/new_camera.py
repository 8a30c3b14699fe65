"""`edge-agent bench CLIP --new-camera`: the agent's production path from a cold start on one clip.

The camera starts with no student of its own, so it onboards (every frame with motion to the cloud, still
scenes at their check interval, the teacher's answers kept as training records). The specialization loop
runs as on a gateway (the same `SpecializationLoop`: `models specialize` as a child process, the evidence
gate, the decision, the install, the health check on a live frame, the swap, the guard), except that the
clip waits while it trains: whenever the loop is due, the next frame is held until the run is decided. A
promoted student then decides the camera's frames, watched by its guard; a rollback sends the camera back
to onboarding. Every sampled frame's line carries its "phase" ("onboarding" or "specialized"); the summary
gives recall, precision and escalation per phase and over the whole run, against the teacher on every
frame, and beside them the generic student's own cascade on the same frames (onboarding off), for the
"never below the generic student at the same escalation" comparison.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

from edge_agent.app import Agent
from edge_agent.bench.metrics import escalation_fraction, presence_agrees
from edge_agent.bench.runner import Baseline, ReplaySource, agent_config, run_baseline, run_hybrid
from edge_agent.config import AgentConfig
from edge_agent.escalation.http import UrlTransport
from edge_agent.pipeline.sources import SampledFrame
from models.teacher.build import TEACHER_THRESHOLD

LABELS = ("person", "vehicle")


def presence(lines: list[dict], baseline: Baseline) -> dict:
    """Frame-level presence against the teacher per label: counts, and recall/precision (None: "n/a", no
    frame to recall or none reported)."""
    out = {}
    for label in LABELS:
        ref = said = both = 0
        for ln in lines:
            truth = len(baseline.detections[ln["frame_index"]].with_label(label)
                        .with_min_score(TEACHER_THRESHOLD)) > 0
            says = any(d["label"] == label for d in ln["detections"])
            ref, said, both = ref + truth, said + says, both + (truth and says)
        out[label] = {"frames_present": ref, "frames_reported": said, "hits": both,
                      "presence_recall": round(both / ref, 4) if ref else None,
                      "presence_precision": round(both / said, 4) if said else None}
    return out


def figures(lines: list[dict], baseline: Baseline, fps: float) -> dict:
    return {"frames": len(lines), "duration_s": round(len(lines) / fps, 1),
            "escalated": sum(ln["escalated"] for ln in lines),
            "escalation_fraction": round(escalation_fraction(lines), 4) if lines else None,
            "labels": presence(lines, baseline)}


def new_camera_config(camera: str, clip: Path, fps: float, url: str, out_dir: Path, student: Path,
                      overrides: dict | None = None) -> AgentConfig:
    """The agent config a new camera gets: every default, specialization on, its state under `out_dir`;
    `overrides` (an agent config's mapping) may change the specialization settings or the camera's."""
    base = agent_config(camera, clip, fps, url, onboarding=True).model_dump()
    raw = {**base, "student": str(student),
           "fleet": {**base["fleet"], "models_dir": str(out_dir / "models")},
           "specialization": {**base["specialization"], "enabled": True, "records_dir": str(out_dir / "records"),
                              "interval_s": 0.0}}
    for key, value in (overrides or {}).items():
        if key == "specialization":
            raw["specialization"].update(value)
        elif key == "camera":
            raw["cameras"][0].update(value)
    return AgentConfig.model_validate(raw)


def run_new_camera(clip: Path, fps: float, url: str, out_dir: Path, student: Path,
                   overrides: dict | None = None, baseline: Baseline | None = None,
                   with_generic: bool = True) -> dict:
    for stale in ("models", "records"):  # a cold start: nothing from an earlier run
        shutil.rmtree(out_dir / stale, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    baseline = baseline or run_baseline(clip, fps)
    camera = clip.stem
    frames = [SampledFrame(camera, f.frame_index, f.pts_s, f.image, f.wall_time)
              for f in (baseline.frames[k] for k in sorted(baseline.frames))]
    config = new_camera_config(camera, clip, fps, url, out_dir, student, overrides)
    jsonl = out_dir / f"{camera}.agent.jsonl"
    db = out_dir / f"{camera}.events.sqlite"
    for path in (jsonl, db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    # the agent wraps the transport in its collector itself (specialization.enabled), as on a gateway
    agent = Agent(config, transport=UrlTransport(url), jsonl=jsonl, events_db=db,
                  sources=[ReplaySource(camera, [], fps)])
    loop = agent.specialization
    assert loop is not None  # specialization.enabled
    loop.counts[camera] = 0
    state = agent.cameras[camera]
    phases: list[str] = []
    runs: list[dict] = []
    try:
        for frame in frames:
            if (why := loop.due(camera)) is not None:  # the clip waits while the camera's run trains
                runs.append({"at_s": frame.pts_s, "trigger": why, **_run_synchronously(agent, loop, camera, frame)})
            agent.run_commands([frame])
            phase = "onboarding" if state.cascade.onboarding.active else "specialized"
            phases += [phase] * len(agent.process([frame]))
    finally:
        agent.stop_event.set()
        agent.close()
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    with (out_dir / f"{camera}.jsonl").open("w") as f:
        for line, phase in zip(lines, phases, strict=True):
            f.write(json.dumps({**line, "phase": phase}) + "\n")
    tagged = [{**ln, "phase": ph} for ln, ph in zip(lines, phases, strict=True)]
    result: dict = {
        "clip": clip.name, "fps": fps, "frames": len(lines),
        "overall": figures(lines, baseline, fps),
        "phases": {ph: figures([ln for ln in tagged if ln["phase"] == ph], baseline, fps)
                   for ph in ("onboarding", "specialized")},
        "runs": runs, "promotions": loop.promotions, "rollbacks": agent.student_rollbacks,
        "specialization": config.specialization.model_dump(),
        "timeline": [{"pts_s": ln["pts_s"], "phase": ln["phase"], "escalated": ln["escalated"],
                      "person_ok": presence_agrees(ln, baseline, "person")} for ln in tagged],
        "jsonl": str(out_dir / f"{camera}.jsonl"),
        "records": len(list((out_dir / "records" / camera).glob("*.json"))),
    }
    first = next((k for k, ph in enumerate(phases) if ph == "specialized"), None)
    result["promoted_at_s"] = round(lines[first]["pts_s"], 1) if first is not None else None
    if with_generic:  # the generic student's cascade on the same frames, onboarding off
        cfg = agent_config(camera, clip, fps, url).model_copy(update={"student": str(student)})
        generic = run_hybrid(cfg, out_dir, f"{camera}.generic", sources=[ReplaySource(camera, frames, fps)])
        result["generic"] = figures(generic.lines, baseline, fps)
    return result


def _run_synchronously(agent: Agent, loop, camera: str, frame) -> dict:
    """One loop run (train, decide, install, health check, swap) while the clip waits at `frame`: the swap
    checks the student on this camera's frame, as it would on a live one."""
    outcome: dict = {}

    def run() -> None:
        outcome.update(loop.run_once(camera, wait_install_s=120.0))

    worker = threading.Thread(target=run, name="new-camera-specialize")
    worker.start()
    while worker.is_alive():
        agent.run_commands([frame])
        worker.join(0.2)
    agent.run_commands([frame])
    return outcome


def summary_for_cost(result: dict, baseline: Baseline) -> dict:
    """What `edge-agent cost` reads: the whole run's totals, onboarding as the warm-up and the deployed
    phase's fraction as the steady state (onboarding's own when nothing was promoted)."""
    onboarding, specialized = result["phases"]["onboarding"], result["phases"]["specialized"]
    steady = specialized if specialized["frames"] else onboarding
    return {"escalation_fraction": onboarding["escalation_fraction"] or 0.0,
            "hours": round(onboarding["frames"] / result["fps"] / 3600, 4),
            "steady_escalation_fraction": steady["escalation_fraction"] or 0.0}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _r(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def report_section(results: dict[str, dict]) -> str:
    """The new-camera part of report.md: per clip, per phase and overall, beside the generic student."""
    lines = ["## New camera (`--new-camera`): onboarding, promotion on evidence, guard", "",
             "Against the teacher on every sampled frame; recall n/a where the teacher saw nothing to recall.", "",
             "| clip | phase | frames | escalated | person recall | person precision | vehicle recall |",
             "|---|---|---|---|---|---|---|"]
    for clip, r in results.items():
        rows = [("onboarding", r["phases"]["onboarding"]), ("specialized", r["phases"]["specialized"]),
                ("**whole run**", r["overall"])]
        if "generic" in r:
            rows.append(("generic student, onboarding off", r["generic"]))
        for name, f in rows:
            if not f["frames"]:
                lines.append(f"| {clip} | {name} | 0 | | | | |")
                continue
            p, v = f["labels"]["person"], f["labels"]["vehicle"]
            lines.append(f"| {clip} | {name} | {f['frames']} | {_pct(f['escalation_fraction'])} | "
                         f"{_r(p['presence_recall'])} ({p['hits']}/{p['frames_present']}) | "
                         f"{_r(p['presence_precision'])} | {_r(v['presence_recall'])} |")
    lines.append("")
    for clip, r in results.items():
        promoted = f"promoted at {r['promoted_at_s']} s" if r["promoted_at_s"] is not None else "never promoted"
        lines.append(f"- {clip}: {r['records']} training records, {len(r['runs'])} loop run(s), {promoted}, "
                     f"{r['rollbacks']} rollback(s).")
        for run in r["runs"]:
            lines.append(f"  - at {run['at_s']:.0f} s ({run['trigger']}): {run.get('outcome')}: {run.get('why')}")
    return "\n".join(lines) + "\n"


def plot_new_camera(results: dict[str, dict], path: Path) -> None:
    """specialization.png for --new-camera: per clip, frame by frame over the whole run, the phase (lane),
    escalations (blue) and person presence that differs from the teacher (red x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 1.6 * len(results) + 0.9), squeeze=False)
    lanes = ("onboarding", "specialized")
    for ax, (clip, r) in zip(axes[:, 0], results.items(), strict=True):
        for y, phase in enumerate(lanes):
            rows = [m for m in r["timeline"] if m["phase"] == phase]
            ax.scatter([m["pts_s"] for m in rows], [y] * len(rows), s=16, marker="s",
                       c=["tab:blue" if m["escalated"] else "0.8" for m in rows])
            wrong = [m["pts_s"] for m in rows if not m["person_ok"]]
            ax.plot(wrong, [y] * len(wrong), "x", color="tab:red", ms=7, mew=2)
        for run in r["runs"]:
            ax.axvline(run["at_s"], color="k", ls=":", lw=1)
        ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
        ax.set_ylim(-0.7, len(lanes) - 0.3)
        o = r["overall"]
        ax.set_title(f"{clip}: whole run escalated {_pct(o['escalation_fraction'])}, person recall "
                     f"{_r(o['labels']['person']['presence_recall'])}", fontsize=9)
    axes[-1, 0].set_xlabel("media time (s)\nblue: escalated   grey: decided at the edge or carried   red x: person "
                           "presence differs from the teacher   dotted: a loop run", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
