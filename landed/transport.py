"""Escalations of the sieve, through the router the IoT rule invokes, run in the sieve's own process.

The event handed to `Router.process` is the one the IoT rule gives the router Lambda (the message base64 beside
the rule's fields), so every step is the gateway path's: validation, the registry check of the site and
camera, deduplication, the endpoint call with its retries, training capture, alerts, and the result row in
the results store. One difference: there is no gateway topic to publish the verdict to, so the verdict comes
back to the caller (`SieveRouter._publish`).

Message ids are derived from the landed video and the frame (uuid5), not drawn at random: an S3 event
delivered twice, or a Lambda retried, sends the same ids, and the router stores no row twice (its claim
keeps the first delivery's time, so the repeat finds the same row key).
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from dataclasses import replace
from functools import cached_property
from pathlib import Path

from cloud import constants as c
from cloud.router.service import Router
from contracts.wire import EscalationRequest, Verdict
from edge_agent.escalation.base import Transport, TransportError

_IDS = uuid.UUID("6f1c7c2e-4a55-4b1e-9a77-5d1c0e2f3a10")  # the namespace of the sieve's message ids


IN_PROCESS = "in-process"  # the endpoint name the stack gives with TeacherBackend=lambda: the teacher is inside
TEACHER_MANIFEST = "FRAMESIEVE_TEACHER_MANIFEST"  # as cloud.lambda_teacher.handler reads it
TEACHER_THREADS = "FRAMESIEVE_TEACHER_THREADS"


class SieveRouter(Router):
    """The router, with each verdict handed back in process instead of published to a gateway's topic; with
    the endpoint name "in-process" (TeacherBackend=lambda) the teacher answers inside the sieve, as it does
    inside the router Lambda (cloud/lambda_teacher)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._verdicts: dict[str, Verdict] = {}
        self._lock = threading.Lock()

    @cached_property
    def runtime(self):
        if self.config.endpoint_name != IN_PROCESS:
            return super().runtime
        from cloud.lambda_teacher.teacher import InProcessRuntime

        manifest = os.environ.get(TEACHER_MANIFEST) or str(
            Path(os.environ.get("LAMBDA_TASK_ROOT", "/var/task")) / "model" / "manifest.json")
        threads = os.environ.get(TEACHER_THREADS)
        return InProcessRuntime.from_manifest(manifest, int(threads) if threads else None)

    def _publish(self, thing: str, verdict: Verdict, site: str = "") -> str:
        with self._lock:
            self._verdicts[verdict.message_id] = verdict
        return f"in-process:{thing}"

    def take(self, message_id: str) -> Verdict | None:
        with self._lock:
            return self._verdicts.pop(message_id, None)


class RouterTransport(Transport):
    """The edge pipeline's transport in the sieve: each escalation through `SieveRouter.process`."""

    name = "router"

    def __init__(self, router: SieveRouter, thing: str, origin: str, start_times: dict[str, float] | None = None):
        """`start_times`: per camera, the wall-clock time of media time 0 (a stream's window start, a segment's
        recorded start), so each escalation carries the time its frame was seen, not the time it was sieved."""
        self.router, self.thing, self.origin = router, thing, origin
        self.start_times = start_times or {}
        self._seen: dict[tuple[str, int, str], int] = {}
        self._lock = threading.Lock()
        self.counts = {"sent": 0, "stored": 0, "duplicate": 0, "unchanged": 0, "dead_letter": 0}

    def message_id(self, request: EscalationRequest) -> str:
        key = (request.camera, request.frame_index, request.reason)
        with self._lock:
            n = self._seen[key] = self._seen.get(key, -1) + 1
        return str(uuid.uuid5(_IDS, f"{self.origin}|{request.camera}|{request.frame_index}|{request.reason}|{n}"))

    def escalate(self, request: EscalationRequest) -> Verdict:
        sent = replace(request, message_id=self.message_id(request))
        if request.camera in self.start_times:
            sent = replace(sent, created_s=self.start_times[request.camera] + request.pts_s)
        event = {c.EVENT_PAYLOAD: base64.b64encode(sent.to_bytes()).decode(), c.EVENT_THING: self.thing,
                 c.EVENT_TOPIC: f"framesieve/{self.thing}/escalations", c.EVENT_RECEIVED_MS: int(time.time() * 1000)}
        outcome = self.router.process(event)
        with self._lock:
            self.counts["sent"] += 1
            self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        verdict = self.router.take(sent.message_id)
        if verdict is None:  # a repeat (stored before): no answer to hand back; the edge decides the frame
            raise TransportError(f"escalation {sent.message_id} ({request.camera} frame {request.frame_index}): "
                                 f"{outcome.status}: {outcome.reason}")
        return replace(verdict, message_id=request.message_id)

    def stats(self) -> dict[str, int]:
        return dict(self.counts)
