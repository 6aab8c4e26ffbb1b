"""The Bot Connector client: how Reynolds speaks in Teams (new message, reply in a thread, update in place).

Operations (Bot Framework REST API reference, "API reference — Bot Connector service", Conversations operations):

* ``POST {serviceUrl}/v3/conversations/{conversationId}/activities`` — *Send to conversation*: a new message;
* ``POST {serviceUrl}/v3/conversations/{conversationId}/activities/{activityId}`` — *Reply to activity*: a reply in
  the thread of ``activityId`` (the activity also carries ``replyToId``);
* ``PUT {serviceUrl}/v3/conversations/{conversationId}/activities/{activityId}`` — *Update activity*: edit a message
  the bot posted (the status card, updated in place).

Each answers a ``ResourceResponse`` ``{"id": "<activity id>"}`` (update may answer with an empty body). The same
three calls in the Microsoft 365 Agents SDK: ``libraries/microsoft-agents-hosting-core/microsoft_agents/hosting/core/
connector/client/connector_client.py``, ``ConversationsOperations.send_to_conversation``, ``reply_to_activity`` and
``update_activity`` (paths ``v3/conversations/{id}/activities[/{activityId}]``). We use httpx, which the app already
ships, rather than the SDK's aiohttp client; the conversation id is percent-encoded as one path segment (Teams
channel ids carry ``;messageid=``), as the Bot Framework C# connector does with ``Uri.EscapeDataString``. The bearer
token is one for the bot's own identity, audience ``https://api.botframework.com`` (scope
``https://api.botframework.com/.default``); with ``msaAppType: UserAssignedMSI`` that identity is the Function App's
user-assigned managed identity, so ``ManagedIdentityCredential(client_id=<bot app id>)`` gets it without a secret.
Teams answers 429 with ``Retry-After`` above its per-conversation rates
(learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit): ``BotConnectorThrottled`` carries the wait.

Every post goes through ``BotPoster``: the effect ledger records the intent under an idempotency key before the
call and the activity id after it (a retry after success posts nothing), and the text carries the signed lineage
marker (``shared.loop.marker.hidden_marker``) as an HTML comment, so the loop guard knows the bot's messages as
Reynolds' own when they come back through any door.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from shared.loop.envelope import Platform
from shared.loop.ledger import EffectRecord
from shared.loop.lineage import LineageService
from shared.loop.marker import hidden_marker
from shared.platforms.teams.bot_references import ConversationReference
from shared.platforms.teams.webhook import embed_marker, html_to_text

logger = logging.getLogger(__name__)

#: The scope of a token the Bot Connector accepts from a bot.
BOT_CONNECTOR_SCOPE = "https://api.botframework.com/.default"
#: Inside the ~15 s the Bot Connector waits for the bot door's answer (the door acknowledges inline).
DEFAULT_TIMEOUT_SECONDS = 8.0

TokenProvider = Callable[[], Awaitable[str]]


class BotConnectorError(Exception):
    """The Bot Connector refused a call (``status``, the error ``code`` and its message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class BotConnectorThrottled(BotConnectorError):
    """429: wait ``retry_after`` seconds before posting into this conversation again."""

    def __init__(self, retry_after: float, code: str = "TooManyRequests", message: str = "throttled") -> None:
        super().__init__(429, code, message)
        self.retry_after = retry_after


#: A cached token is renewed this long before it expires.
TOKEN_RENEW_SECONDS = 300


def managed_identity_token(client_id: str | None, clock: Callable[[], float] = time.time) -> TokenProvider:
    """A token provider for the bot's identity (the app's user-assigned managed identity; no secret).

    The token is cached until ``TOKEN_RENEW_SECONDS`` before it expires; the credential is made per renewal so it
    never outlives the event loop that used it.
    """
    cached: list[tuple[str, float]] = []

    async def token() -> str:
        if cached and cached[0][1] - TOKEN_RENEW_SECONDS > clock():
            return cached[0][0]
        from azure.identity.aio import ManagedIdentityCredential

        async with ManagedIdentityCredential(client_id=client_id) as credential:
            access = await credential.get_token(BOT_CONNECTOR_SCOPE)
        cached[:] = [(access.token, float(access.expires_on))]
        return access.token

    return token


@dataclass(frozen=True)
class Posted:
    """What the connector answered for one post."""

    activity_id: str
    conversation_id: str


class BotConnector:
    """Thin async client over the three Bot Connector operations Reynolds uses."""

    def __init__(self, token: TokenProvider, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._token = token
        self._transport = transport
        self._timeout = timeout

    @staticmethod
    def _url(reference: ConversationReference, activity_id: str | None = None) -> str:
        base = f"{reference.service_url.rstrip('/')}/v3/conversations/{quote(reference.conversation_id, safe='')}"
        return f"{base}/activities" + (f"/{quote(activity_id, safe='')}" if activity_id else "")

    async def _call(self, method: str, url: str, activity: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {await self._token()}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(transport=self._transport, timeout=self._timeout) as client:
            response = await client.request(method, url, json=activity, headers=headers)
        if response.status_code == 429:
            try:
                wait = float(response.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            raise BotConnectorThrottled(max(wait, 0.0))
        if response.status_code >= 400:
            code, message = "Error", response.text[:300]
            try:
                error = response.json().get("error", {})
                code, message = str(error.get("code", code)), str(error.get("message", message))[:300]
            except (ValueError, AttributeError):
                pass
            raise BotConnectorError(response.status_code, code, message)
        if not response.content:
            return {}
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def send(self, reference: ConversationReference, activity: dict[str, Any],
                   reply_to_id: str | None = None) -> Posted:
        """A new message, or (with ``reply_to_id``) a reply in that message's thread."""
        activity = {**activity, "conversation": {"id": reference.conversation_id}}
        if reference.bot_id:
            activity.setdefault("from", {"id": reference.bot_id, "name": reference.bot_name})
        if reply_to_id:
            activity["replyToId"] = reply_to_id
        body = await self._call("POST", self._url(reference, reply_to_id), activity)
        activity_id = body.get("id")
        if not isinstance(activity_id, str) or not activity_id:
            raise BotConnectorError(502, "NoActivityId", "the connector answered without an activity id")
        return Posted(activity_id, reference.conversation_id)

    async def update(self, reference: ConversationReference, activity_id: str, activity: dict[str, Any]) -> Posted:
        """Replace the content of a message the bot posted (the status card, in place)."""
        activity = {**activity, "id": activity_id, "conversation": {"id": reference.conversation_id}}
        body = await self._call("PUT", self._url(reference, activity_id), activity)
        returned = body.get("id")
        return Posted(returned if isinstance(returned, str) and returned else activity_id, reference.conversation_id)


def message_activity(html_body: str, marker: str, attachments: list[dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
    """A Teams message activity whose HTML text carries the lineage marker (``textFormat: xml`` is HTML).

    ``attachments`` carries cards (an Adaptive Card is ``{"contentType": "application/vnd.microsoft.card.adaptive",
    "content": {...}}``); the marker stays in ``text`` so the loop guard finds it whatever the card holds.
    """
    activity: dict[str, Any] = {"type": "message", "textFormat": "xml", "text": embed_marker(html_body, marker)}
    if attachments:
        activity["attachments"] = attachments
    return activity


class BotPoster:
    """Posts through the connector once per effect key, each post in the effect ledger with the lineage marker."""

    def __init__(self, lineage: LineageService, connector: BotConnector, *, marker_key: str) -> None:
        self.lineage = lineage
        self.connector = connector
        self.marker_key = marker_key

    async def post(self, *, key: str, reference: ConversationReference, html_body: str, chain_id: str,
                   event_id: str, depth: int, reply_to_id: str | None = None,
                   update_id: str | None = None, attachments: list[dict[str, Any]] | None = None) -> EffectRecord:
        """Post (or, with ``update_id``, update) once per ``key``; a retry after success returns the record.

        The Bot Connector has no idempotency key: an attempt that crashed between the connector's answer and the
        ledger's "done" may post twice; the copy carries the same marker and joins the chain as ``self``.
        """
        intent = EffectRecord(key=key, platform=Platform.TEAMS.value, kind="message",
                              target=reference.conversation_id, chain_id=chain_id, event_id=event_id,
                              depth=depth + 1)
        record, _fresh = self.lineage.begin_effect(intent)
        if record.state in ("done", "suppressed"):
            logger.info("effect %s already %s (%s); not posting again", key, record.state, record.resource_id)
            return record
        activity = message_activity(html_body, hidden_marker(self.marker_key, record.chain_id, record.event_id,
                                                             record.depth), attachments)
        if update_id:
            posted = await self.connector.update(reference, update_id, activity)
        else:
            posted = await self.connector.send(reference, activity, reply_to_id)
        logger.info("bot posted %s in %s for event %s (chain %s)", posted.activity_id, reference.conversation_id,
                    event_id, chain_id)
        return self.lineage.complete_effect(record, posted.activity_id, html_to_text(html_body))
