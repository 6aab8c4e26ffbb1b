"""Microsoft Graph for Teams: client factory, change notifications, subscriptions, posting messages and cards.

Design decisions (see also the module's tests, which drive msgraph-sdk against ``tests/fakes/graph_server``):

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
* **Subscription lifetime.** Channel and chat message subscriptions without resource data live at most 60
  minutes; ``SubscriptionManager`` asks for 55 (``DEFAULT_LIFETIME``) so clock skew cannot push a request
  over the limit, and renews when less than ``DEFAULT_RENEW_WITHIN`` is left. A
  ``lifecycleNotificationUrl`` is mandatory only above one hour; it is sent whenever one is known anyway,
  because it also brings ``subscriptionRemoved`` and ``missed`` events.
* **Posting.** ``post_channel_message``/``post_chat_message`` embed the lineage marker as an HTML comment.
  Note: Graph only lets an *application* post channel messages for migration; in production these calls run
  with a delegated token (a service account), so the resulting notifications name that account as a human
  author: the effect ledger (keyed by the returned message id) and the marker are what mark them as ours.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
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
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.chat_message import ChatMessage
from msgraph.generated.models.chat_message_attachment import ChatMessageAttachment
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.subscription import Subscription
from msgraph_core import APIVersion, GraphClientFactory
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

from shared.errors import ConfigurationError, IncomingRequestError, ReynoldsError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target, truncate
from shared.platforms.teams.webhook import TEAMS_SOURCE_PREFIX, embed_marker, extract_markers, html_to_text
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


async def _graph_call(call: Awaitable[T]) -> T:
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


# --- validation handshake and notifications ----------------------------------------------------------------


def handle_validation(query_token: str | None) -> tuple[int, str, str]:
    """Answer Graph's subscription validation: ``(200, token, "text/plain")``, or 400 when the token is missing.

    The token must come back exactly as received (the query string already URL-decoded), as plain text,
    within 10 seconds.
    """
    if not query_token:
        return 400, "missing validationToken", "text/plain"
    return 200, query_token, "text/plain"


class LifecycleEvent(StrEnum):
    """Graph lifecycle notifications for a subscription."""

    REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
    SUBSCRIPTION_REMOVED = "subscriptionRemoved"
    MISSED = "missed"


class MessageKind(StrEnum):
    """Where a Teams message lives."""

    CHANNEL = "channel"
    CHAT = "chat"


@dataclass(frozen=True)
class MessageRef:
    """A Teams message as Graph addresses it (parsed from a notification resource)."""

    kind: MessageKind
    message_id: str
    team_id: str | None = None
    channel_id: str | None = None
    chat_id: str | None = None
    #: The root message when ``message_id`` is a channel reply.
    reply_to_id: str | None = None

    @property
    def target_key(self) -> str:
        """``teams:<team>/<channel>`` for channels, the chat id for chats (as the Teams webhook names them)."""
        if self.kind is MessageKind.CHANNEL:
            return f"teams:{self.team_id}/{self.channel_id}"
        return str(self.chat_id)

    @property
    def resource(self) -> str:
        """The resource path in Graph's notification form."""
        if self.kind is MessageKind.CHAT:
            return f"chats('{self.chat_id}')/messages('{self.message_id}')"
        base = f"teams('{self.team_id}')/channels('{self.channel_id}')/messages"
        if self.reply_to_id:
            return f"{base}('{self.reply_to_id}')/replies('{self.message_id}')"
        return f"{base}('{self.message_id}')"


_SEG = r"\(\s*'(?P<{0}>[^']*)'\s*\)|/(?P<{0}_p>[^/()']+)"
_CHANNEL_RE = re.compile(
    r"^/?teams(?:{team})/channels(?:{channel})/messages(?:{msg})(?:/replies(?:{reply}))?/?$".format(
        team=_SEG.format("team"), channel=_SEG.format("channel"), msg=_SEG.format("msg"), reply=_SEG.format("reply")
    ),
    re.IGNORECASE,
)
_CHAT_RE = re.compile(
    r"^/?chats(?:{chat})/messages(?:{msg})/?$".format(chat=_SEG.format("chat"), msg=_SEG.format("msg")),
    re.IGNORECASE,
)


def _group(match: re.Match[str], name: str) -> str | None:
    return match.group(name) or match.group(f"{name}_p")


def parse_message_resource(resource: str) -> MessageRef | None:
    """Parse ``teams('…')/channels('…')/messages('…')[/replies('…')]`` or ``chats('…')/messages('…')``."""
    resource = resource.strip()
    match = _CHANNEL_RE.match(resource)
    if match:
        team, channel, msg, reply = (_group(match, n) for n in ("team", "channel", "msg", "reply"))
        if not (team and channel and msg):
            return None
        if reply:
            return MessageRef(MessageKind.CHANNEL, reply, team_id=team, channel_id=channel, reply_to_id=msg)
        return MessageRef(MessageKind.CHANNEL, msg, team_id=team, channel_id=channel)
    match = _CHAT_RE.match(resource)
    if match:
        chat, msg = _group(match, "chat"), _group(match, "msg")
        if chat and msg:
            return MessageRef(MessageKind.CHAT, msg, chat_id=chat)
    return None


@dataclass(frozen=True)
class ChangeNotification:
    """One verified change notification about a Teams message (clientState already checked)."""

    subscription_id: str
    change_type: str
    resource: str
    message: MessageRef
    tenant_id: str | None = None
    odata_type: str | None = None
    subscription_expiration: str | None = None


@dataclass(frozen=True)
class LifecycleNotification:
    """A verified lifecycle notification: renew/reauthorize, recreate, or resynchronise."""

    subscription_id: str
    event: LifecycleEvent
    resource: str | None = None
    tenant_id: str | None = None
    subscription_expiration: str | None = None


@dataclass
class NotificationBatch:
    """What one notification POST contained, after the clientState check (the trigger answers 202 anyway)."""

    changes: list[ChangeNotification] = field(default_factory=list)
    lifecycle: list[LifecycleNotification] = field(default_factory=list)
    #: Items whose clientState did not match: dropped, counted, never raised.
    rejected: int = 0
    #: Items that matched clientState but were not understood (unknown resource or lifecycle event).
    ignored: int = 0


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def parse_notifications(raw_body: bytes, client_state_expected: str | None) -> NotificationBatch:
    """Split a Graph notification POST into message changes and lifecycle events, dropping forged items.

    Every item's ``clientState`` is compared in constant time with ``client_state_expected``; mismatches are
    dropped and counted in ``rejected`` (never raised, so the trigger still answers 202 and Graph does not
    retry). A body that is not a notification collection raises ``IncomingRequestError`` (400);
    an unconfigured client state raises ``ConfigurationError``.
    """
    if not client_state_expected:
        raise ConfigurationError(alias_of("graph_client_state"))
    try:
        payload = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IncomingRequestError("notification body is not valid JSON") from None
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise IncomingRequestError("notification body has no value array")

    batch = NotificationBatch()
    for item in items:
        if not isinstance(item, dict):
            batch.ignored += 1
            continue
        state = item.get("clientState")
        if not isinstance(state, str) or not _constant_time_equal(state, client_state_expected):
            batch.rejected += 1
            continue
        sub_id = str(item.get("subscriptionId") or "")
        tenant = item.get("tenantId") if isinstance(item.get("tenantId"), str) else None
        expiry = item.get("subscriptionExpirationDateTime")
        expiry = expiry if isinstance(expiry, str) else None
        resource = item.get("resource") if isinstance(item.get("resource"), str) else None
        lifecycle = item.get("lifecycleEvent")
        if lifecycle is not None:
            try:
                event = LifecycleEvent(lifecycle)
            except ValueError:
                batch.ignored += 1
                continue
            batch.lifecycle.append(LifecycleNotification(sub_id, event, resource, tenant, expiry))
            continue
        raw_data = item.get("resourceData")
        resource_data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        odata_type = resource_data.get("@odata.type")
        ref = parse_message_resource(resource) if resource else None
        if ref is None and isinstance(resource_data.get("@odata.id"), str):
            ref = parse_message_resource(resource_data["@odata.id"])
        change_type = item.get("changeType")
        if ref is None or not sub_id or not isinstance(change_type, str):
            batch.ignored += 1
            continue
        batch.changes.append(
            ChangeNotification(
                subscription_id=sub_id,
                change_type=change_type,
                resource=resource or ref.resource,
                message=ref,
                tenant_id=tenant,
                odata_type=odata_type if isinstance(odata_type, str) else None,
                subscription_expiration=expiry,
            )
        )
    if batch.rejected:
        logger.warning("graph notifications: dropped %d item(s) with a wrong clientState", batch.rejected)
    return batch


def _message_event_id(message_id: str, change_type: str, version: datetime | None = None) -> str:
    # "created" shares the Teams webhook's id (teams:<message id>) so the two doors deduplicate each other.
    if change_type == "created":
        return f"teams:{message_id}"
    suffix = f":{version.isoformat()}" if version else ""
    return f"teams:{message_id}:{change_type}{suffix}"


def _message_data(ref: MessageRef, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": ref.kind.value,
        "team_id": ref.team_id,
        "channel_id": ref.channel_id,
        "chat_id": ref.chat_id,
        "reply_to_id": ref.reply_to_id,
        **extra,
    }
    return {k: v for k, v in data.items() if v is not None}


def notification_to_envelope(change: ChangeNotification, *, received_at: datetime) -> EventEnvelope:
    """An envelope for a change notification before the message is fetched (actor unknown: ``system``).

    Notifications without resource data carry no author or text; an activity calls ``fetch_message`` for
    those before the loop guard judges the actor.
    """
    ref = change.message
    return EventEnvelope(
        id=_message_event_id(ref.message_id, change.change_type),
        source=f"{TEAMS_SOURCE_PREFIX}/{change.tenant_id or 'unknown-tenant'}",
        type=f"com.microsoft.teams.message.{change.change_type}",
        subject=ref.target_key,
        time=received_at,
        data=_message_data(ref, subscription_id=change.subscription_id, resource=change.resource, fetched=False),
        platform=Platform.TEAMS,
        event="teams_message",
        action=change.change_type,
        actor=Actor(kind=ActorKind.SYSTEM, account_type="graph-notification"),
        target=Target(platform=Platform.TEAMS, key=ref.target_key),
        resource_id=ref.message_id,
    )


def _actor_of(message: ChatMessage, self_app_id: str | None) -> Actor:
    sender = message.from_
    user = sender.user if sender else None
    app = sender.application if sender else None
    if user is not None and user.id:
        return Actor(login=user.display_name, id=user.id, kind=ActorKind.HUMAN, account_type="user")
    if app is not None and app.id:
        kind = ActorKind.SELF if self_app_id and app.id == self_app_id else ActorKind.BOT
        return Actor(login=app.display_name, id=app.id, kind=kind, account_type="application")
    return Actor(kind=ActorKind.SYSTEM, account_type="system")


async def fetch_message(
    client: GraphServiceClient,
    resource: str,
    *,
    change_type: str = "created",
    self_app_id: str | None = None,
    received_at: datetime | None = None,
) -> EventEnvelope:
    """GET the message a notification names (through msgraph-sdk) and build its full envelope.

    Text is the visible text of the HTML body; lineage markers found in it go to ``data["markers"]``.
    Raises ``IncomingRequestError`` for a resource that is not a Teams message, ``GraphThrottled`` /
    ``GraphError`` when Graph refuses.
    """
    ref = parse_message_resource(resource)
    if ref is None:
        raise IncomingRequestError(f"not a Teams message resource: {resource[:200]}")
    if ref.kind is MessageKind.CHAT:
        builder = client.chats.by_chat_id(str(ref.chat_id)).messages.by_chat_message_id(ref.message_id)
        message = await _graph_call(builder.get())
    else:
        messages = client.teams.by_team_id(str(ref.team_id)).channels.by_channel_id(str(ref.channel_id)).messages
        if ref.reply_to_id:
            reply = messages.by_chat_message_id(ref.reply_to_id).replies.by_chat_message_id1(ref.message_id)
            message = await _graph_call(reply.get())
        else:
            message = await _graph_call(messages.by_chat_message_id(ref.message_id).get())
    if message is None:
        raise GraphError(None, "emptyResponse", "Graph returned no message")
    content = (message.body.content if message.body else None) or ""
    is_html = message.body is not None and message.body.content_type == BodyType.Html
    text = html_to_text(content) if is_html else content
    version = message.last_edited_date_time if change_type == "updated" else message.deleted_date_time
    when = message.created_date_time or received_at or utc_now()
    if change_type != "created":
        when = message.last_modified_date_time or when
    return EventEnvelope(
        id=_message_event_id(ref.message_id, change_type, version if change_type != "created" else None),
        source=f"{TEAMS_SOURCE_PREFIX}/{_tenant_of(message) or 'unknown-tenant'}",
        type=f"com.microsoft.teams.message.{change_type}",
        subject=ref.target_key,
        time=when,
        data=_message_data(ref, resource=ref.resource, fetched=True, markers=extract_markers(content)),
        platform=Platform.TEAMS,
        event="teams_message",
        action=change_type,
        actor=_actor_of(message, self_app_id),
        target=Target(platform=Platform.TEAMS, key=ref.target_key),
        resource_id=ref.message_id,
        text=truncate(text),
    )


def _tenant_of(message: ChatMessage) -> str | None:
    sender = message.from_
    user = sender.user if sender else None
    tenant = user.additional_data.get("tenantId") if user is not None else None
    return tenant if isinstance(tenant, str) else None


# --- subscriptions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphSubscription:
    """What Reynolds keeps of a Graph subscription (never the clientState)."""

    id: str
    resource: str
    change_type: str
    expiration: datetime | None
    notification_url: str | None
    lifecycle_notification_url: str | None = None

    @classmethod
    def of(cls, sub: Subscription) -> GraphSubscription:
        """Project an msgraph ``Subscription``."""
        return cls(
            id=str(sub.id),
            resource=str(sub.resource or ""),
            change_type=str(sub.change_type or ""),
            expiration=sub.expiration_date_time,
            notification_url=sub.notification_url,
            lifecycle_notification_url=sub.lifecycle_notification_url,
        )


def _norm_resource(resource: str) -> str:
    return resource.strip().strip("/").lower()


class SubscriptionManager:
    """Create, renew, reauthorize and recreate Graph subscriptions for Teams messages, via msgraph-sdk.

    Only subscriptions whose ``notificationUrl`` is Reynolds' own are touched. Lifetime: ``lifetime``
    (default 55 min, under Graph's 60-minute cap for message subscriptions without resource data).
    """

    def __init__(
        self,
        client: GraphServiceClient,
        settings: Settings,
        clock: Clock = utc_now,
        *,
        lifetime: timedelta = DEFAULT_LIFETIME,
        change_type: str = "created",
        lifecycle_url: str | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._lifetime = lifetime
        self._change_type = change_type
        self._lifecycle_url = lifecycle_url

    @property
    def notification_url(self) -> str:
        """Where Graph posts notifications (``GRAPH_NOTIFICATION_URL``)."""
        return self._settings.require("graph_notification_url")

    def _client_state(self) -> str:
        state = self._settings.require("graph_client_state")
        if len(state) > MAX_CLIENT_STATE_CHARS:
            raise ConfigurationError(alias_of("graph_client_state"), f"is longer than {MAX_CLIENT_STATE_CHARS}")
        return state

    def _expiry(self) -> datetime:
        return self._clock() + self._lifetime

    async def list_ours(self) -> list[GraphSubscription]:
        """Reynolds' subscriptions (those that notify its own URL), following ``@odata.nextLink`` pages."""
        ours = self.notification_url
        found: list[GraphSubscription] = []
        page = await _graph_call(self._client.subscriptions.get())
        while page is not None:
            found.extend(GraphSubscription.of(s) for s in page.value or [] if s.notification_url == ours)
            if not page.odata_next_link:
                break
            page = await _graph_call(self._client.subscriptions.with_url(page.odata_next_link).get())
        return found

    async def create(self, resource: str) -> GraphSubscription:
        """POST /subscriptions for ``resource`` with clientState, notification and lifecycle URLs."""
        lifecycle = self._lifecycle_url or self.notification_url
        if self._lifetime > LIFECYCLE_URL_REQUIRED_ABOVE and not lifecycle:
            raise ConfigurationError(alias_of("graph_notification_url"), "is needed as lifecycle URL above 1 h")
        body = Subscription(
            change_type=self._change_type,
            notification_url=self.notification_url,
            lifecycle_notification_url=lifecycle,
            resource=resource,
            expiration_date_time=self._expiry(),
            client_state=self._client_state(),
        )
        created = await _graph_call(self._client.subscriptions.post(body))
        if created is None:
            raise GraphError(None, "emptyResponse", "Graph returned no subscription")
        logger.info("graph subscription %s created for %s", created.id, resource)
        return GraphSubscription.of(created)

    async def renew(self, subscription_id: str) -> GraphSubscription:
        """PATCH the subscription's ``expirationDateTime`` to a full lifetime from now."""
        body = Subscription(expiration_date_time=self._expiry())
        updated = await _graph_call(self._client.subscriptions.by_subscription_id(subscription_id).patch(body))
        if updated is None:
            raise GraphError(None, "emptyResponse", "Graph returned no subscription")
        return GraphSubscription.of(updated)

    async def delete(self, subscription_id: str) -> None:
        """DELETE the subscription; one that is already gone counts as deleted."""
        try:
            await _graph_call(self._client.subscriptions.by_subscription_id(subscription_id).delete())
        except GraphError as exc:
            if exc.status_code != 404:
                raise

    async def ensure(self, resource: str, *, renew_within: timedelta = DEFAULT_RENEW_WITHIN) -> GraphSubscription:
        """Make sure one live subscription exists for ``resource``: reuse, renew if close to expiry, or create."""
        wanted = _norm_resource(resource)
        deadline = self._clock() + renew_within
        for sub in await self.list_ours():
            if _norm_resource(sub.resource) != wanted:
                continue
            if sub.expiration is not None and sub.expiration > deadline:
                return sub
            try:
                return await self.renew(sub.id)
            except GraphError as exc:
                if exc.status_code != 404 or isinstance(exc, GraphThrottled):
                    raise
        return await self.create(resource)

    async def renew_expiring(self, within: timedelta = DEFAULT_RENEW_WITHIN) -> list[GraphSubscription]:
        """Renew every Reynolds subscription expiring within ``within``; return the renewed ones."""
        deadline = self._clock() + within
        renewed = []
        for sub in await self.list_ours():
            if sub.expiration is None or sub.expiration <= deadline:
                renewed.append(await self.renew(sub.id))
        return renewed

    async def reauthorize(self, subscription_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize (answer to ``reauthorizationRequired``)."""
        await _graph_call(self._client.subscriptions.by_subscription_id(subscription_id).reauthorize.post())

    async def recreate(self, resource: str) -> GraphSubscription:
        """Delete whatever Reynolds has on ``resource`` and create a fresh subscription (``subscriptionRemoved``)."""
        wanted = _norm_resource(resource)
        for sub in await self.list_ours():
            if _norm_resource(sub.resource) == wanted:
                await self.delete(sub.id)
        return await self.create(resource)

    async def handle_lifecycle(
        self, event: LifecycleNotification, resource: str | None = None
    ) -> GraphSubscription | None:
        """Act on a lifecycle event: reauthorize and renew, recreate, or (``missed``) nothing.

        ``resource`` defaults to the one the notification names. ``missed`` means notifications were lost:
        the caller resynchronises the resource (Graph delta query); nothing is done here.
        """
        resource = resource or event.resource
        if resource is None and event.event is not LifecycleEvent.MISSED:
            raise IncomingRequestError("lifecycle notification names no resource")
        if event.event is LifecycleEvent.REAUTHORIZATION_REQUIRED:
            try:
                await self.reauthorize(event.subscription_id)
                return await self.renew(event.subscription_id)
            except GraphError as exc:
                if exc.status_code != 404 or isinstance(exc, GraphThrottled):
                    raise
                return await self.recreate(str(resource))
        if event.event is LifecycleEvent.SUBSCRIPTION_REMOVED:
            return await self.recreate(str(resource))
        return None


# --- posting ------------------------------------------------------------------------------------------------


def status_card(title: str, states: Mapping[str, str] | Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An Adaptive Card (1.4, rendered by Teams desktop and mobile) listing each step and its state."""
    icons = {
        "pending": "⏳",
        "queued": "⏳",
        "running": "🔄",
        "waiting": "⏸️",
        "succeeded": "✅",
        "completed": "✅",
        "done": "✅",
        "failed": "❌",
        "cancelled": "🚫",
        "skipped": "⏭️",
        "blocked": "⛔",
    }
    pairs = list(states.items()) if isinstance(states, Mapping) else list(states)
    facts = [
        {"title": truncate(str(step), 80), "value": f"{icons.get(str(state).lower(), '•')} {truncate(str(state), 80)}"}
        for step, state in pairs[:MAX_CARD_FACTS]
    ]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": truncate(title, 200), "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    if len(pairs) > MAX_CARD_FACTS:
        body.append({"type": "TextBlock", "text": f"… and {len(pairs) - MAX_CARD_FACTS} more", "isSubtle": True})
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }


def _chat_message(html: str, marker: str, card: Mapping[str, Any] | None) -> ChatMessage:
    content = html
    attachments: list[ChatMessageAttachment] | None = None
    if card is not None:
        # Graph renders an attachment where the body names it with <attachment id="…">.
        content = f'{html}<attachment id="{STATUS_CARD_ATTACHMENT_ID}"></attachment>'
        attachments = [
            ChatMessageAttachment(
                id=STATUS_CARD_ATTACHMENT_ID,
                content_type=ADAPTIVE_CARD_CONTENT_TYPE,
                content=json.dumps(card, ensure_ascii=False),
            )
        ]
    return ChatMessage(
        body=ItemBody(content_type=BodyType.Html, content=embed_marker(content, marker)),
        attachments=attachments,
    )


async def post_channel_message(
    client: GraphServiceClient,
    team_id: str,
    channel_id: str,
    html: str,
    marker: str,
    *,
    reply_to_id: str | None = None,
    card: Mapping[str, Any] | None = None,
) -> str:
    """Post HTML (with the lineage marker, optionally a card) to a channel or as a reply; return the message id."""
    messages = client.teams.by_team_id(team_id).channels.by_channel_id(channel_id).messages
    body = _chat_message(html, marker, card)
    if reply_to_id:
        posted = await _graph_call(messages.by_chat_message_id(reply_to_id).replies.post(body))
    else:
        posted = await _graph_call(messages.post(body))
    if posted is None or not posted.id:
        raise GraphError(None, "emptyResponse", "Graph returned no message id")
    return posted.id


async def post_chat_message(
    client: GraphServiceClient,
    chat_id: str,
    html: str,
    marker: str,
    *,
    card: Mapping[str, Any] | None = None,
) -> str:
    """Post HTML (with the lineage marker, optionally a card) to a 1:1 or group chat; return the message id."""
    body = _chat_message(html, marker, card)
    posted = await _graph_call(client.chats.by_chat_id(chat_id).messages.post(body))
    if posted is None or not posted.id:
        raise GraphError(None, "emptyResponse", "Graph returned no message id")
    return posted.id
