"""What the agent ships by default, for the benches that measure it: the fp32 derived student, then (with
`student.precision: auto`, the default) the INT8 student the agent makes on its own camera's frames, through the
agent's own quantiser (edge_agent/students/int8.py: the same child process, the same gate), with its one-off CPU."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.pipeline.sources import SampledFrame
from edge_agent.students.int8 import SelfQuantizer
from models.runtime import load_detector
from models.student.derived import ensure_derived_student


def shipped_student(frames: list[SampledFrame], work: Path, at_most: int = 64) -> tuple[Path, dict]:
    """The student an agent with the default config runs on this camera once calibrated, and how it got there:
    precision, the calibration's CPU seconds (the quantiser's child process) and the gate's figures. The
    calibration set is up to `at_most` of `frames` (every 4th held out to check INT8 on), as the agent keeps."""
    fp32_manifest = ensure_derived_student()
    default = AgentConfig.model_validate({"cameras": [{"id": "bench", "source": "injected"}]})
    if default.student_settings.precision == "fp32":
        return fp32_manifest, {"precision": "fp32", "why": "student.precision defaults to fp32"}
    shutil.rmtree(work, ignore_errors=True)  # made afresh: its CPU is measured
    wanted = max(8, min(at_most, len(frames)))
    config = default.model_copy(update={"student_settings": default.student_settings.model_copy(update={
        "calibration": default.student_settings.calibration.model_copy(
            update={"frames": wanted, "every_s": 0.0, "cache_dir": str(work)})})})
    fp32 = load_detector(fp32_manifest, threads=1)
    quantizer = SelfQuantizer(config, fp32)
    k = 0
    while quantizer.state == "collecting":  # a stream shorter than the set is offered again
        quantizer.offer([frames[k % len(frames)]])
        k += 1
    while quantizer.state == "quantising":
        time.sleep(0.1)
    ready = quantizer.take_ready(fp32)
    quantizer.close()
    summary = quantizer.summary()
    info = {"precision": "int8" if ready is not None else "fp32", "state": summary["state"],
            "reason": summary["reason"],
            "calibration_cpu_s": summary["cpu_s"], "calibration_wall_s": summary["wall_s"], "check": summary["check"]}
    return (Path(str(ready.manifest.path)) if ready is not None else fp32_manifest), info
