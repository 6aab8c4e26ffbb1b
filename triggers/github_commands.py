"""``/reynolds`` commands in GitHub comments: the durable side (approve, cancel) and the reply text.

The trigger may talk to the Durable client (raise an event), never to GitHub: the reply is posted by the
triage orchestration the comment starts anyway, with this text instead of a triage. Commands run only for
an accepted event (a redelivery is a duplicate and runs nothing twice).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.loop.envelope import EventEnvelope
from shared.names import subtask_instance_id
from shared.services import Services
from shared.work.commands import CommandName, authorize, parse_command
from shared.work.task_report import TaskReporter, subtask_ids_waiting

logger = logging.getLogger(__name__)


def _state(status: Any) -> str:
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    runtime = getattr(status.runtime_status, "value", status.runtime_status)
    counts = ", ".join(f"{key} {custom[key]}" for key in ("done", "running", "waiting", "failed") if key in custom)
    return f"`{runtime}`" + (f" ({counts})" if counts else "")


async def apply_command(event: EventEnvelope, client: df.DurableOrchestrationClient, services: Services) -> str | None:
    """Carry out a ``/reynolds`` command found in a comment; the text Reynolds answers with, or None."""
    command = parse_command(event.text)
    if command is None or event.event != "issue_comment" or event.target is None:
        return None
    login = event.actor.login or "someone"
    verdict = authorize(command, event.actor.association)
    if not verdict.allowed:
        logger.info("event %s: /reynolds %s by %s refused (%s)", event.id, command.name.value, login,
                    event.actor.association)
        return verdict.reason
    if command.name is CommandName.RESUME:
        return f"Resumed by {login}: Reynolds answers on this thread again."
    tasks = TaskReporter(services)
    instance = await asyncio.to_thread(tasks.tracked_instance, event.target.key)
    if instance is None:
        return "No orchestration reports on this issue, so there is nothing to act on."
    status = await client.get_status(instance)
    if not status or status.runtime_status is None:
        return f"Orchestration `{instance}` is not known to the task hub any more."
    if command.name is CommandName.STATUS:
        return f"Orchestration `{instance}`: {_state(status)}."
    if command.name is CommandName.APPROVE:
        waiting = subtask_ids_waiting(status.custom_status)
        targets = [command.subtask] if command.subtask else waiting
        targets = [sid for sid in targets if sid in waiting]
        if not targets:
            return "No subtask of this orchestration is waiting for an approval" + (
                f" named `{command.subtask}`." if command.subtask else ".")
        for sid in targets:
            approval = {"approved": True, "by": login}
            await client.raise_event(subtask_instance_id(instance, sid), names.APPROVAL_EVENT, approval)
        logger.info("event %s instance %s: approved %s by %s", event.id, instance, targets, login)
        return f"Approved by {login}: " + ", ".join(f"`{sid}`" for sid in targets) + "."
    if command.name is CommandName.CANCEL:
        await client.raise_event(instance, names.CANCEL_EVENT, {"by": login})
        logger.info("event %s instance %s: cancel raised by %s", event.id, instance, login)
        return (f"Cancelling orchestration `{instance}` at {login}'s request: running subtasks finish, "
                "no new ones start.")
    return "Retrying single subtasks is not available yet: start the task again (the API or `orchestrate_task`)."
