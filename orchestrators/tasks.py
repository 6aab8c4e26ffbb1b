"""The orchestrate_task orchestrations: registered three-line shims over the engine's pure generators."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrators.engine import run_orchestrate_task, run_subtask
from shared import names

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=names.ORCHESTRATE_TASK)
def orchestrate_task_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Plan → sliding-window fan-out over sub-orchestrations → report (``orchestrators.engine``)."""
    return (yield from run_orchestrate_task(context))


@bp.orchestration_trigger(context_name="context", orchestration=names.SUBTASK_ORCHESTRATOR)
def run_subtask_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """One subtask: approval gate when it writes, then attempts with durable backoff."""
    return (yield from run_subtask(context))
