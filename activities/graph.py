"""Activities behind the Graph notification endpoint: ingest one Teams message, keep subscriptions alive."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.admission import judge, orchestration_input
from shared.loop.envelope import ActorKind
from shared.platforms.teams.messages import fetch_message
from shared.platforms.teams.subscription_manager import SubscriptionManager
from shared.platforms.teams.subscriptions import MaintenanceInput, configured_resources, maintain
from shared.services import get_services
from shared.telemetry import correlated
from shared.work.reply import TeamsChange, reply_effect_key

logger = logging.getLogger(__name__)

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.TEAMS_INGEST)
@correlated
async def teams_ingest_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Fetch the message, recognise Reynolds' own, decide; return the decision and the reply input if it runs.

    Graph names the account Reynolds posts with as a human author, so authorship comes from the effect
    ledger (``fr:teams:<message id>``, written when Reynolds posted it) before the loop guard judges the
    actor. Re-running this activity is safe: a second decision is ``duplicate`` of the first and runs the
    same way (the orchestration instance is unique per message).
    """
    change = TeamsChange.model_validate(payload)
    services = get_services()
    event = await fetch_message(services.graph_client(), change.resource, change_type=change.change_type,
                                received_at=change.received_at)
    own: Any = await asyncio.to_thread(services.lineage.own_effect, event.platform.value, event.resource_id)
    if own is None:
        # Graph may notify before the ledger has the message id (the post is in flight): its marker names the
        # event Reynolds was answering on this very channel, and the ledger has that answer's intent.
        own = await asyncio.to_thread(services.lineage.answering, event, reply_effect_key)
        if own is not None and own.state == "done":
            # Reynolds' answer is in the ledger under its own message id, and this is a different message that
            # carries its marker: a person quoting or copying it. A copied marker never proves authorship.
            logger.info("event %s: carries the marker of Reynolds' recorded answer %s; a copy, not Reynolds",
                        event.id, own.resource_id)
            own = None
    if own is not None:
        event = event.model_copy(update={"actor": event.actor.model_copy(update={"kind": ActorKind.SELF})})
    judged = await judge(event, services)
    decision = judged.decision
    orchestrator = judged.orchestrator if judged.runs else None
    started = orchestration_input(orchestrator, event, decision,
                                  out_queue=services.settings.servicebus_out_queue) if orchestrator else None
    return {"event_id": event.id, "verdict": decision.verdict.value, "reason": decision.reason,
            "chain_id": decision.chain_id, "actor_kind": event.actor.kind.value,
            "orchestrator": orchestrator, "input": started}


@bp.activity_trigger(input_name="payload", activity=names.GRAPH_MAINTAIN)
@correlated
async def graph_subscriptions_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Act on lifecycle events, renew expiring subscriptions, ensure the configured ones (Graph errors raise)."""
    services = get_services()
    settings = services.settings
    manager = SubscriptionManager(services.graph_client(), settings, clock=services.clock)
    report = await maintain(manager, services.store, services.clock, MaintenanceInput.model_validate(payload),
                            configured_resources(settings.graph_subscription_resources))
    logger.info("graph subscriptions: %s", report.model_dump())
    return report.model_dump(mode="json")
