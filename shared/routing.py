"""The routing table: which orchestration, if any, an accepted event starts."""

from __future__ import annotations

from shared import names
from shared.envelope import EventEnvelope, Platform

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


def route(event: EventEnvelope, profile: str = "default") -> str | None:
    """The orchestrator for ``event`` under ``profile``, or None.

    ``default`` answers people only; ``reply-all`` answers every actor (the loop arena's worst case, where
    the loop guard alone stands between Reynolds and a loop). Reynolds' own events never route. GitHub
    events start triage; Teams channel/chat messages and Service Bus messages start ``reply`` (an answer on
    the platform and target where the event happened).
    """
    orchestrator = ROUTES.get((event.platform, event.name)) or PLATFORM_ROUTES.get(event.platform)
    if orchestrator is None or event.actor.kind.value == "self":
        return None
    if profile == "reply-all" or not event.actor.automated:
        return orchestrator
    return None
