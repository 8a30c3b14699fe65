"""The Lambda entry point behind the IoT rule:

    SELECT encode(*, 'base64') AS payload_b64, topic() AS topic, topic(2) AS thing_name, timestamp() AS received_ms
    FROM 'framesieve/+/escalations'          (or Basic Ingest: $aws/rules/<rule>/framesieve/+/escalations)

Thin on purpose: the Router (clients, store, rules) is built once per container from the environment
(`cloud.constants`), and each event is handed to `Router.process`.
"""

from __future__ import annotations

import logging
from typing import Any

from cloud.router.service import Router

_router: Router | None = None


def get_router() -> Router:
    global _router
    if _router is None:
        logging.getLogger("framesieve").setLevel(logging.INFO)
        _router = Router.from_env()
    return _router


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Route one escalation; returns what was done and the AWS calls it took (also logged as JSON)."""
    return get_router().process(event).to_dict()
