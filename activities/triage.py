"""Activities of the triage orchestration: thin, idempotent adapters over ``shared.work.triage``."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.services import get_services
from shared.telemetry import correlated, record_orchestration
from shared.work.commands import CommandName, authorize, parse_command
from shared.work.triage import TriageInput, TriagePlan, plan_triage, render_command_reply, render_triage_comment

logger = logging.getLogger(__name__)

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.PLAN)
@correlated
def plan_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Offline, deterministic plan (pure: safe to run any number of times)."""
    request = TriageInput.model_validate(payload)
    return plan_triage(request.text).model_dump(mode="json")


@bp.activity_trigger(input_name="payload", activity=names.REPORT)
@correlated
def report_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Post the status comment once per event (effect ledger + marker), return the effect."""
    request = TriageInput.model_validate(payload["request"])
    plan = TriagePlan.model_validate(payload["plan"])
    instance_id = str(payload["instance_id"])
    services = get_services()
    reporter = services.reporter()
    command = parse_command(request.text)
    if (command is not None and command.name == CommandName.RESUME and request.command_executed
            and authorize(command, request.association).allowed):
        services.breakers.reset(platform="github", target=f"{request.repo}#{request.number}")
        logger.info("event %s: breakers on %s#%s closed by %s", request.event_id, request.repo, request.number,
                    request.actor)
    record = reporter.post_comment(
        key=f"{request.event_id}:report", repo=request.repo, number=request.number,
        installation_id=request.installation_id,
        body=render_command_reply(request.reply, instance_id) if request.reply else render_triage_comment(plan,
                                                                                                       instance_id),
        chain_id=request.chain_id, event_id=request.event_id, depth=request.depth + 1,
        counterpart=request.actor, counterpart_text=request.text, automated=request.actor_kind != "human",
        attempt=int(payload.get("attempt") or 1), run=payload.get("run"),
    )
    logger.info("event %s chain %s instance %s: status comment %s (%s)", request.event_id, request.chain_id,
                instance_id, record.resource_id, record.state)
    effect: dict[str, Any] = {"platform": "github", "kind": "comment", "target": record.target,
              "id": (record.resource_id or "").removeprefix("comment:")}
    if record.state == "suppressed":
        effect["suppressed"] = True
    if request.received_at is not None:
        record_orchestration(names.TRIAGE, record.state, (services.clock() - request.received_at).total_seconds())
    return effect
