"""The Cosmos DB (NoSQL) ``DocumentStore``: the same contract as ``MemoryStore``, over azure-cosmos (sync).

The container's partition key path is ``/pk``; every document carries its partition key value in ``pk``.
Cosmos system properties other than ``_etag`` are stripped on the way out and never sent back.

``store.requests`` counts the HTTP requests the SDK actually sends (see ``RequestCounter``): retries and the
metadata reads an operation triggers included, so benchmarks report requests per decision, not calls into
this class.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline import PipelineRequest
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)
from urllib3.exceptions import InsecureRequestWarning

from shared.errors import Conflict, NotFound, PreconditionFailed, StoreError
from shared.settings import Settings
from shared.store.base import Query

# Added by Cosmos DB to every item; ``_etag`` is kept because the contract exposes it.
SYSTEM_PROPERTIES = frozenset({"_rid", "_self", "_ts", "_attachments"})

# Client options. The loop guard runs inside webhook triggers that must answer within seconds (GitHub
# waits 10 s, Teams 5 s), so the SDK's defaults (65 s read timeout, 9 throttling retries over up to 30 s)
# are far too patient: fail fast and let the caller's own retry (redelivery, Service Bus) take over.
CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,  # seconds to connect
    "read_timeout": 5,  # seconds to wait for a response
    "timeout": 8,  # seconds for a whole operation, retries included
    "retry_throttle_total": 3,  # 429 retries (SDK default 9)
    "retry_throttle_backoff_max": 4,  # seconds of cumulative 429 wait (SDK default 30)
}

_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(endpoint: str) -> bool:
    """Whether an endpoint URL points at this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    host = urlparse(endpoint).hostname or ""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RequestCounter:
    """Counts the HTTP requests the SDK sends for data, as an azure-core ``raw_request_hook`` (thread-safe).

    The SDK's hook policy sits after its retry policies, so it runs once per attempt. Installed on the client
    (``CosmosClient(..., raw_request_hook=counter)``) it sees every request that client sends; it counts those
    for resources under ``/dbs/``: data operations, their retries, and the metadata reads they trigger
    (container properties, partition key ranges). Account reads and endpoint health checks (``GET /``, which
    the SDK also sends from a background thread on its own schedule) are not data traffic and not counted.
    A hook passed per call alone would miss transport-level retries, hence the client-level install in the
    factory.
    """

    def __init__(self) -> None:
        """Start at zero."""
        self._lock = threading.Lock()
        self._value = 0

    def __call__(self, request: PipelineRequest[Any]) -> None:
        """Count one request (the hook signature) if it is for a resource under ``/dbs/``."""
        if not urlparse(request.http_request.url).path.lstrip("/").startswith("dbs"):
            return
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        """Requests counted so far."""
        with self._lock:
            return self._value

    def reset(self) -> None:
        """Start again from zero (for example after client start-up)."""
        with self._lock:
            self._value = 0


class CosmosStore:
    """A ``DocumentStore`` over one Cosmos DB container partitioned on ``/pk``."""

    def __init__(
        self,
        container: ContainerProxy,
        client: CosmosClient | None = None,
        counter: RequestCounter | None = None,
    ) -> None:
        """Wrap ``container``.

        ``client``, when given, is owned by the store and closed by ``close``. ``counter`` should be the hook
        installed on that client (see ``RequestCounter``); without one, the store counts per call.
        """
        self._container = container
        self._client = client
        self._count = counter or RequestCounter()

    @property
    def requests(self) -> int:
        """HTTP requests the SDK sent for this store so far, retries included (see ``RequestCounter``)."""
        return self._count.value

    def close(self) -> None:
        """Close the client this store owns (its connection pool); a no-op for a borrowed container."""
        if self._client is None:
            return
        # The SDK probes the account from a background thread after the first request; closing under it
        # makes that thread log an error. The attribute path is private, hence the defensive lookups.
        manager = getattr(getattr(self._client, "client_connection", None), "_global_endpoint_manager", None)
        refresher = getattr(manager, "_refresh_thread", None)
        if isinstance(refresher, threading.Thread):
            refresher.join(timeout=5)
        self._client.close()

    # -- DocumentStore -------------------------------------------------------------------------------
    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        """Return the document with its ``_etag``; raise ``NotFound``."""
        with _translated("read", doc_id):
            item = self._container.read_item(doc_id, partition_key=pk, raw_request_hook=self._count)
        return _outgoing(item)

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a new document; raise ``Conflict`` when ``(pk, id)`` exists."""
        body = _incoming(doc)
        with _translated("create", body["id"]):
            item = self._container.create_item(body, raw_request_hook=self._count)
        return _outgoing(item)

    def replace(self, doc: Mapping[str, Any], etag: str | None) -> dict[str, Any]:
        """Overwrite a document; with ``etag``, raise ``PreconditionFailed`` if it changed meanwhile."""
        body = _incoming(doc)
        condition: dict[str, Any] = {}
        if etag is not None:
            condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        with _translated("replace", body["id"]):
            item = self._container.replace_item(body["id"], body, raw_request_hook=self._count, **condition)
        return _outgoing(item)

    def upsert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Create or overwrite unconditionally."""
        body = _incoming(doc)
        with _translated("upsert", body["id"]):
            item = self._container.upsert_item(body, raw_request_hook=self._count)
        return _outgoing(item)

    def delete(self, pk: str, doc_id: str) -> None:
        """Remove a document; raise ``NotFound``."""
        with _translated("delete", doc_id):
            self._container.delete_item(doc_id, partition_key=pk, raw_request_hook=self._count)

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Documents matching every equality filter, ordered by ``(pk, id)`` like ``MemoryStore``.

        Within one partition the server orders and applies the limit. Across partitions every match is read
        and the first ``limit`` by ``(pk, id)`` are kept: Cosmos can only ``ORDER BY c.pk, c.id`` with a
        composite index, and ``TOP`` over ``ORDER BY c.id`` alone would keep different documents than the
        memory store. Acceptable because queries are for cold paths only (explorer, reconciliation).
        """
        sql, parameters = build_query(query)
        options: dict[str, Any] = (
            {"partition_key": query.pk} if query.pk is not None else {"enable_cross_partition_query": True}
        )
        with _translated("query", None):
            items = list(
                self._container.query_items(sql, parameters=parameters, raw_request_hook=self._count, **options)
            )
        found = sorted((_outgoing(item) for item in items), key=lambda d: (str(d["pk"]), str(d["id"])))
        return found[: query.limit]


def build_query(query: Query) -> tuple[str, list[dict[str, Any]]]:
    """Parameterized SQL for a ``Query``: values are parameters, field names are quoted JSON string literals.

    With ``pk`` the query is ``SELECT TOP @limit ... ORDER BY c.id`` (one partition: the server's order is
    the contract's); without, it has neither (see ``CosmosStore.query``).
    """
    if query.limit < 0:
        raise ValueError("query limit must not be negative")
    clauses: list[str] = []
    parameters: list[dict[str, Any]] = []
    if query.pk is not None:
        clauses.append("c.pk = @pk")
        parameters.append({"name": "@pk", "value": query.pk})
    for index, (field, value) in enumerate(query.equals.items()):
        # json.dumps escapes quotes and control characters the way Cosmos SQL string literals expect, so a
        # field name can never end the literal and inject SQL.
        clauses.append(f"c[{json.dumps(str(field))}] = @p{index}")
        parameters.append({"name": f"@p{index}", "value": value})
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    if query.pk is None:
        return f"SELECT * FROM c{where}", parameters  # noqa: S608 (only parameters and quoted names)
    parameters.append({"name": "@limit", "value": query.limit})
    return f"SELECT TOP @limit * FROM c{where} ORDER BY c.id", parameters  # noqa: S608 (as above)


def _incoming(doc: Mapping[str, Any]) -> dict[str, Any]:
    if "id" not in doc or "pk" not in doc:
        raise ValueError("a document needs 'id' and 'pk'")
    return {key: value for key, value in doc.items() if key != "_etag" and key not in SYSTEM_PROPERTIES}


def _outgoing(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in SYSTEM_PROPERTIES}


# Cosmos DB's sub-status for a 404 whose database or container (not item) is missing.
_OWNER_RESOURCE_NOT_FOUND = 1003

# Operations whose 404 can only mean "the item is not there"; for the others it means the container is missing.
_ITEM_OPERATIONS = frozenset({"read", "replace", "delete"})


@contextmanager
def _translated(operation: str, doc_id: str | None) -> Iterator[None]:
    """Turn SDK errors into the store's errors; messages name the operation and status, never a secret.

    A missing database or container is a ``StoreError``, not ``NotFound``: reading it as "no such document"
    would let a misconfigured app believe it had never seen an event.
    """
    subject = doc_id or operation
    try:
        yield
    except CosmosResourceExistsError:
        raise Conflict(subject) from None
    except CosmosAccessConditionFailedError:
        raise PreconditionFailed(subject) from None
    except CosmosResourceNotFoundError as exc:
        if operation in _ITEM_OPERATIONS and getattr(exc, "sub_status", None) != _OWNER_RESOURCE_NOT_FOUND:
            raise NotFound(subject) from None
        raise StoreError(f"Cosmos DB {operation} failed: HTTP 404, database or container missing",
                         status_code=404) from exc
    except CosmosHttpResponseError as exc:
        if exc.status_code == 412:
            raise PreconditionFailed(subject) from None
        sub_status = f"/{exc.sub_status}" if getattr(exc, "sub_status", None) else ""
        raise StoreError(f"Cosmos DB {operation} failed: HTTP {exc.status_code}{sub_status}",
                         status_code=exc.status_code) from exc
    except AzureError as exc:
        # Connection failures and timeouts: the type says enough, the text may carry URLs and headers.
        raise StoreError(f"Cosmos DB {operation} failed: {type(exc).__name__}") from exc


def make_cosmos_client(
    settings: Settings, credential: TokenCredential | None = None, **client_options: Any
) -> CosmosClient:
    """A Cosmos client for ``COSMOS__accountEndpoint``.

    Key auth only when ``COSMOS_EMULATOR_KEY`` is set (a local server); otherwise ``credential`` or
    ``DefaultAzureCredential`` (the managed identity in Azure, ``AZURE_CLIENT_ID`` for a user-assigned one).
    TLS verification is turned off only for a loopback endpoint (the local server's certificate is
    self-signed). ``client_options`` override ``CLIENT_OPTIONS`` or add SDK keywords (``raw_request_hook``).
    """
    endpoint = settings.require("cosmos_endpoint")
    auth: Any
    if settings.cosmos_key is not None and settings.cosmos_key.get_secret_value():
        auth = settings.cosmos_key.get_secret_value()
    elif credential is not None:
        auth = credential
    else:
        from azure.identity import DefaultAzureCredential

        auth = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
    options = {**CLIENT_OPTIONS, **client_options}
    if is_loopback(endpoint):
        options["connection_verify"] = False
        _silence_insecure_warning_for_loopback()
    # The constructor already reads the account (one request), so it can fail like any operation.
    with _translated("connect", None):
        return CosmosClient(endpoint, credential=auth, **options)


def make_cosmos_store(settings: Settings, credential: TokenCredential | None = None) -> CosmosStore:
    """The lineage ``CosmosStore`` on ``COSMOS_DATABASE`` / ``COSMOS_LINEAGE_CONTAINER`` (see ``make_cosmos_client``).

    The database and container must exist (Bicep creates them in Azure); ``ensure_container`` does it locally.
    """
    counter = RequestCounter()
    client = make_cosmos_client(settings, credential, raw_request_hook=counter)
    container = client.get_database_client(settings.cosmos_database).get_container_client(settings.cosmos_container)
    counter.reset()  # start from zero whatever the client's start-up sent
    return CosmosStore(container, client=client, counter=counter)


def ensure_container(settings: Settings, credential: TokenCredential | None = None) -> None:
    """Create the database and the container (partition key ``/pk``, TTL on) when missing.

    For local servers and tests only: in Azure, Bicep creates both and the app's data-plane role cannot.
    ``default_ttl=-1`` turns TTL on without a default expiry, so each document's ``ttl`` applies.
    """
    with make_cosmos_client(settings, credential) as client, _translated("ensure_container", None):
        database = client.create_database_if_not_exists(settings.cosmos_database)
        database.create_container_if_not_exists(
            settings.cosmos_container, partition_key=PartitionKey(path="/pk"), default_ttl=-1
        )


def _silence_insecure_warning_for_loopback() -> None:
    # urllib3 warns on every unverified request; silence it for loopback hosts only, so an unverified request
    # to anything else still warns. Re-added per client (``filterwarnings`` replaces an identical filter):
    # ``warnings.catch_warnings`` blocks, as pytest runs every test in, drop filters added inside them.
    warnings.filterwarnings(
        "ignore",
        message=r"Unverified HTTPS request is being made to host '(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])'",
        category=InsecureRequestWarning,
    )
