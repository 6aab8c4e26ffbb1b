"""Document stores behind the lineage service: in-memory (tests, simulate) and Cosmos DB."""

from shared.store.base import DocumentStore, Query
from shared.store.memory import MemoryStore

__all__ = ["DocumentStore", "MemoryStore", "Query"]
