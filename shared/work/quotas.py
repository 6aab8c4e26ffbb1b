"""Per-requester task quotas: one person or service cannot open tracking issues and runs without bound.

A task (``orchestrate_task``) asked for over Teams or Service Bus counts against its requester — the platform,
the source and the actor's id (or login) — in fixed one-hour windows: at most :data:`TASKS_PER_HOUR`. The
window's document lists the event ids it admitted, so a redelivery of an admitted task is admitted again and a
redelivery of a refused one is refused again (within the window). HTTP and MCP callers hold a function key and
are not counted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.loop.envelope import EventEnvelope
from shared.store.base import DocumentStore, safe_id, update_document

#: Tasks one requester may start per hour.
TASKS_PER_HOUR = 5
WINDOW_SECONDS = 3600


@dataclass(frozen=True)
class QuotaDecision:
    """Whether the task may run, and the answer the requester gets when it may not."""

    allowed: bool
    reason: str = ""


def requester_of(event: EventEnvelope) -> str:
    """Who asked: platform, source and actor id (login when there is no id)."""
    who = event.actor.id or event.actor.login or "anonymous"
    return f"{event.platform.value}|{event.source}|{who}"


def take_task_quota(store: DocumentStore, event: EventEnvelope, now: datetime,
                    limit: int = TASKS_PER_HOUR) -> QuotaDecision:
    """Count ``event`` against its requester's hourly quota (idempotent per event id)."""
    window = int(now.timestamp() // WINDOW_SECONDS)
    doc_id = safe_id(f"quota:{requester_of(event)}:{window}")
    admitted = False

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal admitted
        events = list((doc or {}).get("events") or [])
        admitted = event.id in events or len(events) < limit
        if event.id in events or not admitted:
            return None
        return {"id": doc_id, "pk": doc_id, "kind": "task-quota", "events": [*events, event.id],
                "ttl": 2 * WINDOW_SECONDS}

    update_document(store, doc_id, change)
    if admitted:
        return QuotaDecision(True)
    minutes = max(1, int(((window + 1) * WINDOW_SECONDS - now.timestamp()) // 60))
    return QuotaDecision(False, f"task quota reached: at most {limit} tasks per hour per requester; "
                                f"this one was not started (try again in {minutes} minutes)")
