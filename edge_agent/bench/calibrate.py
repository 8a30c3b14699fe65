"""`edge-agent calibrate`: sweep the cascade thresholds on a calibration clip, pick the cheapest
operating point that meets a target presence recall, and write it into an agent config."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from contracts.labels import PRODUCT_LABELS
from edge_agent.bench.runner import run_baseline
from edge_agent.bench.sweep import MIN_NEGATIVES, MIN_POSITIVES, evidence_refusal, pick_operating_point, sweep
from edge_agent.config import ConfigError, parse_config


def calibrate(clip: Path, config_path: Path, target_recall: float, fps: float = 1.0, level: str = "presence",
              labels: tuple[str, ...] = ("person",), out_path: Path | None = None,
              min_evidence: tuple[int, int] = (MIN_POSITIVES, MIN_NEGATIVES)) -> dict:
    """Returns the chosen point; raises ConfigError when the clip has too few frames with (or without) a label
    to tell (`min_evidence`: frames with, without; lowering it makes a demonstration, not a calibration), or
    when no threshold pair reaches the target."""
    text = config_path.read_text()
    parse_config(text, str(config_path))  # refuse to touch a config that is already broken
    baseline = run_baseline(clip, fps)
    points = sweep(baseline, clip, clip.stem, level=level)
    refused = evidence_refusal(points, labels, *min_evidence)
    if refused:
        raise ConfigError(f"not calibrating on {clip.name} at {fps} fps: {refused}")
    point = pick_operating_point(points, target_recall, labels)
    if point is None:
        best = max(min(p[f"{label}_presence_recall"] or 0.0 for label in labels) for p in points)
        raise ConfigError(f"no cascade thresholds reach presence recall {target_recall} for {list(labels)} on "
                          f"{clip.name} (best {best:.3f}); lower --target-recall or calibrate on more footage")
    raw = yaml.safe_load(text)
    cascade = raw.setdefault("defaults", {}).setdefault("cascade", {})
    cascade["level"] = level
    cascade["labels"] = {label: {"accept": point["accept"], "reject": point["reject"]} for label in PRODUCT_LABELS}
    new_text = (f"# cascade thresholds calibrated on {clip.name} at {fps} fps for presence recall >= "
                f"{target_recall}: {point['escalation_fraction']:.1%} of sampled frames escalated\n"
                + yaml.safe_dump(raw, sort_keys=False))
    parse_config(new_text, "calibrated config")
    target = out_path or config_path
    if target == config_path:
        shutil.copyfile(config_path, config_path.with_suffix(config_path.suffix + ".bak"))
    target.write_text(new_text)
    # What the cheaper point trades: precision there against the best any swept point reached.
    best_precision = {label: max((p[f"{label}_presence_precision"] or 0.0) for p in points) for label in labels}
    return {"point": point, "points": points, "written": str(target), "best_precision": best_precision}
