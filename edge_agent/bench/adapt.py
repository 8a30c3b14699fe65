"""`edge-agent bench CLIP --adapt-fraction F`: per-camera specialization, measured.

The first fraction F of the clip is the adaptation phase: the agent runs with the generic student and
a warm-up policy (a share of confident frames escalated too), and keeps the teacher's answers to what
it escalated, through the local inference server. It then specializes (fine-tune + champion /
challenger). The rest of the clip is the evaluation phase, run with the generic student and with the
specialized one: only the teacher's answers to escalated frames are ever trained on, never the
baseline's labels for frames the agent did not send.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.bench.metrics import escalation_fraction, label_agreement, presence_agrees
from edge_agent.bench.runner import Baseline, ReplaySource, agent_config, run_baseline, run_hybrid
from edge_agent.escalation.collect import CollectingTransport
from edge_agent.escalation.http import UrlTransport
from models.student.defaults import DEFAULTS
from models.student.specialize import specialize


def _phase(lines: list[dict], phase: str) -> list[dict]:
    return [{**ln, "phase": phase} for ln in lines]


def _marks(lines: list[dict], baseline: Baseline, phase: str, student: str) -> list[dict]:
    """Per frame, for the plot: escalated, and whether its person presence agrees with the teacher."""
    return [{"phase": phase, "student": student, "pts_s": ln["pts_s"], "escalated": ln["escalated"],
             "person_ok": presence_agrees(ln, baseline, "person")} for ln in lines]


def _figures(lines: list[dict], baseline: Baseline) -> dict:
    labels = label_agreement(lines, baseline) if lines else {}
    return {"frames": len(lines), "escalation_fraction": round(escalation_fraction(lines), 4),
            "person": labels.get("person", {}), "vehicle": labels.get("vehicle", {})}


def run_adapt(clip: Path, fps: float, fraction: float, url: str, out_dir: Path,
              generic: Path, warmup_audit: float = 1.0, epochs: int = DEFAULTS.epochs,
              baseline: Baseline | None = None) -> dict:
    if not 0 < fraction < 1:
        raise ValueError(f"--adapt-fraction must be between 0 and 1, got {fraction}")
    baseline = baseline or run_baseline(clip, fps)
    frames = [baseline.frames[k] for k in sorted(baseline.frames)]
    cut = frames[0].pts_s + fraction * baseline.duration_s
    adapt, evaluate = [f for f in frames if f.pts_s < cut], [f for f in frames if f.pts_s >= cut]
    camera = clip.stem
    records = out_dir / "training-records"
    warm = {"audit_fraction": warmup_audit}
    config = agent_config(camera, clip, fps, url, warm).model_copy(update={"student": str(generic)})
    collector = CollectingTransport(UrlTransport(url), records)
    adapt_run = run_hybrid(config, out_dir, f"{camera}.adapt", transport=collector,
                           sources=[ReplaySource(camera, adapt, fps)])
    specialized_dir = out_dir / f"student-{camera}"
    # A research mode: the evidence gate is off (a short clip never holds enough), the bound still chooses.
    decision = specialize(camera, records, generic, specialized_dir, epochs=epochs, min_records=4, min_present=1,
                          min_absent=0, min_span_s=0, progress=False)
    results = {}
    bands = decision.bands.model_dump() if decision.bands else None  # its own operating point, as the loop sets it
    own = {"labels": {label: bands for label in ("person", "vehicle")}} if bands else None
    challenger = specialized_dir / "manifest.json"
    trained = [("specialized", challenger, own)] if challenger.is_file() else []
    for name, manifest, cascade in [("generic", generic, None), *trained]:
        cfg = agent_config(camera, clip, fps, url, cascade).model_copy(update={"student": str(manifest)})
        run = run_hybrid(cfg, out_dir, f"{camera}.eval-{name}", sources=[ReplaySource(camera, evaluate, fps)])
        results[name] = _figures(run.lines, baseline)
        results[name]["lines"] = run.lines
    deployed = "specialized" if decision.promote else "generic"  # what the camera runs from then on
    jsonl = out_dir / f"{camera}.jsonl"
    with jsonl.open("w") as f:
        for line in _phase(adapt_run.lines, "adapt") + _phase(results[deployed]["lines"], "eval"):
            f.write(json.dumps(line) + "\n")
    marks = _marks(adapt_run.lines, baseline, "adapt", "generic")
    for name in results:
        marks += _marks(results[name].pop("lines"), baseline, "eval", name)
    return {
        "clip": clip.name, "fps": fps, "adapt_fraction": fraction, "adapt_until_s": round(cut, 2),
        "adapt": {"frames": len(adapt), "escalated": adapt_run.counters["escalated"],
                  "escalation_fraction": round(escalation_fraction(adapt_run.lines), 4),
                  "records_kept": collector.written, "warmup_audit_fraction": warmup_audit},
        "decision": {"promote": decision.promote, "verdict": decision.verdict, "why": decision.why,
                     "frames": decision.frames, "bands": bands},
        "deployed": deployed,
        "eval": results,
        "jsonl": str(jsonl),
        "timeline": marks,
    }
