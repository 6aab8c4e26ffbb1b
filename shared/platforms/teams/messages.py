"""Reading Teams messages through Graph: who wrote a fetched message, the read-back of Reynolds' own posts
(``find_posted``), and the status card's content.

Graph is for reading only: it refuses application-only ``POST …/messages`` outside migration imports (401
"Message POST is allowed in application-only context only for import purposes", ../shared/REFERENCE.md), so
Reynolds posts as its bot through the Bot Connector (``shared.platforms.teams.connector``). A bot's message read
through Graph names the bot application as its author; the effect ledger (keyed by the activity id, which is the
Teams message id) and the embedded lineage marker are what mark it as Reynolds' own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from msgraph import GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.chat_message import ChatMessage

from shared.errors import IncomingRequestError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target, truncate
from shared.platforms.teams.graph import (
    MAX_CARD_FACTS,
    GraphError,
    graph_call,
    utc_now,
)
from shared.platforms.teams.notifications import MessageKind, message_data, message_event_id, parse_message_resource
from shared.platforms.teams.webhook import TEAMS_SOURCE_PREFIX, extract_markers, html_to_text

logger = logging.getLogger(__name__)


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
        message = await graph_call(builder.get())
    else:
        messages = client.teams.by_team_id(str(ref.team_id)).channels.by_channel_id(str(ref.channel_id)).messages
        if ref.reply_to_id:
            reply = messages.by_chat_message_id(ref.reply_to_id).replies.by_chat_message_id1(ref.message_id)
            message = await graph_call(reply.get())
        else:
            message = await graph_call(messages.by_chat_message_id(ref.message_id).get())
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
        id=message_event_id(ref.message_id, change_type, version if change_type != "created" else None),
        source=f"{TEAMS_SOURCE_PREFIX}/{_tenant_of(message) or 'unknown-tenant'}",
        type=f"com.microsoft.teams.message.{change_type}",
        subject=ref.target_key,
        time=when,
        occurred_at=when,
        data=message_data(ref, resource=ref.resource, fetched=True, markers=extract_markers(content)),
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


#: Graph's page size limit for listing channel and chat messages ("List channel messages", "List messages in a
#: chat": ``$top`` at most 50).
READ_BACK_PAGE = 50
#: How many pages a read-back reads at most (1,000 messages): far more than a channel sees while an attempt waits.
READ_BACK_PAGES = 20


async def find_posted(client: GraphServiceClient, marker: str, *, team_id: str | None = None,
                      channel_id: str | None = None, chat_id: str | None = None,
                      since: datetime | None = None) -> str | None:
    """Read back: the id of a message in the channel (root messages) or chat whose body carries ``marker``.

    Reynolds' marker is deterministic per (chain, event, depth), so an attempt that crashed between Graph's
    answer and the ledger's "done" left a message the next attempt can find before posting again. Pages of
    ``READ_BACK_PAGE`` (``GET …/messages?$top=50``, then ``@odata.nextLink``; Graph returns the newest first),
    stopping at messages created before ``since`` (the effect's first attempt) or after ``READ_BACK_PAGES``.
    A read needs only read permissions (``ChannelMessage.Read.All`` / ``Chat.Read.All``), not Graph posting.
    """
    if team_id and channel_id:
        builder: Any = client.teams.by_team_id(team_id).channels.by_channel_id(channel_id).messages
    elif chat_id:
        builder = client.chats.by_chat_id(chat_id).messages
    else:
        return None
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    config = RequestConfiguration(query_parameters=builder.MessagesRequestBuilderGetQueryParameters(
        top=READ_BACK_PAGE))
    page = await graph_call(builder.get(request_configuration=config))
    for _ in range(READ_BACK_PAGES):
        if page is None:
            return None
        for message in page.value or []:
            if message.body is not None and marker in (message.body.content or ""):
                return str(message.id)
        created = [m.created_date_time for m in page.value or [] if m.created_date_time is not None]
        if not page.odata_next_link or (since is not None and created and min(created) < since):
            return None
        page = await graph_call(builder.with_url(page.odata_next_link).get())
    logger.warning("read-back stopped after %d pages without finding the marker", READ_BACK_PAGES)
    return None
