"""The router Lambda with the teacher inside: `cloud.lambda_teacher.handler.handler`, the image's command.

The same Router as `cloud.router.handler`, its endpoint call answered by the in-process teacher. The model
loads at import, in the Lambda's init phase, so the first invocation does not pay for it twice and an
unloadable model fails the init (reported to the Runtime API) instead of every event.
"""

from __future__ import annotations

import logging
import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from cloud.lambda_teacher.teacher import InProcessRuntime
from cloud.router.config import RouterConfig
from cloud.router.service import Router

TEACHER_MANIFEST = "FRAMESIEVE_TEACHER_MANIFEST"  # env: the model's manifest inside the image
TEACHER_THREADS = "FRAMESIEVE_TEACHER_THREADS"  # env: onnxruntime intra-op threads (default: its own choice)


def teacher_manifest(env: dict[str, str] | None = None) -> str:
    """$FRAMESIEVE_TEACHER_MANIFEST, else $LAMBDA_TASK_ROOT/model/manifest.json (where the image puts it)."""
    env = dict(os.environ) if env is None else env
    if env.get(TEACHER_MANIFEST):
        return env[TEACHER_MANIFEST]
    return str(Path(env.get("LAMBDA_TASK_ROOT", "/var/task")) / "model" / "manifest.json")


class TeacherInsideRouter(Router):
    """A Router whose `runtime` is the teacher in this process rather than a sagemaker-runtime client."""

    def __init__(self, config: RouterConfig, teacher: InProcessRuntime, store: Any = None):
        super().__init__(config, store)
        self.teacher = teacher

    @cached_property
    def runtime(self) -> Any:
        return self.teacher


_t0 = time.perf_counter()
logging.getLogger("framesieve").setLevel(logging.INFO)
_threads = os.environ.get(TEACHER_THREADS)
_router = TeacherInsideRouter(RouterConfig.from_env(),
                              InProcessRuntime.from_manifest(teacher_manifest(), int(_threads) if _threads else None))
INIT_S = time.perf_counter() - _t0  # model load and router set-up, for the bench


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Route one escalation, the teacher answering in-process; the Outcome as the router returns it."""
    return _router.process(event).to_dict()
