"""Graph change notifications for Teams messages: the validation handshake, parsing with ``clientState``
checked in constant time, message resources and the envelope of a notification (before the message is fetched).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import ConfigurationError, IncomingRequestError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.platforms.limits import check_json
from shared.platforms.teams.webhook import TEAMS_SOURCE_PREFIX
from shared.settings import alias_of

logger = logging.getLogger(__name__)


# --- validation handshake and notifications ----------------------------------------------------------------


#: Graph's validation tokens are about a hundred characters; anything longer is not Graph, and is not echoed.
MAX_VALIDATION_TOKEN_CHARS = 1024
#: A notification POST holds at most a few hundred small items (no resource data is requested).
MAX_NOTIFICATION_BYTES = 1024 * 1024
#: Graph message ids are 13 digits; a longer id (the envelope id ``teams:<id>`` holds 200) is ignored.
MAX_GRAPH_ID_CHARS = 190
#: Headers of every answer to the validation handshake: plain text the browser must not sniff into HTML.
VALIDATION_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def handle_validation(query_token: str | None) -> tuple[int, str, str]:
    """Answer Graph's subscription validation: ``(200, token, "text/plain")``, or 400 when the token is missing
    or longer than :data:`MAX_VALIDATION_TOKEN_CHARS`, or holds control characters.

    The token must come back exactly as received (the query string already URL-decoded), as plain text,
    within 10 seconds; the trigger adds :data:`VALIDATION_HEADERS` (``nosniff``).
    """
    if not query_token:
        return 400, "missing validationToken", "text/plain"
    if len(query_token) > MAX_VALIDATION_TOKEN_CHARS:
        return 400, "validationToken is too long", "text/plain"
    if any(ord(char) < 32 and char not in "\t" for char in query_token):
        return 400, "validationToken holds control characters", "text/plain"
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
    if not client_state_expected or not client_state_expected.strip():
        raise ConfigurationError(alias_of("graph_client_state"))
    check_json(raw_body, max_bytes=MAX_NOTIFICATION_BYTES, what="notification body")
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
        if (ref is None or not sub_id or not isinstance(change_type, str) or len(ref.message_id) > MAX_GRAPH_ID_CHARS
                or len(sub_id) > MAX_GRAPH_ID_CHARS or len(change_type) > 40):
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


def message_event_id(message_id: str, change_type: str, version: datetime | None = None) -> str:
    # "created" shares the Teams webhook's id (teams:<message id>) so the two doors deduplicate each other.
    if change_type == "created":
        return f"teams:{message_id}"
    suffix = f":{version.isoformat()}" if version else ""
    return f"teams:{message_id}:{change_type}{suffix}"


def message_data(ref: MessageRef, **extra: Any) -> dict[str, Any]:
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
        id=message_event_id(ref.message_id, change.change_type),
        source=f"{TEAMS_SOURCE_PREFIX}/{change.tenant_id or 'unknown-tenant'}",
        type=f"com.microsoft.teams.message.{change.change_type}",
        subject=ref.target_key,
        time=received_at,
        data=message_data(ref, subscription_id=change.subscription_id, resource=change.resource, fetched=False),
        platform=Platform.TEAMS,
        event="teams_message",
        action=change.change_type,
        actor=Actor(kind=ActorKind.SYSTEM, account_type="graph-notification"),
        target=Target(platform=Platform.TEAMS, key=ref.target_key),
        resource_id=ref.message_id,
    )
