"""Activities of the orchestrate_task engine: thin, idempotent adapters over ``shared.work.task_service``.

Contracts (``orchestrators/engine.py``): ``plan_task_activity`` TaskRequest → Plan; ``run_subtask_activity``
one attempt → ``{"ok": true, "summary"}`` or a classified failure; ``report_status_activity`` writes the status
comment (created once per instance, then edited in place) and the ``reynolds:*`` labels. Anything unexpected
raises: the engine retries subtasks and treats a failed report as best effort.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.services import get_services
from shared.telemetry import correlated
from shared.work.task_report import ReportPayload, TaskReporter
from shared.work.task_service import RunSubtaskPayload, TaskService
from shared.work.tasks import TaskRequest

logger = logging.getLogger(__name__)

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.PLAN_TASK)
@correlated
def plan_task_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Plan the task (model when configured, offline otherwise); pure with respect to GitHub."""
    request = TaskRequest.model_validate(payload)
    plan = TaskService(get_services()).plan(request)
    logger.info("event %s chain %s: planned %d subtasks (%s)", request.event_id, request.chain_id,
                len(plan.subtasks), plan.planner)
    return plan.model_dump(mode="json")


@bp.activity_trigger(input_name="payload", activity=names.RUN_SUBTASK)
@correlated
def run_subtask_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """One attempt of one subtask (read-only: its proposed writes wait for an approval)."""
    return TaskService(get_services()).run_subtask(RunSubtaskPayload.model_validate(payload))


@bp.activity_trigger(input_name="payload", activity=names.REPORT_STATUS)
@correlated
def report_status_activity(payload: dict[str, Any]) -> dict[str, Any]:
    """Create or edit the status comment and set the labels, each write once (effect ledger)."""
    report = ReportPayload.model_validate(payload)
    result = TaskReporter(get_services()).report(report)
    logger.info("event %s chain %s instance %s: report %d (%s) → %s", report.event_id, report.chain_id,
                report.instance_id, report.sequence, report.phase.value, result.model_dump(exclude_none=True))
    return result.model_dump(mode="json")
