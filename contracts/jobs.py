"""The model-update job document: what the cloud (or an operator) puts in an AWS IoT job and the gateway
runs. Defined once, here, for both sides.

{"operation": "model-update", "version": "1.1.0", "url": "https://.../bundle.tar.gz", "sha256": "<the
bundle's sha256>"}; with "camera" (and optionally the rollback limits) it is a specialized student for
that one camera. The bundle is a tar.gz of manifest.json, its model and, if any, its training checkpoint
(models/bundle.py makes them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Bands(BaseModel):
    """A cascade band: score >= accept is decided at the edge, <= reject dropped, between escalated. The
    agent config's per-label bands and a camera job's student bands are both this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept: float = Field(gt=0, le=1)
    reject: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.reject >= self.accept:
            raise ValueError(f"reject ({self.reject}) must be below accept ({self.accept})")
        return self


class ModelJob(BaseModel):
    model_config = ConfigDict(extra="ignore")  # operators may add notes; what we need is strict

    operation: Literal["model-update", "framesieve.model-update"]
    version: str = Field(pattern=r"^[A-Za-z0-9._+-]{1,64}$")
    url: str = Field(pattern=r"^https?://\S+$", description="https (a presigned S3 URL) or http")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # A specialized student for one camera (`models pack --camera`); without it the update is the agent's.
    camera: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    max_escalation: float | None = Field(None, gt=0, le=1, description="camera only: roll back above this")
    max_audit_disagreement: float | None = Field(None, gt=0, le=1, description="camera only: roll back above this")
    bands: Bands | None = Field(None, description="camera only: the student's own cascade bands")
    # camera only: the guard's recall test as the decision sized it (models/student/sequential.py)
    audit_fraction: float | None = Field(None, gt=0, le=1, description="the audit share the test needs")
    recall_threshold: int | None = Field(None, ge=1, description="the CUSUM's alarm level")
    recall_weight: int | None = Field(None, ge=1, description="what a missed audit adds to it")
    recall_labels: list[str] | None = Field(None, description="the labels it watches")
