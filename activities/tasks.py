"""Activities of the orchestrate_task engine: thin, idempotent adapters over ``shared.work.task_service``.

Contracts (``orchestrators/engine.py``): ``plan_task_activity`` TaskRequest → Plan; ``run_subtask_activity``
one attempt → ``{"ok": true, "summary"}`` or a classified failure; ``report_status_activity`` writes the status
comment (created once per instance, then edited in place) and the ``reynolds:*`` labels; the lifecycle
activities (start and collect, notify, cancel, load task) reach subtask orchestrations through a durable client.
Anything unexpected raises: the engine retries subtasks and treats a failed report as best effort.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.services import get_services
from shared.telemetry import correlated
from shared.work.task_report import ReportPayload, TaskReporter
from shared.work.task_service import RunSubtaskPayload, TaskService
from shared.work.tasks import TaskRequest, request_of

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


# -- the engine's lifecycle activities: a durable client starts, signals and reads subtask orchestrations --------
#
# The parent never calls its subtasks as sub-orchestrations: DTFx would hold the parent open until each one ends
# (see orchestrators/engine.py). These activities carry ids only; each is safe to run twice.

#: The SDK's ``OrchestrationRuntimeStatus`` names of an instance that can still receive events.
_LIVE = ("Pending", "Running", "ContinuedAsNew", "Suspended")


def _status_name(status: Any) -> str | None:
    runtime = getattr(status, "runtime_status", None)
    return None if runtime is None else str(getattr(runtime, "value", runtime))


@bp.activity_trigger(input_name="payload", activity=names.START_SUBTASKS)
@bp.durable_client_input(client_name="client")
async def start_subtasks_activity(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Start each subtask orchestration of a wave under its derived id (an id already known is left alone: the
    run is in the id, so only a re-run of this call meets one), and return the outcomes of the ``collect``
    subtasks that already ended (a continued parent, or its supervision pass, asks for them): the output of a
    Completed one; a failed outcome for one that Failed, was Terminated or is not known any more. With ``task``
    (the first call of a run) the task is saved once for the subtasks' attempts to read by reference."""
    if payload.get("task"):
        await asyncio.to_thread(TaskService(get_services()).save_task_spec, str(payload["parent_instance_id"]),
                                str(payload["task"].get("run") or ""), payload["task"]["spec"])
    started, known = [], []
    for child in payload.get("children") or []:
        instance_id = str(child["instance_id"])
        if _status_name(await client.get_status(instance_id)) is not None:
            known.append(instance_id)  # a re-run of this activity: the first run started it
            continue
        await client.start_new(names.SUBTASK_ORCHESTRATOR, instance_id, child["input"])
        started.append(instance_id)
    outcomes: dict[str, Any] = {}
    for sid, instance_id in (payload.get("collect") or {}).items():
        status = await client.get_status(str(instance_id))
        name = _status_name(status)
        if name == "Completed":
            outcomes[sid] = status.output
        elif name in ("Failed", "Terminated", None):
            what = "not known to the task hub" if name is None else name.lower()
            outcomes[sid] = {"id": sid, "specialist": "code_intelligence", "status": "failed", "attempts": 0,
                             "error": f"subtask orchestration {what}"}
    logger.info("instance %s: started %d subtasks (%d already known), %d outcomes collected",
                payload.get("parent_instance_id"), len(started), len(known), len(outcomes))
    return {"started": started, "known": known, "outcomes": outcomes}


@bp.activity_trigger(input_name="payload", activity=names.NOTIFY_PARENT)
@bp.durable_client_input(client_name="client")
async def notify_parent_activity(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Raise a subtask's outcome to its parent; a parent that already ended (cancelled) is not an error."""
    parent = str(payload["parent_instance_id"])
    if _status_name(await client.get_status(parent)) not in _LIVE:
        logger.info("instance %s ended before hearing %s", parent, payload["event"])
        return {"delivered": False}
    await client.raise_event(parent, str(payload["event"]), payload["outcome"])
    return {"delivered": True}


@bp.activity_trigger(input_name="payload", activity=names.CANCEL_SUBTASKS)
@bp.durable_client_input(client_name="client")
async def cancel_subtasks_activity(payload: dict[str, Any], client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Raise ``cancel`` to every subtask orchestration still running."""
    told = []
    for instance_id in payload["instance_ids"]:
        if _status_name(await client.get_status(str(instance_id))) in _LIVE:
            await client.raise_event(str(instance_id), names.CANCEL_EVENT, {"by": payload.get("by") or ""})
            told.append(instance_id)
    logger.info("cancel sent to %d subtasks: %s", len(told), ", ".join(told))
    return {"told": told}


@bp.activity_trigger(input_name="payload", activity=names.LOAD_TASK)
@bp.durable_client_input(client_name="client")
async def load_task_activity(payload: Any, client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """The task of a subtask started before tasks were saved by reference (a parent id): read from the parent's
    input. The engine no longer calls it (``RUN_SUBTASK`` reads ``TaskSpecRef``); kept for subtasks in flight
    across a deployment."""
    status = await client.get_status(str(payload), show_input=True)
    if _status_name(status) is None:
        raise LookupError(f"no orchestration {payload}")
    return request_of(status.input_).task.model_dump(mode="json")
