"""An in-memory ``DocumentStore`` with the same semantics as the Cosmos one (see ``base``)."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.errors import Conflict, NotFound, PreconditionFailed
from shared.store.base import Query

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryStore:
    """Thread-safe dict of documents keyed by ``(pk, id)``; honours ``ttl`` against an injected clock."""

    def __init__(self, clock: Clock = _utc_now) -> None:
        self._clock = clock
        self._docs: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self.requests = 0

    # -- helpers -------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock().timestamp()

    def _live(self, key: tuple[str, str]) -> dict[str, Any] | None:
        entry = self._docs.get(key)
        if entry is None:
            return None
        doc, written = entry
        ttl = doc.get("ttl")
        if isinstance(ttl, int | float) and ttl > 0 and self._now() >= written + ttl:
            del self._docs[key]
            return None
        return doc

    def _store(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(doc))
        stored["_etag"] = f'"{next(self._etags)}"'
        self._docs[(str(stored["pk"]), str(stored["id"]))] = (stored, self._now())
        return copy.deepcopy(stored)

    @staticmethod
    def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
        if "id" not in doc or "pk" not in doc:
            raise ValueError("a document needs 'id' and 'pk'")
        return str(doc["pk"]), str(doc["id"])

    # -- DocumentStore -------------------------------------------------------------------------------
    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        """Return the document with its ``_etag``; raise ``NotFound``."""
        with self._lock:
            self.requests += 1
            doc = self._live((pk, doc_id))
            if doc is None:
                raise NotFound(doc_id)
            return copy.deepcopy(doc)

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a new document; raise ``Conflict`` when ``(pk, id)`` exists."""
        key = self._key(doc)
        with self._lock:
            self.requests += 1
            if self._live(key) is not None:
                raise Conflict(key[1])
            return self._store(doc)

    def replace(self, doc: Mapping[str, Any], etag: str | None) -> dict[str, Any]:
        """Overwrite a document; with ``etag``, raise ``PreconditionFailed`` if it changed meanwhile."""
        key = self._key(doc)
        with self._lock:
            self.requests += 1
            current = self._live(key)
            if current is None:
                raise NotFound(key[1])
            if etag is not None and current["_etag"] != etag:
                raise PreconditionFailed(key[1])
            return self._store(doc)

    def upsert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Create or overwrite unconditionally."""
        self._key(doc)
        with self._lock:
            self.requests += 1
            return self._store(doc)

    def delete(self, pk: str, doc_id: str) -> None:
        """Remove a document; raise ``NotFound``."""
        with self._lock:
            self.requests += 1
            if self._live((pk, doc_id)) is None:
                raise NotFound(doc_id)
            del self._docs[(pk, doc_id)]

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Documents matching every equality filter, ordered by id."""
        with self._lock:
            self.requests += 1
            found = []
            for key in sorted(self._docs):
                if query.pk is not None and key[0] != query.pk:
                    continue
                doc = self._live(key)
                if doc is not None and all(doc.get(k) == v for k, v in query.equals.items()):
                    found.append(copy.deepcopy(doc))
            return found[: query.limit]
