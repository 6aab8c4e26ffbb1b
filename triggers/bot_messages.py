"""``POST /api/messages``: the Teams bot's messaging endpoint (Azure Bot → Reynolds).

Anonymous at the Functions level: the Bot Connector cannot send a function key; its JWT is the authentication and it
is checked before any byte of the body is parsed (``shared.platforms.teams.bot.read_activity``; why PyJWT and not
the Agents SDK's validator: ``shared.platforms.teams.bot_auth``). Answers: 413 above 1 MB, 401 with a reason for a
missing or bad token (nothing stored), 400 for a malformed activity, 503 naming ``TEAMS_BOT_APP_ID`` when the bot is
not configured. A message goes through the same admission as every other door (``triggers.ingress.admit``): decide,
start, answer the request; the door itself posts nothing. The person's answer is posted once, in the thread, by the
reply orchestration through the Bot Connector (``shared.work.reply.TeamsReporter``: the effect ledger and the
lineage marker, as every write); the door keeps the channel's conversation reference it needs. Install and
conversation updates store or remove the conversation reference; anything else is 200 and ignored. The decision
travels in ``X-Reynolds-*`` headers as at the webhook door.

The Bot Connector waits about 15 s for the answer: deciding gets ``INLINE_BUDGET_SECONDS["teams"]``. The inbox
(``triggers/inbox.py``) has no item kind for bot deliveries yet (its ``InboxItem.source`` is owned elsewhere this
session), so a failure to decide is answered 503 here instead of being queued; adding ``"bot"`` there, decided with
``read_activity`` and ``admit``, closes that.
"""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df
import azure.functions as func

from shared.platforms.teams.bot import get_bot_runtime, read_activity
from shared.platforms.teams.bot_references import BotReferences
from shared.services import get_services
from triggers.ingress import INLINE_BUDGET_SECONDS, admit, error_response, json_response, within

logger = logging.getLogger(__name__)

bp = df.Blueprint()


@bp.function_name("bot_messages")
@bp.route(route="messages", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def bot_messages(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Verify the token, classify the activity, then admit a message or keep a conversation reference."""
    raw = req.get_body()
    try:
        services = get_services()
        runtime = get_bot_runtime(services.settings)
        # In a worker thread: a key refresh (once a day, or on a new key) is a blocking HTTPS fetch.
        item = await asyncio.to_thread(read_activity, dict(req.headers), raw, runtime.validator,
                                       received_at=services.clock())
    except Exception as exc:  # 401/413/400/503; never a stack trace to the caller
        return error_response(exc)
    delivery = item.activity_id
    if item.kind == "reference":
        try:
            done = BotReferences(services.store).apply(item.activity)
        except Exception as exc:
            return error_response(exc, delivery)
        logger.info("bot %s activity %s: conversation reference %s", item.activity.get("type"), delivery, done)
        return json_response(200, {"delivery": delivery, "verdict": "ignored", "reference": done,
                                   "reason": f"conversation reference {done}"})
    if item.kind == "ignored" or item.event is None:
        return json_response(200, {"delivery": delivery, "verdict": "ignored",
                                   "reason": f"activity type {str(item.activity.get('type'))[:40]!r} is not handled"})
    try:
        # Where the reply orchestration answers (the channel or chat), known before it starts, even when no install
        # event reached us (Teams: take the reference from any incoming activity). Authenticated activities only.
        BotReferences(services.store).remember(item.activity)
    except Exception as exc:  # without a reference the answer is recorded as suppressed, with the reason
        logger.error("bot activity %s: keeping the conversation reference failed (%s)", delivery, type(exc).__name__)
    try:
        # The bot door has no inbox item kind yet: a failure to decide is a 503 (see the module docstring).
        admission = await within(INLINE_BUDGET_SECONDS["teams"], admit(item.event, client, services))
    except Exception as exc:
        return error_response(exc, delivery)
    logger.info("bot activity %s: %s (instance %s)", delivery, admission.decision.verdict.value,
                admission.instance_id)
    response = json_response(200, admission.body(delivery))
    response.headers["X-Reynolds-Verdict"] = admission.decision.verdict.value
    response.headers["X-Reynolds-Event-Id"] = admission.decision.event_id
    return response
