"""The specialization knobs, defined once. The agent config (`specialization:`), `edge-agent models
specialize`, `framesieve-cloud specialize` and the bench all take their defaults from `DEFAULTS`; nothing
else spells 0.97 or 60 epochs. Torch-free: the gateway reads it without the train extra.

Why these values:
- `target_recall` 0.97: the product's promise, person presence recall against the teacher on every frame.
- `confidence` 0.95 (one-sided): the lower bound a promotion must clear. With no miss, the Wilson bound
  reaches 0.97 at 88 positive held-back frames, Clopper-Pearson at 99: that, not `min_present`, is what
  usually decides how long a camera onboards.
- `min_present`/`min_absent` 30 each and `min_span_s` 600: the held-back frames must show the label and
  its absence often enough, and over at least ten minutes of the camera's time, so that one passer-by
  (or one clothing colour) cannot be all the evidence.
- `epochs` 60: with 15 the challenger was refused on vtest (55% escalated at recall 0.825, README).
- The guard: a fall of recall from 0.97 to `guard_recall_drop_to` (0.85) noticed within `guard_detect_s`
  (600 s) with probability `guard_power` (0.95), at most `guard_false_alarms_per_week` (1) false alarm a
  week; models/student/sequential.py derives the audit share from these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SpecializationDefaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    target_recall: float = Field(0.97, gt=0, lt=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    bound: Literal["wilson", "clopper-pearson"] = "wilson"
    min_present: int = Field(30, ge=1)
    min_absent: int = Field(30, ge=0)
    min_span_s: float = Field(600.0, ge=0)
    promotion_labels: tuple[Literal["person", "vehicle"], ...] = ("person",)
    epochs: int = Field(60, ge=1)
    min_records: int = Field(40, ge=4)
    accept: float = 0.3  # the bands both models are also judged at when none are given (the agent's default bands)
    reject: float = 0.2
    escalation_margin: float = 0.05
    audit_margin: float = 0.1
    guard_recall_drop_to: float = Field(0.85, gt=0, lt=1)
    guard_detect_s: float = Field(600.0, gt=0)
    guard_power: float = Field(0.95, gt=0.5, lt=1)
    guard_false_alarms_per_week: float = Field(1.0, gt=0)
    guard_max_audit_fraction: float = Field(0.5, gt=0, le=1)
    still_check_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _a_fall(self) -> SpecializationDefaults:
        if self.guard_recall_drop_to >= self.target_recall:
            raise ValueError(f"guard_recall_drop_to ({self.guard_recall_drop_to}) must be below target_recall "
                             f"({self.target_recall})")
        return self


DEFAULTS = SpecializationDefaults()
