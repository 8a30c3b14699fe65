"""The student section: which manifest, and at which precision the agent runs it (`student.precision`,
edge_agent/students/int8.py). Written `student: PATH` or `student: {manifest, precision, calibration, gate}`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.config.base import _Strict


class Int8Calibration(_Strict):
    """The frames `student.precision: auto` quantises on: the agent's own cameras' sampled frames, no labels."""

    frames: int = Field(64, ge=8, le=1024, description="frames collected, in all (kept at the student's input "
                                                        "size: 184 KB each at 320x192)")
    every_s: float = Field(10.0, ge=0, le=86_400, description="one frame per camera at most this often (media time "
                                                              "for files), so the set spans time and cameras")
    held_out: float = Field(0.25, gt=0, lt=1, description="share of them (every 4th at 0.25) kept out of the "
                                                          "quantising, to check INT8 against fp32 on")
    cache_dir: str | None = Field(None, description="where the INT8 student is kept, keyed by the fp32's sha256 and "
                                                    "these settings (default: <fleet.models_dir>/int8-self)")
    timeout_s: float = Field(900.0, gt=0, description="a quantising run taking longer is stopped (the agent stays "
                                                      "on fp32)")


class Int8Gate(_Strict):
    """What the INT8 student must show on the held-out frames, against the fp32, at the cameras' cascade bands
    (per frame and label, each student's best score: accept, escalate or reject)."""

    max_lost_share: float = Field(0.02, ge=0, le=1, description=(
        "share of the presences the fp32 accepts or escalates that INT8 would reject, net of those the fp32 rejects "
        "that INT8 would keep, per label (the recall it would lose: flips at the threshold go both ways)"))
    max_extra_escalation: float = Field(0.05, ge=0, le=1, description=(
        "share of the held-out frames INT8 would escalate beyond those the fp32 escalates (what it would cost); "
        "it fails when the one-sided 95% lower bound of that share, paired frame by frame (Newcombe's hybrid score), "
        "is above this"))
    min_agreement: float = Field(0.85, ge=0, le=1, description=(
        "share of frame-labels decided the same (accept, escalate, reject); it fails when the one-sided 95% upper "
        "bound of that share is below this (on 15 held-out frames a point estimate passed or failed with the frames "
        "kept); accept<->escalate flips cost no recall, so this is looser than the two above"))
    max_score_diff_mean: float = Field(0.05, ge=0, le=1, description="mean absolute difference of the best scores")


class StudentSettings(_Strict):
    """The agent's student: `student: PATH` is short for `student: {manifest: PATH}`."""

    manifest: str = Field("default", description="student manifest path, or 'default' for the shipped one")
    precision: Literal["auto", "fp32", "int8"] = Field("auto", description=(
        "auto: start on the fp32 student, quantise it to INT8 on the cameras' own frames in the background, "
        "and swap only if INT8 passes the gate against fp32; int8: the same, swapped even if the gate fails "
        "(its figures still logged); fp32: never quantise. A manifest that is INT8 already runs as it is"))
    calibration: Int8Calibration = Field(default_factory=Int8Calibration)
    gate: Int8Gate = Field(default_factory=Int8Gate)
