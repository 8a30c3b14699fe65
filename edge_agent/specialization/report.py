"""Each step of a camera's specialization, sent to the cloud for the dashboard's Camera page: an attempt, its
verdict (keep, collect, failed), a promotion, a rollback, with its reason (contracts/device.py
SpecializationEvent). The message goes through the durable spool on the gateway's events topic, as the frame
events do (at least once: the cloud keeps it once by message id), so a step taken while offline arrives
later. Without an MQTT link (transport url or sagemaker) there is no events topic: steps stay in the
gateway's own state.json (`edge-agent models status`).

Who reports what: the agent reports what changes a camera's student (a promotion installed, by the loop or
a model-update job; a rollback by the guard); the specialization loop reports its attempts and verdicts.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

from contracts.device import SpecializationEvent

if TYPE_CHECKING:
    from edge_agent.escalation.mqtt import MqttLink

log = logging.getLogger(__name__)
# the loop's outcome words (state.json) -> the step's kind
KIND_OF_OUTCOME = {"kept": "keep", "collecting": "collect", "failed": "failed", "interrupted": "failed",
                   "refused": "failed", "promoted": "promotion", "rolled-back": "rollback"}


class StepReporter:
    def __init__(self, link: MqttLink | None, site: str = ""):
        self.link, self.site = link, site
        self.sent = 0  # steps queued for the cloud
        self.recent: deque[SpecializationEvent] = deque(maxlen=50)  # the latest steps, sent or not

    def report(self, camera: str, kind: str, reason: str, outcome: str = "", version: str = "",
               records: int = 0) -> SpecializationEvent:
        """Queue one step for the cloud (never raises: a step that cannot be queued is logged)."""
        event = SpecializationEvent(str(uuid.uuid4()), camera, time.time(), kind, reason, site=self.site,
                                    outcome=outcome, version=version[:128], records=records)
        self.recent.append(event)
        if self.link is None:
            return event
        try:
            self.link.send_later("specialization", event.message_id, self.link.topics.events, event.to_bytes())
            self.sent += 1
        except Exception:
            log.exception("camera %s: specialization step %s not queued for the cloud", camera, kind)
        return event
