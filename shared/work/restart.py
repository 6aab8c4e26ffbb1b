"""The one way Reynolds starts an orchestration again under an instance id that already ran.

Redelivery (``triggers.ingress.admit``, an event whose orchestration Failed or was Terminated) and delivery
recovery (``triggers.recovery.restart_failed``) both call :func:`restart_orchestration`. What makes a restart
safe is in the engine: every run of an orchestrate_task instance draws a fresh run token (``context.new_uuid``
of its first execution) that is part of every subtask's instance id and outcome event
(``shared.names.subtask_instance_id``), so a new run never adopts or waits on a previous run's subtasks. This
function keeps that true for inputs read back from the task hub: an orchestrate_task that had continued as new
holds its carried state (``EngineCarry``, with the old run's token) as its input; restarting from it would
resume the old run, so it is turned back into the task request the run started from.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from shared import names

logger = logging.getLogger(__name__)


class _Starter(Protocol):
    async def start_new(self, orchestration_function_name: str, instance_id: str | None = None,
                        client_input: Any | None = None) -> str: ...


def restart_input(orchestrator: str, value: Any) -> Any:
    """The input a restart of ``orchestrator`` starts from: a carried engine state becomes its task request."""
    if orchestrator == names.ORCHESTRATE_TASK and isinstance(value, dict) and "request" in value \
            and "subtasks" in value:
        return value["request"]
    return value


async def restart_orchestration(client: _Starter, orchestrator: str, instance_id: str, value: Any) -> str:
    """Start ``orchestrator`` again under ``instance_id`` (the host allows it once the instance is Completed,
    Failed or Terminated: host.json ``overridableExistingInstanceStates``)."""
    logger.warning("instance %s (%s): starting a new run under the same id", instance_id, orchestrator)
    return await client.start_new(orchestrator, instance_id, restart_input(orchestrator, value))


__all__ = ["restart_input", "restart_orchestration"]
