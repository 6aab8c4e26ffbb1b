"""One contract suite for every ``DocumentStore``: the memory store and the Cosmos store must agree.

The Cosmos runs use the local ``@vercel/cosmosdb-server`` (started once per session by ``conftest``), through
the same factory the app uses.

TTL is tested on the memory store only, with an injected clock. The local Cosmos server stores ``ttl`` and
the container's ``defaultTtl`` but never expires anything: its ``lib/`` has no TTL code at all (checked in
version 1.0.1), so a Cosmos TTL test could only prove the server's gap. Real Cosmos DB expires an item
``ttl`` seconds after its last write when the container has a default TTL (``ensure_container`` sets -1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo

from shared.errors import ConfigurationError, Conflict, NotFound, PreconditionFailed, StoreError
from shared.settings import load_settings
from shared.store.base import DocumentStore, Query
from shared.store.cosmos import SYSTEM_PROPERTIES, build_query, is_loopback, make_cosmos_client, make_cosmos_store
from shared.store.memory import MemoryStore
from tools.harness.cosmos_server import CosmosServer

STORES = ["memory", pytest.param("cosmos", marks=pytest.mark.integration)]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Any:
    """Each contract test runs once per store implementation."""
    return request.getfixturevalue(f"{request.param}_store")


def _without_etag(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "_etag"}


# -- create / read -------------------------------------------------------------------------------------


def test_create_then_read_returns_the_document_with_its_etag(store: DocumentStore) -> None:
    doc = {"id": "d1", "pk": "chain-1", "depth": 2, "tags": ["a", "b"], "nested": {"x": 1}}

    created = store.create(doc)
    read = store.read("chain-1", "d1")

    assert created["_etag"]
    assert read["_etag"] == created["_etag"]
    assert _without_etag(read) == doc
    assert _without_etag(created) == doc


def test_create_twice_raises_conflict(store: DocumentStore) -> None:
    store.create({"id": "d1", "pk": "chain-1", "v": 1})

    with pytest.raises(Conflict):
        store.create({"id": "d1", "pk": "chain-1", "v": 2})

    assert store.read("chain-1", "d1")["v"] == 1


def test_read_missing_raises_not_found(store: DocumentStore) -> None:
    with pytest.raises(NotFound):
        store.read("chain-1", "nope")


def test_store_errors_share_one_base_class() -> None:
    assert issubclass(Conflict, StoreError)
    assert issubclass(PreconditionFailed, StoreError)
    assert issubclass(NotFound, StoreError)


def test_a_document_needs_id_and_pk(store: DocumentStore) -> None:
    with pytest.raises(ValueError, match="'id' and 'pk'"):
        store.create({"id": "d1"})
    with pytest.raises(ValueError, match="'id' and 'pk'"):
        store.upsert({"pk": "chain-1"})


# -- replace -------------------------------------------------------------------------------------------


def test_replace_with_current_etag_writes_and_changes_the_etag(store: DocumentStore) -> None:
    created = store.create({"id": "d1", "pk": "chain-1", "v": 1})

    replaced = store.replace({"id": "d1", "pk": "chain-1", "v": 2}, etag=created["_etag"])

    assert replaced["_etag"] != created["_etag"]
    read = store.read("chain-1", "d1")
    assert read["v"] == 2
    assert read["_etag"] == replaced["_etag"]


def test_replace_with_stale_etag_raises_precondition_failed(store: DocumentStore) -> None:
    stale = store.create({"id": "d1", "pk": "chain-1", "v": 1})["_etag"]
    store.replace({"id": "d1", "pk": "chain-1", "v": 2}, etag=stale)

    with pytest.raises(PreconditionFailed):
        store.replace({"id": "d1", "pk": "chain-1", "v": 3}, etag=stale)

    assert store.read("chain-1", "d1")["v"] == 2


def test_replace_without_etag_overwrites(store: DocumentStore) -> None:
    store.create({"id": "d1", "pk": "chain-1", "v": 1, "gone": True})

    store.replace({"id": "d1", "pk": "chain-1", "v": 2}, etag=None)

    assert _without_etag(store.read("chain-1", "d1")) == {"id": "d1", "pk": "chain-1", "v": 2}


@pytest.mark.parametrize("etag", [None, '"some-etag"'])
def test_replace_missing_raises_not_found(store: DocumentStore, etag: str | None) -> None:
    with pytest.raises(NotFound):
        store.replace({"id": "nope", "pk": "chain-1", "v": 1}, etag=etag)


def test_a_read_document_can_be_written_back_as_is(store: DocumentStore) -> None:
    store.create({"id": "d1", "pk": "chain-1", "v": 1})
    read = store.read("chain-1", "d1")  # carries _etag

    read["v"] = 2
    replaced = store.replace(read, etag=read["_etag"])
    upserted = store.upsert(replaced)

    assert store.read("chain-1", "d1")["v"] == 2
    assert upserted["_etag"] != read["_etag"]


# -- upsert / delete -----------------------------------------------------------------------------------


def test_upsert_creates_then_overwrites(store: DocumentStore) -> None:
    first = store.upsert({"id": "d1", "pk": "chain-1", "v": 1})
    assert store.read("chain-1", "d1")["v"] == 1

    second = store.upsert({"id": "d1", "pk": "chain-1", "v": 2})

    assert store.read("chain-1", "d1")["v"] == 2
    assert second["_etag"] != first["_etag"]


def test_delete_then_delete_again_raises_not_found(store: DocumentStore) -> None:
    store.create({"id": "d1", "pk": "chain-1"})

    store.delete("chain-1", "d1")

    with pytest.raises(NotFound):
        store.read("chain-1", "d1")
    with pytest.raises(NotFound):
        store.delete("chain-1", "d1")
    store.create({"id": "d1", "pk": "chain-1"})  # the id is free again


def test_same_id_in_two_partitions_is_two_documents(store: DocumentStore) -> None:
    store.create({"id": "d1", "pk": "chain-1", "v": 1})
    store.create({"id": "d1", "pk": "chain-2", "v": 2})

    assert store.read("chain-1", "d1")["v"] == 1
    assert store.read("chain-2", "d1")["v"] == 2
    store.delete("chain-1", "d1")
    assert store.read("chain-2", "d1")["v"] == 2
    with pytest.raises(NotFound):
        store.read("chain-1", "d1")


# -- query ---------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(store: DocumentStore) -> DocumentStore:
    for pk, doc_id, kind, n in [
        ("chain-2", "d", "hop", 1),
        ("chain-1", "b", "hop", 2),
        ("chain-1", "c", "marker", 1),
        ("chain-2", "a", "hop", 1),
        ("chain-1", "a", "hop", 1),
    ]:
        store.create({"id": doc_id, "pk": pk, "kind": kind, "n": n})
    return store


def _keys(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(doc["pk"], doc["id"]) for doc in docs]


def test_query_within_a_partition(seeded: DocumentStore) -> None:
    assert _keys(seeded.query(Query(pk="chain-1", equals={"kind": "hop"}))) == [("chain-1", "a"), ("chain-1", "b")]
    assert _keys(seeded.query(Query(pk="chain-1"))) == [("chain-1", "a"), ("chain-1", "b"), ("chain-1", "c")]
    assert seeded.query(Query(pk="chain-3")) == []


def test_query_across_partitions_with_several_filters(seeded: DocumentStore) -> None:
    found = seeded.query(Query(equals={"kind": "hop", "n": 1}))

    assert _keys(found) == [("chain-1", "a"), ("chain-2", "a"), ("chain-2", "d")]
    assert all(doc["_etag"] for doc in found)


def test_query_honours_the_limit_in_pk_id_order(seeded: DocumentStore) -> None:
    assert _keys(seeded.query(Query(pk="chain-1", equals={"kind": "hop"}, limit=1))) == [("chain-1", "a")]
    # Across partitions too: the first two by (pk, id), not the first two by id alone.
    assert _keys(seeded.query(Query(equals={"kind": "hop"}, limit=2))) == [("chain-1", "a"), ("chain-1", "b")]
    assert seeded.query(Query(equals={"kind": "hop"}, limit=0)) == []


def test_query_matches_values_by_type_and_odd_field_names(store: DocumentStore) -> None:
    store.create({"id": "d1", "pk": "p", "n": 1, 'we"ird] name': "x"})
    store.create({"id": "d2", "pk": "p", "n": "1", 'we"ird] name': "y"})

    assert _keys(store.query(Query(equals={"n": 1}))) == [("p", "d1")]
    assert _keys(store.query(Query(equals={'we"ird] name': "y"}))) == [("p", "d2")]
    assert store.query(Query(equals={"missing": 1})) == []


def test_build_query_keeps_values_out_of_the_sql() -> None:
    sql, parameters = build_query(Query(pk="chain-1", equals={"kind": "x' OR 1=1 --"}, limit=5))

    assert sql == 'SELECT TOP @limit * FROM c WHERE c.pk = @pk AND c["kind"] = @p0 ORDER BY c.id'
    assert {"name": "@p0", "value": "x' OR 1=1 --"} in parameters
    assert {"name": "@limit", "value": 5} in parameters


# -- system properties ---------------------------------------------------------------------------------


def test_system_properties_are_not_leaked(seeded: DocumentStore) -> None:
    outputs = [
        seeded.read("chain-1", "a"),
        seeded.create({"id": "e", "pk": "chain-1"}),
        seeded.upsert({"id": "f", "pk": "chain-1"}),
        seeded.replace({"id": "f", "pk": "chain-1", "v": 1}, etag=None),
        *seeded.query(Query()),
    ]

    for doc in outputs:
        assert not SYSTEM_PROPERTIES & doc.keys(), doc
        assert {key for key in doc if key.startswith("_")} == {"_etag"}


# -- concurrency ---------------------------------------------------------------------------------------


def test_concurrent_read_modify_replace_loses_no_update(store: DocumentStore) -> None:
    store.create({"id": "counter", "pk": "chain-1", "value": 0})
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def increment_five_times() -> None:
        try:
            start.wait()
            for _ in range(5):
                while True:
                    doc = store.read("chain-1", "counter")
                    doc["value"] += 1
                    try:
                        store.replace(doc, etag=doc["_etag"])
                        break
                    except PreconditionFailed:
                        continue
        except BaseException as exc:  # surfaced below: an exception in a thread does not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=increment_five_times) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    assert store.read("chain-1", "counter")["value"] == 100


# -- request counting ----------------------------------------------------------------------------------


def test_one_point_read_is_one_request(store: Any) -> None:
    store.create({"id": "d1", "pk": "chain-1"})  # warms the SDK's caches (container properties)
    before = store.requests

    store.read("chain-1", "d1")

    assert store.requests == before + 1


def test_a_missing_read_and_a_lost_race_are_one_request_each(store: Any) -> None:
    store.create({"id": "d1", "pk": "chain-1"})
    before = store.requests

    with pytest.raises(NotFound):
        store.read("chain-1", "nope")
    with pytest.raises(PreconditionFailed):
        store.replace({"id": "d1", "pk": "chain-1"}, etag='"stale"')

    assert store.requests == before + 2  # neither is retried by the SDK


# -- TTL (memory store, injected clock) ------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ttl_store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def test_ttl_expires_a_document_after_its_last_write(ttl_store: MemoryStore, clock: FakeClock) -> None:
    ttl_store.create({"id": "d1", "pk": "p", "ttl": 60})
    clock.advance(59)
    assert ttl_store.read("p", "d1")["ttl"] == 60

    clock.advance(1)

    with pytest.raises(NotFound):
        ttl_store.read("p", "d1")
    ttl_store.create({"id": "d1", "pk": "p", "ttl": 60})  # an expired id can be created again


def test_a_write_restarts_the_ttl(ttl_store: MemoryStore, clock: FakeClock) -> None:
    created = ttl_store.create({"id": "d1", "pk": "p", "ttl": 60})
    clock.advance(50)
    ttl_store.replace({"id": "d1", "pk": "p", "ttl": 60}, etag=created["_etag"])
    clock.advance(50)

    assert ttl_store.read("p", "d1")

    clock.advance(10)
    with pytest.raises(NotFound):
        ttl_store.read("p", "d1")


@pytest.mark.parametrize("doc_ttl", [None, -1])
def test_no_ttl_or_minus_one_never_expires(ttl_store: MemoryStore, clock: FakeClock, doc_ttl: int | None) -> None:
    doc: dict[str, Any] = {"id": "d1", "pk": "p"}
    if doc_ttl is not None:
        doc["ttl"] = doc_ttl
    ttl_store.create(doc)

    clock.advance(10 * 365 * 24 * 3600)

    assert ttl_store.read("p", "d1")


@pytest.mark.parametrize(
    ("operation", "expired_error"),
    [
        (lambda s: s.read("p", "d1"), NotFound),
        (lambda s: s.delete("p", "d1"), NotFound),
        (lambda s: s.replace({"id": "d1", "pk": "p"}, etag=None), NotFound),
    ],
)
def test_an_expired_document_is_gone_for_every_operation(
    ttl_store: MemoryStore,
    clock: FakeClock,
    operation: Callable[[MemoryStore], object],
    expired_error: type[Exception],
) -> None:
    ttl_store.create({"id": "d1", "pk": "p", "ttl": 1, "kind": "x"})
    clock.advance(1)

    with pytest.raises(expired_error):
        operation(ttl_store)
    assert ttl_store.query(Query(equals={"kind": "x"})) == []


def test_ttl_is_stored_and_returned(store: DocumentStore) -> None:
    # The one TTL fact both stores share here: the field round-trips (the local Cosmos server never expires).
    store.create({"id": "d1", "pk": "p", "ttl": 3600})

    assert store.read("p", "d1")["ttl"] == 3600


# -- factory helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("https://localhost:8081/", True),
        ("https://127.0.0.1:8081/", True),
        ("https://[::1]:8081/", True),
        ("https://reynolds-abc.documents.azure.com:443/", False),
        ("https://localhost.evil.example/", False),
        ("https://10.0.0.4/", False),
    ],
)
def test_tls_checks_are_only_skipped_for_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


# -- Cosmos only: factory and error mapping ------------------------------------------------------------


class RecordingCredential:
    """A ``TokenCredential`` that hands out a dummy token and records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("not-a-real-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.scopes.extend(scopes)
        return AccessTokenInfo("not-a-real-token", int(time.time()) + 3600)


@pytest.mark.integration
def test_without_an_emulator_key_the_given_credential_is_used(cosmos_server: CosmosServer) -> None:
    env = cosmos_server.environment(container="lineage")
    del env["COSMOS_EMULATOR_KEY"]
    credential = RecordingCredential()

    with make_cosmos_client(load_settings(env), credential=credential):
        pass

    assert credential.scopes
    assert all(scope.endswith("/.default") for scope in credential.scopes)


@pytest.mark.integration
def test_a_missing_container_is_a_store_error_not_a_missing_document(cosmos_server: CosmosServer) -> None:
    store = make_cosmos_store(load_settings(cosmos_server.environment(container="never-created")))
    try:
        with pytest.raises(StoreError) as raised:
            store.create({"id": "d1", "pk": "p"})
        assert not isinstance(raised.value, NotFound)
        with pytest.raises(StoreError) as raised:
            store.upsert({"id": "d1", "pk": "p"})
        assert not isinstance(raised.value, NotFound)
    finally:
        store.close()


def test_an_unreachable_account_is_a_store_error_without_secrets() -> None:
    key = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
    settings = load_settings({"COSMOS__accountEndpoint": "https://127.0.0.1:9/", "COSMOS_EMULATOR_KEY": key})

    with pytest.raises(StoreError) as raised:
        make_cosmos_store(settings)

    assert key not in str(raised.value)
    assert "connect" in str(raised.value)


def test_the_factory_names_the_missing_endpoint_setting() -> None:
    with pytest.raises(ConfigurationError, match="COSMOS__accountEndpoint"):
        make_cosmos_store(load_settings({}))
