"""Microsoft Graph for Teams: the client factory, its typed errors and throttling.

Change notifications are in :mod:`.notifications`, subscriptions in :mod:`.subscriptions`, reading and posting
messages in :mod:`.messages`.

Design decisions (see also the module's tests, which drive msgraph-sdk against ``tools/fakes/graph``):

* **Client.** ``make_graph_client`` builds ``GraphServiceClient(request_adapter=GraphRequestAdapter(auth))``
  and sets ``request_adapter.base_url`` (msgraph-sdk only fills in ``https://graph.microsoft.com/v1.0`` when
  the adapter has no base URL, so an override reaches a loopback fake). The auth provider is kiota's
  ``AzureIdentityAuthenticationProvider`` with the ``https://graph.microsoft.com/.default`` scope and the
  allowed hosts pinned to the base URL's host, so a token is never sent anywhere else. That provider refuses
  plain ``http`` except for ``localhost``/``127.0.0.1``/``::1``, which is exactly what a loopback fake needs;
  a test may also pass kiota's ``AnonymousAuthenticationProvider`` (no Azure at all).
* **Throttling.** msgraph-sdk's ``RetryHandler`` retries 429/503/504 three times and sleeps ``Retry-After``
  *uncapped* inside the call. An activity must not sleep (the Functions host bills it and the orchestration
  cannot see it), so the factory disables that handler (``RetryHandlerOption(max_retries=0,
  should_retry=False)``) and every call here converts a 429 (or a 503/504 carrying ``Retry-After``) into a
  typed ``GraphThrottled(retry_after)``; the orchestrator waits on a durable timer and retries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import AuthenticationProvider
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph._version import VERSION as MSGRAPH_VERSION
from msgraph_core import APIVersion, GraphClientFactory
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

from shared.errors import ConfigurationError, ReynoldsError
from shared.settings import Settings, alias_of

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
#: Channel/chat message subscriptions without resource data: Graph's maximum is 60 minutes.
MAX_MESSAGE_SUBSCRIPTION_LIFETIME = timedelta(minutes=60)
DEFAULT_LIFETIME = timedelta(minutes=55)
DEFAULT_RENEW_WITHIN = timedelta(minutes=15)
#: Graph asks for a lifecycle URL above this lifetime.
LIFECYCLE_URL_REQUIRED_ABOVE = timedelta(hours=1)
#: Used when Graph throttles without ``Retry-After`` (Graph's guidance: back off; the orchestrator adds jitter).
DEFAULT_RETRY_AFTER_SECONDS = 10.0
MAX_CLIENT_STATE_CHARS = 128
ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
STATUS_CARD_ATTACHMENT_ID = "reynolds-status"
MAX_CARD_FACTS = 40

T = TypeVar("T")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC (inject another clock in tests)."""
    return datetime.now(UTC)


# --- errors -----------------------------------------------------------------------------------------------


class GraphError(ReynoldsError):
    """A Graph call failed; ``status_code`` and Graph's error ``code`` tell why (never a token or body)."""

    def __init__(self, status_code: int | None, code: str | None, message: str) -> None:
        super().__init__(f"Graph {status_code} {code or ''}: {message}".strip())
        self.status_code = status_code
        self.code = code


class GraphThrottled(GraphError):
    """Graph answered 429 (or 503/504 with ``Retry-After``): wait ``retry_after`` seconds, then retry."""

    def __init__(self, retry_after: float, status_code: int = 429, code: str | None = None, message: str = "") -> None:
        super().__init__(status_code, code, message or f"throttled, retry after {retry_after:g}s")
        self.retry_after = retry_after


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None and isinstance(headers, Mapping):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return str(value) if value is not None else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` when absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or utc_now())).total_seconds())


def graph_error_from(exc: APIError) -> GraphError:
    """Translate a kiota/msgraph ``APIError`` (``ODataError``) into ``GraphError`` or ``GraphThrottled``."""
    status = exc.response_status_code
    main = getattr(exc, "error", None)
    code = getattr(main, "code", None)
    message = getattr(main, "message", None) or exc.message or "request failed"
    retry_after = parse_retry_after(_header(exc.response_headers, "Retry-After"))
    if status == 429 or (status in (503, 504) and retry_after is not None):
        return GraphThrottled(
            retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS,
            status_code=status or 429,
            code=code,
            message=str(message)[:500],
        )
    return GraphError(status, code, str(message)[:500])


async def graph_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except APIError as exc:
        raise graph_error_from(exc) from exc


# --- client -----------------------------------------------------------------------------------------------


def make_graph_client(
    settings: Settings,
    credential: AsyncTokenCredential | TokenCredential | None = None,
    base_url: str | None = None,
    *,
    auth_provider: AuthenticationProvider | None = None,
    timeout_seconds: float = 30.0,
) -> GraphServiceClient:
    """A ``GraphServiceClient`` on ``base_url`` (default ``settings.graph_api_url``) with retries disabled.

    ``credential`` defaults to ``DefaultAzureCredential`` (managed identity ``AZURE_CLIENT_ID`` in Azure);
    ``auth_provider`` replaces the Azure Identity provider entirely (e.g. ``AnonymousAuthenticationProvider``
    for a loopback fake). Throttling surfaces as ``GraphThrottled`` instead of sleeping in the SDK.
    """
    url = (base_url or settings.graph_api_url).rstrip("/")
    parsed = urlparse(url)
    if not parsed.scheme or not parsed.hostname:
        raise ConfigurationError(alias_of("graph_api_url"), "is not an absolute URL")
    if auth_provider is None:
        if credential is None:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
        # Pinning allowed hosts keeps the token from ever leaving for another host (redirects included).
        auth_provider = AzureIdentityAuthenticationProvider(
            credential, scopes=[GRAPH_SCOPE], allowed_hosts=[parsed.hostname]
        )
    options = {
        UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(
            enabled=True, replacement_pairs={"/users/me-token-to-replace": "/me"}
        ),
        GraphTelemetryHandlerOption.get_key(): GraphTelemetryHandlerOption(
            api_version=APIVersion.v1, sdk_version=MSGRAPH_VERSION
        ),
        RetryHandlerOption.get_key(): RetryHandlerOption(delay=0.0, max_retries=0, should_retry=False),
    }
    http_client = GraphClientFactory.create_with_default_middleware(options=options)
    http_client.timeout = timeout_seconds
    adapter = GraphRequestAdapter(auth_provider, client=http_client)
    adapter.base_url = url
    return GraphServiceClient(request_adapter=adapter)
