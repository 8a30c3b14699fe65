"""`framesieve-cloud ab promote`: shift the endpoint's traffic between its production variants with
UpdateEndpointWeightsAndCapacities (no new endpoint config, no instance replaced: weights only, in place),
then wait until the endpoint is InService again. Instance types and the variants themselves change only through
the stack (infra/cloudformation/framesieve.yaml: ChallengerModelDataUrl, ChallengerWeight)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloud.exceptions import CloudError, ConfigError


def current_variants(sagemaker: Any, endpoint: str) -> dict[str, float]:
    """{variant: current weight} of the endpoint; CloudError naming the endpoint when it cannot be read."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except (ClientError, BotoCoreError) as exc:
        raise CloudError(f"cannot describe endpoint {endpoint!r}: {exc}; check --endpoint (the stack's "
                         "TeacherEndpoint name) and the AWS region") from exc
    return {v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
            for v in described.get("ProductionVariants", [])}


def instance_types(sagemaker: Any, endpoint: str) -> dict[str, str]:
    """{variant: instance type} from the endpoint's config (serverless variants have none)."""
    try:
        config = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        described = sagemaker.describe_endpoint_config(EndpointConfigName=config)
    except (ClientError, BotoCoreError, KeyError) as exc:
        raise CloudError(f"cannot read the endpoint config of {endpoint!r}: {exc}") from exc
    return {v["VariantName"]: v["InstanceType"] for v in described.get("ProductionVariants", [])
            if v.get("InstanceType")}


def target_weights(current: dict[str, float], variant: str, share: float) -> dict[str, float]:
    """`variant` gets `share` of the traffic; the others split the rest in proportion to their weights now
    (equally where they all have none)."""
    if variant not in current:
        raise ConfigError(f"variant {variant!r} is not on the endpoint; its variants: {sorted(current)}")
    if not 0 <= share <= 1:
        raise ConfigError(f"--share {share}: expected a share of the traffic in [0, 1], e.g. 1 to promote fully")
    others = {n: w for n, w in current.items() if n != variant}
    if share < 1 and not others:
        raise ConfigError(f"the endpoint has only variant {variant!r}: it takes all the traffic")
    rest, total = 1 - share, sum(others.values())
    out = {variant: round(share, 6)}
    for name, w in others.items():
        out[name] = round(rest * (w / total if total > 0 else 1 / len(others)), 6)
    return out


def promote(sagemaker: Any, endpoint: str, variant: str, share: float = 1.0, wait_s: float = 900,
            poll_s: float = 5.0) -> tuple[dict[str, float], dict[str, float]]:
    """(weights before, weights after). Raises CloudError when SageMaker refuses or the endpoint does not come
    back InService within `wait_s`."""
    before = current_variants(sagemaker, endpoint)
    wanted = target_weights(before, variant, share)
    try:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[{"VariantName": n, "DesiredWeight": w} for n, w in wanted.items()])
    except (ClientError, BotoCoreError) as exc:
        raise CloudError(f"UpdateEndpointWeightsAndCapacities on {endpoint!r} failed: {exc}") from exc
    deadline = time.monotonic() + wait_s
    while True:
        status = sagemaker.describe_endpoint(EndpointName=endpoint).get("EndpointStatus", "")
        if status == "InService":
            break
        if status == "Failed" or time.monotonic() > deadline:
            raise CloudError(f"endpoint {endpoint!r} is {status or 'unknown'} after the weight update (waited "
                             f"{wait_s:g} s); see its FailureReason with `aws sagemaker describe-endpoint`")
        time.sleep(poll_s)
    return before, current_variants(sagemaker, endpoint)
