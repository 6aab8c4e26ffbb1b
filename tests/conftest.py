"""Shared fixtures. Keep this file small: fixtures used by one test module belong in that module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from shared.settings import load_settings
from shared.store.cosmos import CosmosStore, ensure_container, make_cosmos_store
from shared.store.memory import MemoryStore
from tools.harness.cosmos_server import CosmosServer, start_cosmos_server


@pytest.fixture(scope="session")
def cosmos_server() -> Iterator[CosmosServer]:
    """One local Cosmos server (``@vercel/cosmosdb-server``) for the whole session; needs ``npm ci``."""
    with start_cosmos_server() as server:
        yield server


@pytest.fixture
def cosmos_store(cosmos_server: CosmosServer) -> Iterator[CosmosStore]:
    """A ``CosmosStore`` on a fresh, empty container of the session's server, built by the app's factory."""
    settings = load_settings(cosmos_server.environment(container=f"test-{uuid.uuid4().hex[:12]}"))
    ensure_container(settings)
    store = make_cosmos_store(settings)
    yield store
    store.close()


@pytest.fixture
def memory_store() -> MemoryStore:
    """An empty in-memory store on the real clock (build ``MemoryStore(clock=...)`` to control time)."""
    return MemoryStore()
