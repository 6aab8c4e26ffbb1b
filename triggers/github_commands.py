"""``/reynolds`` commands in GitHub comments: the durable side (approve, cancel) and the reply text.

The trigger may talk to the Durable client (raise an event), never to GitHub: the reply is posted by the
triage orchestration the comment starts anyway, with this text instead of a triage. Commands run only for
an accepted event (a redelivery is a duplicate and runs nothing twice).

A command is bound to its comment and to the orchestration it acts on: it is refused when the comment is older
than :data:`COMMAND_WINDOW_SECONDS` (a captured comment replayed days later runs nothing), it runs at most once
per comment id (a ``cmd:`` claim document), and it never reaches an orchestration that started after the
comment was written (a new run's approval is not given by an old comment).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from shared import names
from shared.errors import Conflict
from shared.loop.envelope import EventEnvelope
from shared.services import Services
from shared.store.base import safe_id
from shared.work.commands import PRIVILEGED, CommandName, authorize, parse_command
from shared.work.task_report import TaskReporter, waiting_subtask_instances

logger = logging.getLogger(__name__)


def _state(status: Any) -> str:
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    runtime = getattr(status.runtime_status, "value", status.runtime_status)
    counts = ", ".join(f"{key} {custom[key]}" for key in ("done", "running", "waiting", "failed") if key in custom)
    return f"`{runtime}`" + (f" ({counts})" if counts else "")


#: A command comment older than this is refused, whatever delivery brings it.
COMMAND_WINDOW_SECONDS = 15 * 60
#: Clock skew tolerated between GitHub's timestamps and ours.
_SKEW = timedelta(minutes=5)
COMMAND_TTL_SECONDS = 7 * 86400


@dataclass(frozen=True)
class CommandReply:
    """The answer to a command and whether it was carried out (the triage activity acts on ``resume`` only then)."""

    text: str
    executed: bool = False

    def as_input(self) -> dict[str, Any]:
        """What the trigger merges into the triage orchestration's input."""
        return {"reply": self.text, "command_executed": self.executed}


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _claim(services: Services, event: EventEnvelope) -> bool:
    """Claim the command's comment (``cmd:<issue>:<comment id>``); False when it was carried out before."""
    comment = event.data.get("comment_id")
    doc_id = safe_id(f"cmd:{event.target.key if event.target else ''}:{comment}")
    try:
        services.store.create({"id": doc_id, "pk": doc_id, "kind": "command", "event_id": event.id,
                               "ttl": COMMAND_TTL_SECONDS})
    except Conflict:
        return False
    return True


async def apply_command(event: EventEnvelope, client: df.DurableOrchestrationClient,
                        services: Services) -> CommandReply | None:
    """Carry out a ``/reynolds`` command found in a comment; the answer Reynolds gives, or None."""
    command = parse_command(event.text)
    if command is None or event.event != "issue_comment" or event.target is None:
        return None
    login = event.actor.login or "someone"
    verb = command.name.value
    verdict = authorize(command, event.actor.association)
    if not verdict.allowed:
        logger.info("event %s: /reynolds %s by %s refused (%s)", event.id, verb, login, event.actor.association)
        return CommandReply(verdict.reason)
    written = _when(event.data.get("comment_created_at"))
    now = services.clock()
    if written is None or now - written > timedelta(seconds=COMMAND_WINDOW_SECONDS) or written - now > _SKEW:
        logger.warning("event %s: /reynolds %s by %s refused: written at %s, now %s", event.id, verb, login,
                       written, now)
        return CommandReply(f"`/reynolds {verb}` was not carried out: Reynolds acts only on commands written in "
                            f"the last {COMMAND_WINDOW_SECONDS // 60} minutes. Comment it again if it still applies.")
    if command.name in PRIVILEGED and not await asyncio.to_thread(_claim, services, event):
        logger.warning("event %s: /reynolds %s by %s: this comment's command already ran", event.id, verb, login)
        return CommandReply(f"`/reynolds {verb}` from this comment was already carried out; it runs once.")
    if command.name is CommandName.RESUME:
        return CommandReply(f"Resumed by {login}: Reynolds answers on this thread again.", executed=True)
    tasks = TaskReporter(services)
    instance = await asyncio.to_thread(tasks.tracked_instance, event.target.key)
    if instance is None:
        return CommandReply("No orchestration reports on this issue, so there is nothing to act on.")
    status = await client.get_status(instance)
    if not status or status.runtime_status is None:
        return CommandReply(f"Orchestration `{instance}` is not known to the task hub any more.")
    if command.name is CommandName.STATUS:
        return CommandReply(f"Orchestration `{instance}`: {_state(status)}.")
    started = getattr(status, "created_time", None)
    if isinstance(started, datetime) and started.tzinfo is not None and started > written:
        logger.warning("event %s: /reynolds %s by %s refused: %s started after the comment", event.id, verb, login,
                       instance)
        return CommandReply(f"`/reynolds {verb}` was not carried out: orchestration `{instance}` started after "
                            "this comment was written. Comment the command again to act on it.")
    if command.name is CommandName.APPROVE:
        instances = waiting_subtask_instances(instance, status.custom_status)
        waiting = sorted(instances)
        targets = [command.subtask] if command.subtask else waiting
        targets = [sid for sid in targets if sid in waiting]
        if not targets:
            return CommandReply("No subtask of this orchestration is waiting for an approval" + (
                f" named `{command.subtask}`." if command.subtask else "."))
        for sid in targets:
            approval = {"approved": True, "by": login}
            await client.raise_event(instances[sid], names.APPROVAL_EVENT, approval)
        logger.info("event %s instance %s: approved %s by %s", event.id, instance, targets, login)
        return CommandReply(f"Approved by {login}: " + ", ".join(f"`{sid}`" for sid in targets) + ".", executed=True)
    if command.name is CommandName.CANCEL:
        runtime = getattr(status.runtime_status, "value", status.runtime_status)
        if runtime not in ("Pending", "Running", "ContinuedAsNew", "Suspended"):
            # The task hub refuses an event to a finished instance: say so instead of failing the command.
            return CommandReply(f"Orchestration `{instance}` already ended ({_state(status)}): nothing to cancel.")
        await client.raise_event(instance, names.CANCEL_EVENT, {"by": login})
        logger.info("event %s instance %s: cancel raised by %s", event.id, instance, login)
        return CommandReply(f"Cancelling orchestration `{instance}` at {login}'s request: running subtasks are told "
                            "to stop and no new ones start.", executed=True)
    return CommandReply("Retrying single subtasks is not available yet: start the task again (the API or "
                        "`orchestrate_task`).")
