"""When a pending proposal is reminded (once) and when it expires: pure functions of times the caller gives.

A proposal is *pending* from the moment it was first shown at its current content (a changed proposal starts
again). Defaults (``.github/reynolds.yml`` ``approvals:`` overrides them; the README states them): one reminder
24 hours after it was shown, expiry 72 hours after it was shown. Durable timers in Python last at most 6 days
each, so a longer wait is a chain of legs (:func:`timer_legs`). Times are timezone-aware datetimes; the
orchestrator passes ``context.current_utc_datetime`` as ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from shared.act.policy import ApprovalTimes

#: Python Durable timers may last at most 6 days each.
MAX_TIMER = timedelta(days=6)


def reminder_at(shown_at: datetime, times: ApprovalTimes) -> datetime:
    """When the one reminder is due."""
    return shown_at + timedelta(hours=times.remind_after_hours)


def expires_at(shown_at: datetime, times: ApprovalTimes) -> datetime:
    """When a proposal still pending expires."""
    return shown_at + timedelta(hours=times.expire_after_hours)


def next_deadline(now: datetime, shown_at: datetime, times: ApprovalTimes, *,
                  reminded: bool) -> tuple[Literal["remind", "expire"], datetime]:
    """The next thing due for a pending proposal: the reminder (unless sent, or not before expiry), else expiry.

    A deadline already past is returned as it is (due now): the caller acts at once.
    """
    remind, expire = reminder_at(shown_at, times), expires_at(shown_at, times)
    if not reminded and remind < expire:
        return "remind", remind
    return "expire", expire


def is_expired(now: datetime, shown_at: datetime, times: ApprovalTimes) -> bool:
    """Whether a proposal shown at ``shown_at`` has expired by ``now``."""
    return now >= expires_at(shown_at, times)


def timer_legs(now: datetime, until: datetime) -> list[datetime]:
    """The fire times of a chain of durable timers from ``now`` to ``until``, each at most :data:`MAX_TIMER`
    long (empty when ``until`` is not in the future)."""
    legs: list[datetime] = []
    at = now
    while at < until:
        at = min(until, at + MAX_TIMER)
        legs.append(at)
    return legs
