"""Training configuration: YAML validated into a typed object; errors name the key and the value."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.yaml_errors import syntax_message
from models.exceptions import ModelError
from models.shipped import shipped_config

DEFAULT_TRAIN_CONFIG = shipped_config("train.yaml")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    input_width: int = Field(320, ge=64, le=1280, multiple_of=32)
    input_height: int = Field(192, ge=64, le=1280, multiple_of=32)
    clips: list[str] = Field(min_length=1)
    held_out_clips: list[str] = Field(default_factory=list)
    train_fraction: float = Field(0.7, gt=0, lt=1)
    calib_fraction: float = Field(0.1, gt=0, lt=1)
    gap_seconds: float = Field(1.0, ge=0)
    pseudo_label_min_score: float = Field(0.1, gt=0, lt=1)
    reference_threshold: float = Field(0.4, gt=0, lt=1)
    epochs: int = Field(60, ge=1, le=10000)
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float = Field(0.004, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0)
    zoom_probability: float = Field(0.5, ge=0, le=1)
    max_frames_per_clip: int = Field(600, ge=1)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.train_fraction + self.calib_fraction >= 0.95:
            raise ValueError(
                f"train_fraction + calib_fraction = {self.train_fraction + self.calib_fraction:.2f}; "
                "keep it below 0.95 so every clip has held-back frames"
            )
        unknown = set(self.held_out_clips) - set(self.clips)
        if unknown:
            raise ValueError(f"held_out_clips {sorted(unknown)} are not in clips; add them to clips")
        return self


def load_train_config(path: Path | str | None = None, **overrides) -> TrainConfig:
    path = Path(path) if path else DEFAULT_TRAIN_CONFIG
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ModelError(f"training config {path} does not exist; start from {DEFAULT_TRAIN_CONFIG}") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"training config {path} is not valid YAML at {syntax_message(exc)}") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"training config {path} must be a mapping of keys to values")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        ]
        raise ModelError(f"training config {path} is invalid:\n" + "\n".join(lines)) from exc
