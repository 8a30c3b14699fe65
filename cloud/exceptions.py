"""Errors the cloud side raises. Each message names the bad value and what is accepted instead."""

from __future__ import annotations


class CloudError(Exception):
    """Base class for the cloud side's own errors."""


class RequestError(CloudError):
    """A request the server refuses. `status` is the HTTP status (4xx); `code` is the error type boto3
    sees in `x-amzn-ErrorType`: SageMaker reports a container's refusal as ModelError, and a payload over
    its size limit as ValidationError, so the same client code handles this server and the real one."""

    def __init__(self, status: int, message: str, code: str = "ModelError"):
        super().__init__(message)
        self.status = status
        self.code = code


class ServerClosing(CloudError):
    """The server is shutting down and takes no new work."""


class ConfigError(CloudError):
    """A setting (environment variable, alert rule, store URL) that cannot be used as given."""


class StoreError(CloudError):
    """The results store refused an operation for a reason other than a condition (which is not an error)."""


class EndpointError(CloudError):
    """The teacher endpoint did not answer an escalation after the allowed attempts. `kind` is
    `model` (the model failed on this input: retrying will not help), `throttled` or `unavailable`."""

    def __init__(self, kind: str, message: str, attempts: int):
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts


class PackagingError(CloudError):
    """The Lambda or the model artifact cannot be built as asked."""
