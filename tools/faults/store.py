"""A ``DocumentStore`` wrapper that fails like Cosmos DB under stress, on a fraction of calls and in outages.

What it imitates (Cosmos DB REST "HTTP status codes": 429 Too Many Requests when the provisioned throughput is
exceeded, 503 Service Unavailable, 408 Request Timeout; and the SDK's ``ServiceRequestError`` /
``ServiceResponseError`` on a timeout): ``shared.store.cosmos`` maps all of them to ``StoreError`` after its own
bounded retries, so this wrapper raises the same ``StoreError`` with the same message shape. A timeout on a
*write* is injected half the time after the write took effect — the caller cannot tell (the request reached
the server, the answer was lost) — which is what makes an idempotent writer necessary.

Faults are drawn from a seeded RNG (reproducible runs) and outages are windows on the injected clock.
``paused()`` suspends faults (a test inspecting the store).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.errors import StoreError
from shared.store.base import DocumentStore, Query

KINDS = ("429", "503", "timeout")
_WRITES = frozenset({"create", "replace", "upsert", "delete"})


@dataclass
class Outage:
    """Every call fails from ``start`` for ``seconds``."""

    start: datetime
    seconds: float

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.start + timedelta(seconds=self.seconds)


@dataclass
class FaultyStore:
    """Wraps ``inner``; see the module docstring."""

    inner: DocumentStore
    clock: Callable[[], datetime]
    fraction: float = 0.0
    kinds: tuple[str, ...] = KINDS
    outages: list[Outage] = field(default_factory=list)
    seed: int = 14
    injected: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible fault injection, not cryptography
        self._lock = threading.Lock()
        self._paused = 0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No faults inside (inspection by a test or a tool)."""
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def _fault(self, operation: str) -> tuple[str, bool] | None:
        """(kind, after the write) when this call fails."""
        with self._lock:
            self.calls += 1
            if self._paused:
                return None
            now = self.clock()
            if any(o.covers(now) for o in self.outages):
                self.injected["outage"] = self.injected.get("outage", 0) + 1
                return "503", False
            if self.fraction and self._rng.random() < self.fraction:
                kind = self._rng.choice(self.kinds)
                after = kind == "timeout" and operation in _WRITES and self._rng.random() < 0.5
                self.injected[kind] = self.injected.get(kind, 0) + 1
                return kind, after
        return None

    def _call(self, operation: str, run: Callable[[], Any]) -> Any:
        fault = self._fault(operation)
        if fault is None:
            return run()
        kind, after = fault
        if after:
            run()  # the write reached the server; only its answer is lost
        if kind == "timeout":
            raise StoreError(f"Cosmos DB {operation} failed: ServiceResponseError (timeout, injected)")
        raise StoreError(f"Cosmos DB {operation} failed: HTTP {kind} (injected)", status_code=int(kind))

    # -- DocumentStore ---------------------------------------------------------------------------------
    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        return self._call("read", lambda: self.inner.read(pk, doc_id))

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("create", lambda: self.inner.create(doc))

    def replace(self, doc: Mapping[str, Any], etag: str | None) -> dict[str, Any]:
        return self._call("replace", lambda: self.inner.replace(doc, etag))

    def upsert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("upsert", lambda: self.inner.upsert(doc))

    def delete(self, pk: str, doc_id: str) -> None:
        self._call("delete", lambda: self.inner.delete(pk, doc_id))

    def query(self, query: Query) -> list[dict[str, Any]]:
        return self._call("query", lambda: self.inner.query(query))
