"""`edge-agent models specialize --install CONFIG`: roll a promoted challenger out to one camera of an agent
config file, as the loop and a camera job do: its own `student`, the limits its guard rolls it back above,
the recall test the decision sized for it (its audit share) and the bands the decision chose for it. The
new config is validated before anything is written (a .bak of the old one is kept), so a bad install never
leaves a config the agent refuses to start with."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from edge_agent.config import ConfigError, parse_config
from models.exceptions import ModelError
from models.manifest import load_manifest
from models.student.decision import Decision
from models.student.defaults import DEFAULTS
from models.student.limits import rollback_limits


def install_in_config(config_path: Path, camera: str, challenger: Path, decision: Decision,
                      margin: float = DEFAULTS.escalation_margin) -> dict[str, float]:
    """Give `camera` the promoted `challenger`; returns its rollback limits. The challenger is verified
    first: a tampered or mismatched model is never deployed."""
    if not decision.promote:
        raise ModelError(f"the decision for camera {camera} was {decision.verdict!r}; nothing to install")
    manifest = load_manifest(challenger)  # raises on a sha256 mismatch
    if manifest.specialized_for != camera:
        raise ModelError(f"{challenger} was specialized for camera {manifest.specialized_for!r}, not {camera!r}")
    text = Path(config_path).read_text()
    raw = yaml.safe_load(text)
    cams = [c for c in raw.get("cameras", []) if isinstance(c, dict) and c.get("id") == camera]
    if not cams:
        raise ModelError(f"camera {camera!r} is not in {config_path}")
    limits = rollback_limits(decision, escalation_margin=margin)
    cams[0].update(student=str(Path(challenger).resolve()), student_max_escalation=limits["max_escalation"],
                   student_max_audit_disagreement=limits["max_audit_disagreement"])
    if decision.bands is not None:
        cams[0]["student_bands"] = decision.bands.model_dump()
    else:
        cams[0].pop("student_bands", None)  # an earlier student's bands are not this one's
    guard = decision.guard
    if guard is not None and guard.audit_fraction is not None:
        cams[0]["student_guard"] = {"audit_fraction": guard.audit_fraction, "recall_threshold": guard.threshold,
                                    "recall_weight": guard.weight, "recall_labels": guard.labels}
    else:
        cams[0].pop("student_guard", None)
    new = yaml.safe_dump(raw, sort_keys=False)
    try:
        parse_config(new, f"{config_path} with camera {camera}'s new student")
    except ConfigError as exc:
        raise ConfigError(f"{exc}\n{config_path} was left as it was") from exc
    shutil.copyfile(config_path, Path(str(config_path) + ".bak"))
    Path(config_path).write_text(new)
    return limits
