"""The document-store contract that the lineage service is written against.

It is the subset of Cosmos DB (NoSQL) semantics that loop prevention needs, and nothing more:
point reads, create-if-absent (409 → ``Conflict``), replace with an ETag precondition (412 →
``PreconditionFailed``), upsert, delete, and equality queries for the (cold) chain explorer. Every
document carries ``id`` and ``pk`` (the partition key value); stores add ``_etag`` on the way out.
A document may carry ``ttl`` (seconds); the store expires it after that long without a write.

Transactional batch is deliberately absent: the local Cosmos server does not accept it, and the
service is designed around conditional writes instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

_FORBIDDEN = re.compile(r"[/\\?#%]")


def safe_id(key: str) -> str:
    """A document id for ``key``: Cosmos DB ids may not contain ``/ \\ ? #`` (``%`` escapes them)."""
    return _FORBIDDEN.sub(lambda m: f"%{ord(m.group()):02X}", key)


@dataclass(frozen=True)
class Query:
    """Equality filters on top-level fields, optionally within one partition."""

    equals: Mapping[str, Any] = field(default_factory=dict)
    pk: str | None = None
    limit: int = 1000


class DocumentStore(Protocol):
    """A partitioned JSON document store with optimistic concurrency."""

    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        """Return the document with its ``_etag``; raise ``NotFound``."""
        ...

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a new document; raise ``Conflict`` when ``(pk, id)`` exists."""
        ...

    def replace(self, doc: Mapping[str, Any], etag: str | None) -> dict[str, Any]:
        """Overwrite a document; with ``etag``, raise ``PreconditionFailed`` if it changed meanwhile."""
        ...

    def upsert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Create or overwrite unconditionally."""
        ...

    def delete(self, pk: str, doc_id: str) -> None:
        """Remove a document; raise ``NotFound``."""
        ...

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Documents matching every equality filter (cold paths only: explorer, reconciliation)."""
        ...


MAX_UPDATE_ATTEMPTS = 50


def update_document(
    store: DocumentStore,
    doc_id: str,
    change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    *,
    attempts: int = MAX_UPDATE_ATTEMPTS,
) -> dict[str, Any] | None:
    """Optimistic read-modify-write of one document in its own partition (``pk == id``).

    ``change`` gets the current body (without ``_etag``) or None when the document does not exist, and
    returns the new body, or None to leave the document as it is. The write is a create (409 when someone
    created it meanwhile) or a replace with the read ETag (412 when someone changed it meanwhile); a lost
    race reads again and re-applies ``change``, so ``change`` must be a pure function of its input.
    Returns the written body (None when nothing was written).
    """
    from shared.errors import Conflict, NotFound, PreconditionFailed

    for _ in range(attempts):
        try:
            doc = store.read(doc_id, doc_id)
            etag: str | None = doc.pop("_etag")
        except NotFound:
            doc, etag = None, None
        body = change(doc)
        if body is None:
            return None
        body = {**body, "id": doc_id, "pk": doc_id}
        try:
            if etag is None:
                store.create(body)
            else:
                store.replace(body, etag)
            return body
        except (Conflict, PreconditionFailed):
            continue
    raise PreconditionFailed(f"{doc_id}: kept losing races ({attempts} attempts)")
