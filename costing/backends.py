"""The teacher backends the planner compares, as they are written in config/pricing.yaml (`backends:`).

Four kinds, each priced the way AWS bills it:
- realtime: a SageMaker real-time endpoint on instances (GPU or CPU), billed per instance-hour, never below
  its minimum instances;
- serverless: SageMaker Serverless Inference, billed per GB-second of compute per request, cold starts when idle;
- async: SageMaker asynchronous inference on instances, able to scale to zero when the queue stays empty,
  billed per instance-hour while up, with S3 round trips per request;
- lambda: the teacher inside the router Lambda (container image, CPU), billed per GB-second of the invocation.
Every performance figure carries its source: "measured: ..." or "assumption: ...", and the report says which.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Price(_Strict):
    """One priced unit: what it costs, of what, and where the figure comes from."""

    usd: float = Field(ge=0, description="price of one unit, US dollars")
    unit: str = Field(min_length=1, description="what one is, e.g. 'million requests' or 'GB-month'")
    source: str = Field(min_length=1, description="AWS pricing page URL, or 'assumption: ...'")


class InstancePrice(Price):
    type: str = Field(min_length=1, description="instance type, e.g. c7i.large")


def _sourced(text: str) -> bool:
    return text.lower().startswith(("measured", "assumption"))


class _Option(_Strict):
    label: str = Field(min_length=1, description="what the report calls it")
    p95_s: float = Field(gt=0, description="p95 seconds from the router's request to the teacher's answer, warm")
    performance_source: str = Field(min_length=1, description="'measured: how, where' or 'assumption: why'")
    stack: dict[str, str] = Field(default_factory=dict,
                                  description="CloudFormation parameters that deploy this option")

    @model_validator(mode="after")
    def _says_where_figures_come_from(self) -> _Option:
        if not _sourced(self.performance_source):
            raise ValueError(f"performance_source must start with 'measured' or 'assumption'; got "
                             f"{self.performance_source!r}")
        return self

    @property
    def assumed(self) -> bool:
        return self.performance_source.lower().startswith("assumption")


class RealtimeOption(_Option):
    kind: Literal["realtime"]
    instance: InstancePrice
    images_per_s: float = Field(gt=0, description="images/s one instance answers at the batch it sees")
    min_instances: int = Field(1, ge=1, description="a real-time endpoint cannot scale to zero")


class AsyncOption(_Option):
    kind: Literal["async"]
    instance: InstancePrice
    images_per_s: float = Field(gt=0)
    idle_scale_in_s: float = Field(gt=0, description="queue empty this long: the endpoint scales to zero")
    scale_from_zero_s: float = Field(gt=0, description="first answer after a scale from zero")
    s3_requests_per_call: float = Field(3, ge=0, description="input PUT, output PUT, output GET")


class _PerUse(_Option):
    memory_mb: int = Field(ge=128, le=10240)
    s_per_image: float = Field(gt=0, description="compute seconds per image at this memory size")
    cold_start_s: float = Field(gt=0, description="first answer of a new container: start, load, first image")
    max_concurrency: int = Field(ge=1, description="concurrent requests the service allows (quota)")


class ServerlessOption(_PerUse):
    kind: Literal["serverless"]
    compute: Price = Field(description="per GB-second of request duration")


class LambdaOption(_PerUse):
    kind: Literal["lambda"]
    router_s: float = Field(0.03, ge=0, description="the router's own work per invocation, besides the teacher")


BackendOption = Annotated[RealtimeOption | AsyncOption | ServerlessOption | LambdaOption, Field(discriminator="kind")]


class Backends(_Strict):
    """The options, and what every option shares: the latency objective and the keep-warm assumption."""

    latency_objective_p95_s: float = Field(2.0, gt=0, description="the slowest acceptable p95, escalation path")
    path_overhead_s: float = Field(gt=0, description="p95 of the path besides the teacher: IoT, router, verdict")
    path_overhead_source: str = Field(min_length=1)
    keep_warm_s: float = Field(gt=0, description="an idle Lambda/serverless container is kept this long")
    keep_warm_source: str = Field(min_length=1)
    options: dict[str, BackendOption] = Field(min_length=1)

    def scaled(self, factor: float) -> Backends:
        """Every option for a teacher `factor` times as heavy as the one its figures were measured or assumed
        with (a customer model of factor x the measured teacher's CPU seconds per image): instance throughput
        divided by it, compute seconds per image and the warm p95 multiplied by it. The same factor on a GPU is
        an assumption (a heavier CNN slows down about as much there); cold starts are left as they are."""
        if not factor > 0:
            raise ValueError(f"the teacher scale factor must be positive; got {factor}")
        if factor == 1:
            return self
        options: dict[str, BackendOption] = {}
        for name, o in self.options.items():
            update: dict[str, object] = {"p95_s": o.p95_s * factor,
                                         "performance_source": f"{o.performance_source} (scaled x{factor:.3g} "
                                                               "for the given teacher)"}
            if isinstance(o, RealtimeOption | AsyncOption):
                update["images_per_s"] = o.images_per_s / factor
            else:
                update["s_per_image"] = o.s_per_image * factor
            options[name] = o.model_copy(update=update)
        return self.model_copy(update={"options": options})

    @model_validator(mode="after")
    def _sources(self) -> Backends:
        for name in ("path_overhead_source", "keep_warm_source"):
            if not _sourced(getattr(self, name)):
                raise ValueError(f"{name} must start with 'measured' or 'assumption'; got {getattr(self, name)!r}")
        return self
