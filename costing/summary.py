"""The bench summary (`edge-agent bench`'s summary.json) as the cost model reads it: only the keys it needs,
validated, with errors that name the file and each missing or bad key."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SummaryError(Exception):
    """The bench summary is missing, not JSON, or lacks a key the cost model needs."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the bench writes more than the cost model reads


class BenchTotals(_Input):
    sampled_frames: int = Field(ge=0)
    escalation_fraction: float = Field(ge=0, le=1)
    escalated: int = Field(ge=0)
    messages: int = Field(ge=0)
    message_bytes_mean: float = Field(ge=0)
    edge_cpu_s_per_frame: float = Field(ge=0)
    baseline_cpu_s_per_frame: float = Field(gt=0)
    cameras_per_core: float = Field(gt=0)
    message_units_mean: float | None = Field(None, ge=0, description="optional: mean 5 KB units per message")
    # Batching per gateway (written by a bench that batches; absent: one message per call, as today).
    images_per_endpoint_call: float | None = Field(None, gt=0, description="optional: images per teacher call")
    images_per_router_invocation: float | None = Field(None, gt=0, description="optional: images per router run")
    images_per_verdict_message: float | None = Field(None, gt=0, description="optional: images per verdict")
    # Informative records only (written by a bench that measures them; absent: the price file's rates).
    training_share: float | None = Field(None, ge=0, le=1, description="optional: escalations kept for training")
    rows_per_escalation: float | None = Field(None, ge=0, le=10, description="optional: result rows written")
    # The counts behind training_share (a bench that measures them): answered escalations, kept records, kept
    # records per tier, and the measured bytes of one kept record as the router writes it.
    records_answered: int | None = Field(None, ge=0)
    training_kept: int | None = Field(None, ge=0)
    training_share_ci95: tuple[float, float] | None = None
    training_tiers: dict[str, int] | None = None
    training_bytes_per_record: float | None = Field(None, gt=0)
    training_json_bytes_per_record: float | None = Field(None, gt=0, description="the same records as plain JSON")
    training_source: str | None = Field(None, description="set by `edge-agent cost --training-from`: the summary "
                                                          "the training figures come from")


class Warmup(_Input):
    escalation_fraction: float = Field(ge=0, le=1)
    hours: float = Field(ge=0)
    # After the warm-up the camera runs the student its specialization deployed: this fraction from then on.
    steady_escalation_fraction: float | None = Field(None, ge=0, le=1)


class BenchSummary(_Input):
    schema_: str = Field(alias="schema", pattern=r"^framesieve\.bench/1$")
    fps: float = Field(gt=0)
    total: BenchTotals
    warmup: Warmup | None = None


def parse_summary(data: object, source: str = "<summary>") -> BenchSummary:
    """Validate a bench summary; the error names the file and each missing or bad key."""
    try:
        return BenchSummary.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(map(str, err["loc"])) or "(top level)"
            if err["type"] == "missing":
                problems.append(f"  missing key {where!r}")
            else:
                problems.append(f"  {where}: {err['msg']}; got {err.get('input')!r:.80}")
        raise SummaryError(f"{source} is not a usable bench summary:\n" + "\n".join(problems)) from exc


def load_summary(path: Path | str) -> BenchSummary:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise SummaryError(f"cannot read bench summary {path}: {exc.strerror}; run `edge-agent bench` first") from exc
    except json.JSONDecodeError as exc:
        raise SummaryError(f"{path}: not valid JSON: {exc}") from exc
    return parse_summary(data, str(path))
