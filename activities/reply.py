"""Activities of the reply orchestration: thin, idempotent adapters over ``shared.work.reply``."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.loop.lineage import EffectRecord
from shared.services import get_services
from shared.telemetry import correlated
from shared.work.reply import ReplyInput, render_reply_html, render_reply_text, reply_effect_key
from shared.work.triage import TriagePlan, plan_triage

logger = logging.getLogger(__name__)

bp = df.Blueprint()


def _effect(record: EffectRecord) -> dict[str, Any]:
    effect: dict[str, Any] = {"platform": record.platform, "kind": record.kind, "target": record.target,
                              "id": record.resource_id or ""}
    if record.state == "suppressed":
        effect["suppressed"] = True
    return effect


@bp.activity_trigger(input_name="payload", activity=names.REPLY_PLAN)
@correlated
def reply_plan_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Offline, deterministic plan of the message text (pure: safe to run any number of times)."""
    return plan_triage(str(payload.get("text") or "")).model_dump(mode="json")


@bp.activity_trigger(input_name="payload", activity=names.POST_TEAMS)
@correlated
async def post_teams_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Post the answer in the event's channel or chat once per event; ``GraphThrottled`` raises (retried)."""
    request = ReplyInput.model_validate(payload["request"])
    plan = TriagePlan.model_validate(payload["plan"])
    instance_id = str(payload["instance_id"])
    record = await get_services().teams_reporter().post(
        key=reply_effect_key(request.event_id), request=request, html_body=render_reply_html(plan, instance_id),
        attempt=int(payload.get("attempt") or 1), run=payload.get("run"))
    logger.info("event %s chain %s instance %s: teams message %s (%s)", request.event_id, request.chain_id,
                instance_id, record.resource_id, record.state)
    return _effect(record)


@bp.activity_trigger(input_name="payload", activity=names.PUBLISH_SERVICEBUS)
@correlated
async def publish_servicebus_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Publish the answer on the reply queue once per event (deterministic message id, ledger, marker)."""
    request = ReplyInput.model_validate(payload["request"])
    plan = TriagePlan.model_validate(payload["plan"])
    instance_id = str(payload["instance_id"])
    record = await get_services().servicebus_reporter().publish(
        key=reply_effect_key(request.event_id), request=request, text=render_reply_text(plan, instance_id),
        data={"kind": plan.kind, "labels": plan.labels, "instance_id": instance_id},
        attempt=int(payload.get("attempt") or 1), run=payload.get("run"))
    logger.info("event %s chain %s instance %s: servicebus message %s (%s)", request.event_id, request.chain_id,
                instance_id, record.resource_id, record.state)
    return _effect(record)
