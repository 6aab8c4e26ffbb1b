"""Error hierarchy of the domain core; triggers translate it to HTTP, activities let it raise."""

from __future__ import annotations

import re


class ReynoldsError(Exception):
    """Base class of every error the domain core raises on purpose."""


class IncomingRequestError(ReynoldsError, ValueError):
    """Bad input from a caller; ``status_code`` is what an HTTP trigger answers with."""

    status_code: int = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code

    @property
    def reason(self) -> str:
        """The text shown to the caller; never contains a secret."""
        return str(self)


class SignatureError(IncomingRequestError):
    """A missing, malformed or wrong signature (HTTP 401)."""

    status_code = 401


class RetryLater(ReynoldsError):
    """A transient failure of an external call; the message carries the wait a durable retry must honour.

    Only an activity's exception *message* reaches the orchestrator, so the wait travels inside it as
    ``retry_after_seconds=<n>`` and ``retry_after_in`` reads it back.
    """

    def __init__(self, retry_after_seconds: float | None, reason: str) -> None:
        wait = f"; retry_after_seconds={retry_after_seconds:.3f}" if retry_after_seconds is not None else ""
        super().__init__(f"{reason}{wait}")
        self.retry_after_seconds = retry_after_seconds


_RETRY_AFTER = re.compile(r"retry[_ ]after(?:_seconds=| )(?P<seconds>\d+(?:\.\d+)?)s?", re.IGNORECASE)


def retry_after_in(message: str | None) -> float | None:
    """The Retry-After a failed activity's message carries (``retry_after_seconds=30`` or ``retry after 30s``)."""
    match = _RETRY_AFTER.search(message or "")
    return float(match["seconds"]) if match else None


class ConfigurationError(ReynoldsError):
    """A setting the code needs is missing or invalid; names the setting, never its value."""

    def __init__(self, setting: str, problem: str = "is not configured") -> None:
        super().__init__(f"setting {setting} {problem}")
        self.setting = setting


class StoreError(ReynoldsError):
    """Base class of the document store's failures; ``status_code`` is the store's HTTP answer, when it gave one
    (None for a timeout or a lost connection: the operation may or may not have been applied)."""

    def __init__(self, message: str = "", *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Conflict(StoreError):
    """A create found a document with the same id (Cosmos 409)."""


class PreconditionFailed(StoreError):
    """A conditional write lost against a concurrent one (Cosmos 412)."""


class NotFound(StoreError):
    """The document does not exist (Cosmos 404)."""


class CorruptState(StoreError):
    """A stored document does not validate; decisions on it fail safe."""
