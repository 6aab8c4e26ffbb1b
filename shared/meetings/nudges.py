"""When Reynolds nudges the owner of an approved item with a due date: pure deadlines, like
:mod:`shared.act.deadlines` for approvals.

Three nudges, each at most once: ``before`` one day before the due date, ``due`` on the day, ``overdue`` one day
after; each at :data:`NUDGE_HOUR` UTC (the card says the date, a person reads it the same morning). A closed
issue stops them (the caller passes ``closed``). The orchestration waits on durable timers
(:func:`shared.act.deadlines.timer_legs`, at most six days a leg) and passes ``context.current_utc_datetime``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

NUDGE_HOUR = 9
NudgeKind = Literal["before", "due", "overdue"]
_OFFSETS: tuple[tuple[NudgeKind, int], ...] = (("before", -1), ("due", 0), ("overdue", 1))


def nudge_times(due: date) -> list[tuple[NudgeKind, datetime]]:
    """The three nudges of a due date, in order."""
    return [(kind, datetime.combine(due + timedelta(days=days), time(NUDGE_HOUR), tzinfo=UTC))
            for kind, days in _OFFSETS]


def next_nudge(now: datetime, due: date, sent: Collection[str], *, closed: bool = False,
               created_at: datetime | None = None) -> tuple[NudgeKind, datetime] | None:
    """The next nudge still to send, or None. A nudge already past is due now, unless a later one is past too
    (only the latest past nudge is sent, and a nudge sent makes the earlier ones obsolete: nobody wants "due
tomorrow" after the day). Nudges before the item
    was approved (``created_at``) are skipped."""
    if closed:
        return None
    order = [kind for kind, _ in _OFFSETS]
    latest_sent = max((order.index(kind) for kind in sent if kind in order), default=-1)
    pending = [(kind, at) for kind, at in nudge_times(due)
               if order.index(kind) > latest_sent and (created_at is None or at >= created_at)]
    past = [entry for entry in pending if entry[1] <= now]
    if past:
        return past[-1]
    return pending[0] if pending else None


def nudge_text(kind: NudgeKind, owner: str, action: str, due: date, issue_url: str) -> str:
    """The chat message of a nudge (posted by the bot in the meeting chat, with Reynolds' marker)."""
    when = {"before": f"is due tomorrow ({due.isoformat()})", "due": f"is due today ({due.isoformat()})",
            "overdue": f"was due {due.isoformat()} and is still open"}[kind]
    return f"{owner}: \"{action}\" {when}. Tracked in {issue_url}"


def closed_note(action: str, issue_url: str, closed_by: str | None = None) -> str:
    """The chat note when an item's issue is closed (and its nudges stop)."""
    by = f" by {closed_by}" if closed_by else ""
    return f"Done: \"{action}\" was closed{by} ({issue_url})."
