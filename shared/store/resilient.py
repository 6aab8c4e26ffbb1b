"""A ``DocumentStore`` that retries transient failures a few times before they reach the caller.

The Cosmos DB client is configured to fail fast (``shared.store.cosmos.CLIENT_OPTIONS``: 3 throttling retries,
an 8 s operation timeout) because the doors must answer within seconds. A 503, a timeout or a throttle that
outlasts those retries then fails a whole activity — which touches the store a dozen times (ledger, breakers,
pacer, late-commit check) — and one failure in any of them costs the activity a durable-timer backoff. This
wrapper retries such a failure ``attempts`` times with a short doubling pause, so a store failing 30 % of its
calls fails an operation about 1 % of the time (0.3⁴).

Only transient failures are retried: ``Conflict``, ``PreconditionFailed``, ``NotFound`` and ``CorruptState``
are answers, and an HTTP 4xx other than 408/429 will not change. Reads and queries are retried on any
transient failure. A write is retried only when Cosmos DB answered that it did not apply it (429 throttled,
503 unavailable, 449 retry-with, 410 gone); after a timeout or a lost connection the write may have taken
effect, and trying it again could apply a read-modify-write twice (a breaker counting one write as two), so
that failure goes to the caller, whose own retry re-reads first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from shared.errors import Conflict, CorruptState, NotFound, PreconditionFailed, StoreError
from shared.store.base import DocumentStore, Query

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ANSWERS = (Conflict, PreconditionFailed, NotFound, CorruptState)
#: Answers meaning Cosmos DB did not apply the operation (throttled, unavailable, retry-with, gone).
_NOT_APPLIED = frozenset({429, 503, 449, 410})
_READS = frozenset({"read", "query"})


def is_transient(exc: StoreError) -> bool:
    """Whether trying the same call again may succeed."""
    status = exc.status_code
    permanent = status is not None and 400 <= status < 500 and status not in (408, 429)
    return not isinstance(exc, _ANSWERS) and not permanent


def may_retry(operation: str, exc: StoreError) -> bool:
    """Whether ``operation`` may be tried again after ``exc`` without risking a second application."""
    if not is_transient(exc):
        return False
    return operation in _READS or exc.status_code in _NOT_APPLIED


class ResilientStore:
    """Wraps ``inner``; retries transient ``StoreError``\\s (see the module docstring). ``sleep`` is injectable."""

    def __init__(self, inner: DocumentStore, *, attempts: int = 4, first_pause: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self.attempts = attempts
        self.first_pause = first_pause
        self._sleep = sleep

    def _retry(self, operation: str, call: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except StoreError as exc:
                if attempt >= self.attempts or not may_retry(operation, exc):
                    raise
                logger.info("store %s failed (%s); try %d of %d", operation, exc, attempt + 1, self.attempts)
                self._sleep(self.first_pause * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        """See ``DocumentStore.read``."""
        return self._retry("read", lambda: self.inner.read(pk, doc_id))

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """See ``DocumentStore.create``."""
        return self._retry("create", lambda: self.inner.create(doc))

    def replace(self, doc: Mapping[str, Any], etag: str | None) -> dict[str, Any]:
        """See ``DocumentStore.replace``."""
        return self._retry("replace", lambda: self.inner.replace(doc, etag))

    def upsert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """See ``DocumentStore.upsert``."""
        return self._retry("upsert", lambda: self.inner.upsert(doc))

    def delete(self, pk: str, doc_id: str) -> None:
        """See ``DocumentStore.delete`` (a retried delete that had taken effect answers ``NotFound``)."""
        self._retry("delete", lambda: self.inner.delete(pk, doc_id))

    def query(self, query: Query) -> list[dict[str, Any]]:
        """See ``DocumentStore.query``."""
        return self._retry("query", lambda: self.inner.query(query))

    def __getattr__(self, name: str) -> Any:
        # Anything beyond the protocol (``close``, request counters) is the inner store's.
        return getattr(self.inner, name)
