"""Activities of the reply orchestration: thin, idempotent adapters over ``shared.work.reply``."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.loop.breakers import resume_note
from shared.loop.lineage import EffectRecord
from shared.services import Services, get_services
from shared.telemetry import correlated
from shared.work.commands import CommandName, parse_command
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


def resumed(services: Services, request: ReplyInput, plan: TriagePlan) -> TriagePlan:
    """``/reynolds resume`` in Teams or on Service Bus: close every breaker and exchange count holding the
    thread (the channel or chat; the reply queue) and answer which. Idempotent: a re-run closes nothing more.

    In Teams anyone in the channel may resume (Teams authenticated them in the tenant) but never a bot; on
    Service Bus the producer needed Send rights on Reynolds' queue.
    """
    command = parse_command(request.text)
    if command is None or command.name is not CommandName.RESUME:
        return plan
    if request.platform == "teams" and request.actor_kind != "human":
        return plan
    target = request.target if request.platform == "teams" else (request.queue or request.target)
    note = resume_note(services.breakers.reset(platform=request.platform, target=target),
                       services.lineage.release(request.platform, target))
    logger.info("event %s: %s on %s by %s", request.event_id, note, target, request.actor)
    return plan.model_copy(update={"kind": "command", "summary": f"Resumed by {request.actor or 'someone'}. {note}"})


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
    services = get_services()
    plan = resumed(services, request, TriagePlan.model_validate(payload["plan"]))
    instance_id = str(payload["instance_id"])
    record = await services.teams_reporter().post(
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
    services = get_services()
    plan = resumed(services, request, TriagePlan.model_validate(payload["plan"]))
    instance_id = str(payload["instance_id"])
    record = await services.servicebus_reporter().publish(
        key=reply_effect_key(request.event_id), request=request, text=render_reply_text(plan, instance_id),
        data={"kind": plan.kind, "labels": plan.labels, "instance_id": instance_id},
        attempt=int(payload.get("attempt") or 1), run=payload.get("run"))
    logger.info("event %s chain %s instance %s: servicebus message %s (%s)", request.event_id, request.chain_id,
                instance_id, record.resource_id, record.state)
    return _effect(record)
