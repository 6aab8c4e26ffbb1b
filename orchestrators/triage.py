"""The triage orchestration: plan (offline), then one status comment on the issue.

The comment answers a person, so its retries follow ``ANSWER_RETRY``: at least 26 h of durable-timer backoff
(honouring GitHub's Retry-After and the shared write pacer's waits), never a fixed attempt cap.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators.backoff import ANSWER_RETRY, call_with_backoff
from orchestrators.context import OrchestrationContext
from shared import names
from shared.work.triage import TriageInput

bp = df.Blueprint()


def run_triage(context: OrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Plan, then report. Deterministic: all I/O is in the two activities."""
    request = TriageInput.model_validate(context.get_input())
    plan = yield context.call_activity(names.PLAN, request.model_dump(mode="json"))
    context.set_custom_status({"step": "report", "kind": plan.get("kind")})
    payload = {"request": request.model_dump(mode="json"), "plan": plan, "instance_id": context.instance_id}
    effect = yield from call_with_backoff(context, names.REPORT, payload, seed=f"{context.instance_id}:report",
                                        policy=ANSWER_RETRY)
    return {"event_id": request.event_id, "chain_id": request.chain_id, "plan": plan, "effects": [effect]}


@bp.orchestration_trigger(context_name="context", orchestration=names.TRIAGE)
def triage_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Registered shim over ``run_triage``."""
    return (yield from run_triage(context))
