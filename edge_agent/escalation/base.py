"""The transport interface every escalation path implements, and the registry that picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from contracts.wire import EscalationRequest, Verdict


class TransportError(Exception):
    """The cloud could not be reached or answered with an error; the edge decides the frame itself."""


class Transport(ABC):
    name = "base"

    @abstractmethod
    def escalate(self, request: EscalationRequest) -> Verdict:
        """Send one escalation and return the cloud's verdict, or raise TransportError."""

    def stats(self) -> dict[str, int]:
        """Counters of what the transport did (verdicts, timeouts, ...); none by default."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional for transports that hold nothing
        pass


TRANSPORTS: dict[str, Callable[..., Transport]] = {}


def register(kind: str):
    def wrap(cls):
        TRANSPORTS[kind] = cls
        cls.name = kind
        return cls

    return wrap
