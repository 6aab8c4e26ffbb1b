"""Answers on Teams and Service Bus: the reply orchestration's domain logic and its two idempotent writers.

A Teams message or a Service Bus message that the loop guard accepts starts the ``reply`` orchestration:
plan (the offline triage planner), then one answer on the platform and target where the event happened —
a message in the same Teams channel thread (or chat) through the bot (Bot Connector), or a CloudEvent on
Reynolds' outbound queue (``SERVICEBUS_OUT_QUEUE``) unless the message named a reply queue (``ReplyTo``).

Both writers follow ``shared.work.triage.GitHubReporter``: the effect ledger records the intent before the call
and the resource id after it (the bot's activity id = the Teams message id, a Service Bus message id), the
rate breakers are asked before a new write, and every text carries the signed lineage marker (Teams: an HTML
comment; Service Bus: in the text and in the ``reynolds-marker`` application property). The resource id is what makes
Reynolds' own message, coming back as a Graph change notification, join its chain as ``self``.
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from shared.chain_view import chain_html, explorer_url
from shared.loop.breakers import BreakerService
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Lineage, Platform, Target, truncate
from shared.loop.lineage import Decision, EffectRecord, LineageService
from shared.loop.marker import hidden_marker, sign_text
from shared.platforms.servicebus.contract import RESEND_SAFE_FOR, reply_queue, to_servicebus_message
from shared.platforms.servicebus.publisher import Publisher
from shared.platforms.teams.bot_references import BotReferences, ConversationReference
from shared.platforms.teams.connector import BotConnector, BotConnectorError, BotConnectorThrottled, message_activity
from shared.platforms.teams.graph import GraphThrottled
from shared.platforms.teams.messages import find_posted
from shared.platforms.teams.webhook import html_to_text
from shared.work.triage import TriagePlan, _repeat_fingerprint

logger = logging.getLogger(__name__)

REPLY_EVENT_TYPE = "com.reynolds.reply"
REPLY_SOURCE = "/reynolds"
PAUSED_TITLE = "Reynolds · paused"
class ReplyInput(BaseModel):
    """Input of the reply orchestration (small: where to answer, the lineage, a truncated text)."""

    event_id: str
    event_type: str
    chain_id: str
    depth: int
    platform: Literal["teams", "servicebus"]
    #: The breaker and ledger target: ``teams:<team>/<channel>``, a chat id, or the reply queue.
    target: str
    team_id: str | None = None
    channel_id: str | None = None
    chat_id: str | None = None
    queue: str | None = None
    #: The Teams message the answer replies to (the thread's root message): the bot posts in that thread.
    reply_to_id: str | None = None
    actor: str | None = None
    actor_kind: str = ActorKind.HUMAN.value
    text: str = ""


class TeamsChange(BaseModel):
    """Input of the Teams notification orchestration: one verified change notification, not yet fetched."""

    event_id: str
    resource: str
    change_type: str = "created"
    subscription_id: str | None = None
    tenant_id: str | None = None
    received_at: datetime


def reply_effect_key(event_id: str) -> str:
    """The effect-ledger key of Reynolds' answer to ``event_id`` (one answer per event)."""
    return f"{event_id}:reply"


def reply_input(event: EventEnvelope, decision: Decision, *, out_queue: str) -> ReplyInput:
    """The reply orchestration's input for an accepted Teams or Service Bus event."""
    data = event.data
    common: dict[str, Any] = {
        "event_id": event.id, "event_type": event.type, "chain_id": decision.chain_id or "",
        "depth": decision.depth, "actor": event.actor.login or event.actor.id,
        "actor_kind": decision.actor_kind(event.actor.kind), "text": event.text[:2000],
    }
    if event.platform is Platform.TEAMS:
        team, channel = data.get("team_id"), data.get("channel_id")
        common["reply_to_id"] = thread_root(event)
        if team and channel:
            return ReplyInput(platform="teams", target=f"teams:{team}/{channel}", team_id=team, channel_id=channel,
                              **common)
        chat = data.get("chat_id") or data.get("conversation_id")
        if not chat:
            raise ValueError(f"teams event {event.id} names neither a channel nor a chat")
        return ReplyInput(platform="teams", target=str(chat), chat_id=str(chat), **common)
    if event.platform is Platform.SERVICEBUS:
        queue = str(data.get("reply_to") or out_queue)  # only a configured queue survives servicebus_event
        return ReplyInput(platform="servicebus", target=queue, queue=queue, **common)
    raise ValueError(f"no reply on platform {event.platform.value}")


def thread_root(event: EventEnvelope) -> str | None:
    """The id of the Teams message whose thread an answer to ``event`` goes in (the root of its thread).

    A bot activity in a channel thread names its root in the conversation id (``…;messageid=<root>``); Graph and
    the outgoing webhook name it in ``replyToId``; a root message is its own thread.
    """
    conversation = str(event.data.get("conversation_id") or "")
    if ";messageid=" in conversation:
        return conversation.split(";messageid=", 1)[1] or None
    root = event.data.get("reply_to_id") or event.resource_id
    return str(root) if root else None


def servicebus_event(event: EventEnvelope, message_id: str | None, reply_to: str | None = None, *,
                     reply_queues: Collection[str] = ()) -> EventEnvelope:
    """Key a received Service Bus event by its broker ``MessageId`` (the guard's event id = the message id).

    Producers retry with the same message id (that is what broker duplicate detection works on), so the
    loop guard dedupes on it too; the message id is also the resource id the effect ledger indexes Reynolds'
    own messages under. ``reply_to`` (the broker's ``ReplyTo``) names the queue an answer goes to, and only when it
    is one of ``reply_queues`` (the configured queues); a ``reply_to`` inside the CloudEvent data never counts.
    """
    data = dict(event.data)
    data.pop("reply_to", None)
    data["cloudevent_id"] = event.id
    if reply_to:
        data["reply_to"] = reply_queue(reply_to, reply_queues, "") or None
        if data["reply_to"] is None:
            del data["reply_to"]
    ident = message_id or event.id
    event_id = f"servicebus:{ident}"
    if len(event_id) > 200:
        # Cut ids would collide on their common prefix: a long id keeps a prefix and its digest instead.
        event_id = f"servicebus:{ident[:120]}::{hashlib.sha256(ident.encode()).hexdigest()[:40]}"
    return event.model_copy(update={"id": event_id, "resource_id": ident, "data": data})


def outbound_message_id(event_id: str, step: str) -> str:
    """A deterministic Service Bus message id for (event, step): a re-sent message is a broker duplicate."""
    return "reynolds-" + hashlib.sha256(f"{event_id}|{step}".encode()).hexdigest()[:40]


def render_reply_html(plan: TriagePlan, instance_id: str) -> str:
    """The Teams answer (HTML; the marker is embedded when posted)."""
    labels = ", ".join(html.escape(label) for label in plan.labels)
    summary = html.escape(plan.summary.replace("**", ""))
    return (f"<p><b>Reynolds</b> · {html.escape(plan.kind)}</p><p>{summary}</p>"
            f"<p>Suggested labels: {labels}<br/>Orchestration: <code>{html.escape(instance_id)}</code></p>")


def render_reply_text(plan: TriagePlan, instance_id: str) -> str:
    """The Service Bus answer's text (``data.text`` of the CloudEvent; the marker is appended when sent)."""
    return f"Reynolds · {plan.kind}: {plan.summary.replace('**', '')} (orchestration {instance_id})"


GraphFactory = Callable[[], Any]
ConnectorFactory = Callable[[], BotConnector]


class TeamsReporter:
    """Posts Reynolds' Teams messages through the bot (Bot Connector), each once per key, each in the effect ledger.

    Microsoft Graph refuses app-only ``POST …/messages`` outside migration imports (401 "Message POST is allowed in
    application-only context only for import purposes", ../shared/REFERENCE.md), so Reynolds speaks as its bot: the
    conversation reference the bot door stored when the app was installed (``BotReferences``, keyed by the Teams
    channel or chat id) names the service URL and conversation, and a channel answer is a reply in the thread of
    the message that asked (``ReplyInput.reply_to_id``). Graph stays for reading: the read-back that keeps a retry
    from posting twice (``find_posted``, allowed with RSC ``ChannelMessage.Read.Group``), because the Bot Connector
    has no operation that lists or reads back a conversation's activities.
    """

    def __init__(self, lineage: LineageService, graph: GraphFactory, *, marker_key: str,
                 connector: ConnectorFactory, references: BotReferences,
                 breakers: BreakerService | None = None, explorer_url: str | None = None) -> None:
        self.lineage = lineage
        self.graph = graph
        self.connector = connector
        self.references = references
        self.marker_key = marker_key
        self.breakers = breakers
        self.explorer_url = explorer_url

    def reference(self, request: ReplyInput) -> ConversationReference | None:
        """Where the bot may speak for ``request`` (None: the app is not installed there)."""
        conversation = request.channel_id if request.team_id and request.channel_id else request.chat_id
        return self.references.get(conversation) if conversation else None

    async def post(self, *, key: str, request: ReplyInput, html_body: str, attempt: int | None = None,
                   run: str | None = None) -> EffectRecord:
        """Post ``html_body`` where ``request`` says, once per ``key``; ``GraphThrottled`` propagates.

        A retry after success posts nothing. The Bot Connector has no idempotency key and no read-back, so an
        attempt that takes over an unfinished one (the ledger still at "intent", written before the post: it may
        have posted and crashed before recording it, however long ago) first reads the channel or chat back through
        Graph (``find_posted``: the marker is deterministic per chain, event and depth; a bot's message id is its
        activity id) and records the message it finds instead of posting again. Without a conversation reference
        (the app is not installed in that team or chat) nothing is posted: the effect is recorded as suppressed
        with the reason, and a warning names the team.
        """
        intent = EffectRecord(key=key, platform=Platform.TEAMS.value, kind="message", target=request.target,
                              chain_id=request.chain_id, event_id=request.event_id, depth=request.depth + 1)
        record, fresh = self.lineage.begin_effect(intent, attempt, run)
        if record.state in ("done", "suppressed"):
            logger.info("effect %s already %s (%s); not posting again", key, record.state, record.resource_id)
            return record
        reference = self.reference(request)
        if reference is None:
            where = (f"team {request.team_id} channel {request.channel_id}" if request.team_id
                     else f"chat {request.chat_id}")
            reason = f"the Reynolds app is not installed in {where} (no bot conversation reference)"
            logger.warning("effect %s chain %s suppressed: %s; install the Teams app there to get answers", key,
                           request.chain_id, reason)
            return self.lineage.suppress_effect(record, reason)
        if not fresh:
            marker = hidden_marker(self.marker_key, record.chain_id, record.event_id, record.depth)
            since = datetime.fromisoformat(record.first_at) - timedelta(minutes=5) if record.first_at else None
            found = await find_posted(self.graph(), marker, team_id=request.team_id, channel_id=request.channel_id,
                                      chat_id=request.chat_id, since=since)
            if found is not None:
                logger.warning("effect %s: an earlier attempt posted teams message %s; recorded, not posted again",
                               key, found)
                return self.lineage.complete_effect(record, found, html_to_text(html_body))
        if self.breakers is not None and fresh:
            permit = self.breakers.permit(platform=Platform.TEAMS.value, target=record.target,
                                          counterpart=request.actor, text_fp=_repeat_fingerprint(request.text),
                                          now=self.lineage.clock(), depth=request.depth,
                                          automated=request.actor_kind != ActorKind.HUMAN.value)
            if not permit.allowed:
                logger.warning("effect %s chain %s suppressed: breaker %s is open (%s)", key, request.chain_id,
                               permit.key, permit.reason)
                if permit.opened:
                    await self._note(reference, key, record, request, permit.reason)
                return self.lineage.suppress_effect(record, permit.reason)
        try:
            message_id = await self._send(reference, request, html_body, record)
        except BotConnectorError as exc:
            if exc.status not in (403, 404) or exc.code == "ActivityNotFound":
                raise
            # The bot is no longer in that conversation (uninstalled, team deleted): a retry cannot succeed.
            reason = f"the bot can no longer post in {reference.conversation_id} ({exc.status} {exc.code})"
            logger.warning("effect %s chain %s suppressed: %s; reinstall the Teams app there", key, request.chain_id,
                           reason)
            return self.lineage.suppress_effect(record, reason)
        logger.info("bot posted teams message %s on %s for event %s (chain %s)", message_id, record.target,
                    request.event_id, request.chain_id)
        return self.lineage.complete_effect(record, message_id, html_to_text(html_body))

    async def _send(self, reference: ConversationReference, request: ReplyInput, html_body: str,
                    record: EffectRecord) -> str:
        marker = hidden_marker(self.marker_key, record.chain_id, record.event_id, record.depth)
        # A channel answer goes in the thread that asked; a chat has no threads.
        reply_to = request.reply_to_id if request.team_id and request.channel_id else None
        activity = message_activity(html_body, marker)
        try:
            try:
                posted = await self.connector().send(reference, activity, reply_to_id=reply_to)
            except BotConnectorError as exc:
                if exc.code != "ActivityNotFound" or reply_to is None:
                    raise
                # The thread's root is gone (deleted): the answer goes in the channel rather than nowhere.
                logger.warning("event %s: thread %s not found in %s; answering in the channel", request.event_id,
                               reply_to, reference.conversation_id)
                posted = await self.connector().send(reference, activity)
        except BotConnectorThrottled as exc:
            # Only the message crosses to the orchestrator: it must carry the wait (``shared.errors.retry_after_in``).
            raise GraphThrottled(exc.retry_after, 429, exc.code,
                                 f"throttled, retry after {exc.retry_after:g}s") from exc
        return posted.activity_id

    async def _note(self, reference: ConversationReference, key: str, record: EffectRecord, request: ReplyInput,
                    reason: str) -> None:
        """The one visible note a breaker leaves when it opens (itself a recorded, idempotent effect)."""
        intent = EffectRecord(key=f"{key}:note", platform=record.platform, kind="note", target=record.target,
                              chain_id=record.chain_id, event_id=record.event_id, depth=record.depth)
        note, fresh = self.lineage.begin_effect(intent)
        if not fresh:
            return
        chain = chain_html(self.explorer_url, record.chain_id)
        body = (f"<p><b>{PAUSED_TITLE}</b></p><p>Reynolds stopped answering here: {html.escape(reason)}. "
                f"This looks like a loop between automations.</p><p>{chain}</p>")
        message_id = await self._send(reference, request, body, note)
        self.lineage.complete_effect(note, message_id, html_to_text(body))


class ServiceBusReporter:
    """Publishes Reynolds' answers to Service Bus, each once per key, each in the effect ledger."""

    def __init__(self, lineage: LineageService, publisher: Publisher, *, marker_key: str,
                 breakers: BreakerService | None = None, explorer_url: str | None = None) -> None:
        self.lineage = lineage
        self.publisher = publisher
        self.marker_key = marker_key
        self.breakers = breakers
        self.explorer_url = explorer_url

    async def publish(self, *, key: str, request: ReplyInput, text: str, data: dict[str, Any],
                      attempt: int | None = None, run: str | None = None) -> EffectRecord:
        """Publish a CloudEvent answering ``request`` on ``request.queue``, once per ``key``.

        ``message_id`` derives from ``key``, so a re-executed activity that crashed after sending sends a
        broker duplicate (dropped by duplicate detection), never a second answer. That holds while the re-send
        falls inside the queue's duplicate-detection window (7 days, ``RESEND_SAFE_FOR`` with its margin),
        counted from the effect's first attempt (``first_at`` in the ledger, written before the first send);
        an attempt later than that does not send (the broker would deliver a second copy), records the effect
        with its message id and logs an error for a person to check. ``session_id`` is the chain.
        The per-target breaker counts writes per queue; producers on a queue are software and fan-outs are
        normal there, so no per-counterpart breaker applies (the chain rules stop copying consumers).
        """
        queue = request.queue or request.target
        intent = EffectRecord(key=key, platform=Platform.SERVICEBUS.value, kind="message", target=queue,
                              chain_id=request.chain_id, event_id=request.event_id, depth=request.depth + 1)
        record, fresh = self.lineage.begin_effect(intent, attempt, run)
        if record.state in ("done", "suppressed"):
            logger.info("effect %s already %s (%s); not publishing again", key, record.state, record.resource_id)
            return record
        if self.breakers is not None and fresh:
            permit = self.breakers.permit(platform=Platform.SERVICEBUS.value, target=queue, counterpart=None,
                                          text_fp=None, now=self.lineage.clock(), depth=request.depth)
            if not permit.allowed:
                logger.warning("effect %s chain %s suppressed: breaker %s is open (%s)", key, request.chain_id,
                               permit.key, permit.reason)
                return self.lineage.suppress_effect(record, permit.reason)
        message_id = outbound_message_id(request.event_id, key)
        if not fresh and record.first_at is not None and \
                self.lineage.clock() - datetime.fromisoformat(record.first_at) > RESEND_SAFE_FOR:
            logger.error("effect %s: first attempted %s, beyond the duplicate-detection window; message %s may "
                         "have been sent and is not sent again (check the queue %s)", key, record.first_at,
                         message_id, queue)
            return self.lineage.complete_effect(record, message_id, text)
        marker = hidden_marker(self.marker_key, record.chain_id, record.event_id, record.depth)
        page = explorer_url(self.explorer_url, record.chain_id)
        envelope = EventEnvelope(
            id=message_id, source=REPLY_SOURCE, type=REPLY_EVENT_TYPE, subject=request.event_id,
            time=self.lineage.clock(),
            data={**data, "in_reply_to": request.event_id, **({"chain_url": page} if page else {})},
            platform=Platform.SERVICEBUS, event="reynolds_reply", action="created",
            actor=Actor(login="reynolds", kind=ActorKind.SELF, account_type="application"),
            target=Target(platform=Platform.SERVICEBUS, key=queue), resource_id=message_id,
            text=truncate(sign_text(self.marker_key, text, record.chain_id, record.event_id, record.depth)),
            lineage=Lineage(chain_id=record.chain_id, parent_id=record.event_id, depth=record.depth),
        )
        message = to_servicebus_message(envelope, marker, ordered=True)
        await self.publisher.send(queue, [message])
        logger.info("published servicebus message %s to %s for event %s (chain %s)", message_id, queue,
                    request.event_id, request.chain_id)
        return self.lineage.complete_effect(record, message_id, text)
