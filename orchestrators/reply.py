"""The reply orchestration: plan (offline), then one answer where the event happened (Teams or Service Bus).

``run_reply`` is shared with the Teams notification orchestration, which runs it after its ingest activity
accepted a message. Failed writes (Graph throttling included: ``GraphThrottled`` raises in the activity) are
retried with exponential backoff and jitter built from durable timers, never shorter than Graph's
``Retry-After`` (Python ``RetryOptions`` are fixed-interval only).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators.backoff import ANSWER_RETRY, call_with_backoff
from orchestrators.context import OrchestrationContext
from shared import names
from shared.work.reply import ReplyInput

logger = logging.getLogger(__name__)

bp = df.Blueprint()

def run_reply(context: OrchestrationContext, request: ReplyInput) -> Generator[Any, Any, dict[str, Any]]:
    """Plan, then answer on the event's own platform. Deterministic: all I/O is in the activities."""
    plan = yield context.call_activity(names.REPLY_PLAN, {"text": request.text})
    context.set_custom_status({"step": "reply", "platform": request.platform, "kind": plan.get("kind")})
    step = names.POST_TEAMS if request.platform == "teams" else names.PUBLISH_SERVICEBUS
    payload = {"request": request.model_dump(mode="json"), "plan": plan, "instance_id": context.instance_id}
    effect = yield from call_with_backoff(context, step, payload, seed=f"{context.instance_id}:{step}",
                                        policy=ANSWER_RETRY)
    if not context.is_replaying:
        logger.info("event %s chain %s instance %s: answered on %s", request.event_id, request.chain_id,
                    context.instance_id, request.platform)
    return {"event_id": request.event_id, "chain_id": request.chain_id, "plan": plan, "effects": [effect]}


@bp.orchestration_trigger(context_name="context", orchestration=names.REPLY)
def reply_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Registered shim over ``run_reply``."""
    return (yield from run_reply(context, ReplyInput.model_validate(context.get_input())))
