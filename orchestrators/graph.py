"""Orchestrations behind the Graph notification endpoint: one per Teams message, and subscription upkeep.

``run_teams_notification``: the ingest activity fetches the message a change notification names, recognises
Reynolds' own messages through the effect ledger, and asks the loop guard; when the event runs, the reply
follows in the same instance (its id is the one the outgoing webhook would use for the same message, so
both doors share one run). ``run_graph_subscriptions``: lifecycle events and renewals in one activity.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators.backoff import WriteRetry, call_with_backoff
from orchestrators.context import OrchestrationContext
from orchestrators.reply import run_reply
from shared import names
from shared.platforms.teams.subscriptions import MaintenanceInput
from shared.work.policy import RetryPolicy
from shared.work.reply import ReplyInput, TeamsChange

bp = df.Blueprint()

#: Fetching and deciding a notified message is retried as long as the inbox retries anything (24 h,
#: ``triggers/inbox.py`` ``RETRY_HORIZON_SECONDS``): Graph does not redeliver a notification it got 202 for, and
#: the Teams message has no other door, so a Graph or store outage must cost delay only (5 s doubling to 30 min).
INGEST_RETRY = WriteRetry(RetryPolicy(max_attempts=5, base=5.0, cap=1800.0), keep_trying_seconds=24 * 3600.0)


def run_teams_notification(context: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Ingest (fetch, self check, decide), then reply when the decision lets it run."""
    change = TeamsChange.model_validate(context.get_input())
    ingest = yield from call_with_backoff(context, names.TEAMS_INGEST, change.model_dump(mode="json"),
                                          seed=f"{context.instance_id}:ingest", policy=INGEST_RETRY)
    decided = {"event_id": ingest["event_id"], "verdict": ingest["verdict"], "reason": ingest["reason"],
               "chain_id": ingest.get("chain_id"), "actor_kind": ingest.get("actor_kind")}
    if not ingest.get("input"):
        return {**decided, "effects": []}
    if ingest.get("orchestrator") == names.ORCHESTRATE_TASK:
        # Work asked for in Teams: orchestrated as its own sub-orchestration, reported on a tracking issue.
        outcome = yield context.call_sub_orchestrator(names.ORCHESTRATE_TASK, ingest["input"],
                                                      f"{context.instance_id}:task")
        return {**decided, "task": outcome, "effects": []}
    result = yield from run_reply(context, ReplyInput.model_validate(ingest["input"]))
    return {**decided, **result}


def run_graph_subscriptions(context: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Renew, reauthorize, recreate and record ``missed`` through one activity (retried with backoff)."""
    request = MaintenanceInput.model_validate(context.get_input() or {})
    report: dict[str, Any] = yield from call_with_backoff(context, names.GRAPH_MAINTAIN,
                                                          request.model_dump(mode="json"),
                                                          seed=f"{context.instance_id}:maintain")
    return report


@bp.orchestration_trigger(context_name="context", orchestration=names.TEAMS_NOTIFICATION)
def teams_notification_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Registered shim over ``run_teams_notification``."""
    return (yield from run_teams_notification(context))


@bp.orchestration_trigger(context_name="context", orchestration=names.GRAPH_SUBSCRIPTIONS)
def graph_subscriptions_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Registered shim over ``run_graph_subscriptions``."""
    return (yield from run_graph_subscriptions(context))
