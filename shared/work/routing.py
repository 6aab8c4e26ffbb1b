"""The routing table: which orchestration, if any, an accepted event starts."""

from __future__ import annotations

import re

from pydantic import ValidationError

from shared import names
from shared.loop.envelope import EventEnvelope, Platform
from shared.work.tasks import TaskRequest, TaskSpec

# (platform, event.action) → orchestrator. Only these run; everything else is acknowledged as "ignored".
ROUTES: dict[tuple[Platform, str], str] = {
    (Platform.GITHUB, "issues.opened"): names.TRIAGE,
    (Platform.GITHUB, "issue_comment.created"): names.TRIAGE,
    (Platform.TEAMS, "teams_message.created"): names.REPLY,
}

# Platforms where every event type routes to one orchestrator: a Service Bus message is an event whatever its
# CloudEvents ``type`` (producers name their own types), and Reynolds answers on the queue.
PLATFORM_ROUTES: dict[Platform, str] = {
    Platform.SERVICEBUS: names.REPLY,
}


_TEAMS_TASK = re.compile(r"^\s*task\s*:\s*(?P<description>\S.*)$", re.IGNORECASE | re.DOTALL)


def task_request_of(event: EventEnvelope) -> TaskRequest | None:
    """The task an event asks Reynolds to orchestrate, if it asks for one.

    A Service Bus CloudEvent whose ``data`` holds ``task`` (and optionally ``strategy``), validated at ingress
    (an invalid one is dead-lettered there); a Teams message that starts with ``task:``.
    """
    if event.platform is Platform.SERVICEBUS and isinstance(event.data.get("task"), dict):
        try:
            strategy = event.data.get("strategy") or {}
            return TaskRequest.model_validate({"task": event.data["task"], "strategy": strategy})
        except ValidationError:
            return None
    if event.platform is Platform.TEAMS:
        match = _TEAMS_TASK.match(event.text or "")
        if match:
            description = match["description"].strip()[:8000]
            return TaskRequest(task=TaskSpec(type="teams-request", description=description))
    return None


def route(event: EventEnvelope, profile: str = "default") -> str | None:
    """The orchestrator for ``event`` under ``profile``, or None.

    ``default`` answers people only; ``reply-all`` answers every actor (the loop arena's worst case, where
    the loop guard alone stands between Reynolds and a loop). Reynolds' own events never route. GitHub
    events start triage; Teams channel/chat messages and Service Bus messages start ``reply`` (an answer on
    the platform and target where the event happened), unless they ask for a task (``task_request_of``):
    that starts ``orchestrate_task``.
    """
    if event.actor.kind.value == "self":
        return None
    if task_request_of(event) is not None:
        # Work asked for by a person or a service: orchestrated, reported on a tracking issue. The loop guard
        # still judges it (depth, budget), and its writes go to GitHub, never back to the asking queue.
        return names.ORCHESTRATE_TASK
    orchestrator = ROUTES.get((event.platform, event.name)) or PLATFORM_ROUTES.get(event.platform)
    if orchestrator is None:
        return None
    if profile == "reply-all" or not event.actor.automated:
        return orchestrator
    return None
