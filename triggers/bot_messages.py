"""``POST /api/messages``: the Teams bot's messaging endpoint (Azure Bot → Reynolds).

Anonymous at the Functions level: the Bot Connector cannot send a function key; its JWT is the authentication and
it is checked before any byte of the body is parsed (``shared.platforms.teams.bot.read_activity``; why PyJWT and
not the Agents SDK's validator: ``shared.platforms.teams.bot_auth``). Answers: 413 above 1 MB, 401 with a reason
for a missing or bad token (nothing stored), 400 for a malformed activity, 503 naming ``TEAMS_BOT_APP_ID`` when the
bot is not configured. A message goes through the same admission as every other door (``triggers.ingress.admit``),
and the person is answered in the thread through the Bot Connector (the effect ledger and the lineage marker, as
every write). Install and conversation updates store or remove the conversation reference; anything else is 200
and ignored. The decision travels in ``X-Reynolds-*`` headers as at the webhook door.

The Bot Connector waits about 15 s for the answer: deciding gets ``INLINE_BUDGET_SECONDS["teams"]`` and the
acknowledgement post the connector client's timeout (8 s). The inbox (``triggers/inbox.py``) has no item kind for
bot deliveries yet (its ``InboxItem.source`` is owned elsewhere this session), so a failure to decide is answered
503 here instead of being queued; adding ``"bot"`` there, decided with ``read_activity`` and ``admit``, closes that.
"""

from __future__ import annotations

import asyncio
import html
import logging

import azure.durable_functions as df
import azure.functions as func

from shared.platforms.teams.bot import BotActivity, get_bot_runtime, read_activity
from shared.platforms.teams.bot_references import BotReferences
from shared.platforms.teams.connector import BotPoster
from shared.services import Services, get_services
from triggers.ingress import INLINE_BUDGET_SECONDS, Admission, admit, error_response, json_response, within
from triggers.teams_webhook import ACK_TEXT, DEFAULT_ACK

logger = logging.getLogger(__name__)

bp = df.Blueprint()


def ack_effect_key(event_id: str) -> str:
    """The ledger key of the bot's in-thread answer to one message (one answer per message, ever)."""
    return f"bot-ack:{event_id}"


async def answer(services: Services, poster: BotPoster, item: BotActivity, admission: Admission) -> str | None:
    """Answer the person in the message's thread; returns the posted activity id (None when nothing is said)."""
    decision = admission.decision
    quota = decision.rule == "task-quota"
    if decision.chain_id is None or not (decision.verdict.value == "accepted" or quota):
        return None  # Reynolds' own echoes, loops and duplicates get no answer
    text = ACK_TEXT.get(decision.verdict.value) or (decision.reason if quota else DEFAULT_ACK)
    record = await poster.post(key=ack_effect_key(decision.event_id), reference=item.reference(),
                               html_body=f"<p>{html.escape(text)}</p>", chain_id=decision.chain_id,
                               event_id=decision.event_id, depth=decision.depth, reply_to_id=item.activity_id)
    return record.resource_id


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
        # The bot door has no inbox item kind yet: a failure to decide is a 503 (see the module docstring).
        admission = await within(INLINE_BUDGET_SECONDS["teams"], admit(item.event, client, services))
    except Exception as exc:
        return error_response(exc, delivery)
    answered: str | None = None
    try:
        if admission.decision.verdict.value == "accepted":
            BotReferences(services.store).remember(item.activity)
        poster = BotPoster(services.lineage, runtime.connector,
                           marker_key=services.settings.require("marker_signing_key"))
        answered = await answer(services, poster, item, admission)
    except Exception as exc:  # the decision stands; the intent stays in the ledger for a retry to find
        logger.error("bot activity %s: answering in the thread failed (%s)", delivery, type(exc).__name__)
    logger.info("bot activity %s: %s (instance %s)", delivery, admission.decision.verdict.value,
                admission.instance_id)
    response = json_response(200, admission.body(delivery))
    response.headers["X-Reynolds-Verdict"] = admission.decision.verdict.value
    response.headers["X-Reynolds-Event-Id"] = admission.decision.event_id
    response.headers["X-Reynolds-Answer-Id"] = answered or ""
    return response
