"""Shadow calls for champion/challenger: a configurable share of escalations is also sent to the production
variant that did not answer it (InvokeEndpoint with TargetVariant), and that answer is kept beside the served
one in the result row. It decides nothing: the verdict, the alerts and the training record come from the
served answer only. One attempt, no retry: a failed shadow is recorded with its reason, never dead-lettered.

Which escalations are shadowed is decided by message id (a hash salted apart from training capture), so a
redelivered message decides the same way, and the share holds across routers without shared state.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from typing import Any

from cloud.exceptions import EndpointError
from cloud.router.config import RouterConfig
from cloud.router.endpoint import call
from cloud.stores import ShadowAnswer
from contracts.wire import EscalationRequest, WireError, invocation_for, verdict_from_response

log = logging.getLogger("framesieve.router")


def shadowed(message_id: str, share: float) -> bool:
    """Deterministic by message id: every delivery of a message decides the same way."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.sha256(f"shadow:{message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def shadow_target(config: RouterConfig, message_id: str, served: str) -> str:
    """The variant to shadow this escalation to, or "": none configured, not sampled, or the served variant is
    not one of FRAMESIEVE_AB_VARIANTS (then which is "the other" is unknown)."""
    if served not in config.ab_variants or not shadowed(message_id, config.shadow_share):
        return ""
    return next((v for v in config.ab_variants if v != served), "")


def labels_and_counts(labels: list[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    counts = Counter(labels)
    return tuple(sorted(counts)), dict(sorted(counts.items()))


def shadow_call(runtime: Any, config: RouterConfig, request: EscalationRequest, target: str) -> ShadowAnswer:
    """Ask `target` for the same crops; the answer reduced to what the report compares (labels, counts, ms)."""
    try:
        answer = call(runtime, config.endpoint_name, invocation_for(request), attempts=1, target_variant=target)
        verdict = verdict_from_response(request, answer.response)
    except (EndpointError, WireError) as exc:
        log.warning(json.dumps({"event": "shadow_failed", "message_id": request.message_id, "variant": target,
                                "error": str(exc)[:300]}))
        return ShadowAnswer(target, error=str(exc)[:300])
    if answer.variant and answer.variant != target:  # the endpoint ignored TargetVariant: not a comparison
        return ShadowAnswer(target, error=f"asked variant {target!r}, {answer.variant!r} answered")
    labels, counts = labels_and_counts([d.label for d in verdict.detections()])
    return ShadowAnswer(target, labels, counts, answer.ms)
