"""Onboarding: a camera without a proven student of its own lets the cloud decide every frame where the
student's answer could matter. Every frame with motion is escalated (reason "onboarding", not limited by
the hourly budget: the budget caps a proven student's escalations), and a still scene is still sent every
`still_check_s`, so a person standing still is not carried as "nobody" for ever. The teacher's answers
become the camera's training records (escalation/collect.py). Onboarding ends when a student of the camera's
own is promoted on evidence, and starts again when the guard takes it away or the camera opts out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Onboarding:
    active: bool = False
    still_check_s: float = 30.0
    last_sent_s: float = float("-inf")

    def still_check_due(self, pts_s: float) -> bool:
        """A frame without motion that should go to the cloud anyway."""
        return self.active and self.still_check_s > 0 and pts_s - self.last_sent_s >= self.still_check_s

    def sent(self, pts_s: float) -> None:
        self.last_sent_s = pts_s
