"""The routing table: which orchestration, if any, an accepted event starts."""

from __future__ import annotations

from shared import names
from shared.envelope import EventEnvelope, Platform

# (platform, event.action) → orchestrator. Only these run; everything else is acknowledged as "ignored".
ROUTES: dict[tuple[Platform, str], str] = {
    (Platform.GITHUB, "issues.opened"): names.TRIAGE,
    (Platform.GITHUB, "issue_comment.created"): names.TRIAGE,
}


def route(event: EventEnvelope, profile: str = "default") -> str | None:
    """The orchestrator for ``event`` under ``profile``, or None.

    ``default`` answers people only; ``reply-all`` answers every actor (the loop arena's worst case, where
    the loop guard alone stands between Reynolds and a loop). Reynolds' own events never route.
    """
    orchestrator = ROUTES.get((event.platform, event.name))
    if orchestrator is None or event.actor.kind.value == "self":
        return None
    if profile == "reply-all" or not event.actor.automated:
        return orchestrator
    return None
