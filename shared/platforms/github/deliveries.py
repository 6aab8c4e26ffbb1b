"""Recover GitHub App webhook deliveries that failed or never reached Reynolds.

GitHub records every delivery attempt of an App's webhook and never redelivers a failed one by itself
("Handling failed webhook deliveries", docs.github.com/en/webhooks/using-webhooks/handling-failed-webhook-
deliveries: "GitHub does not automatically redeliver failed deliveries"; a delivery fails when the server is
down, answers non-2xx or takes longer than 10 s). The documented remedy (github/docs, "Automatically
redelivering failed deliveries for a GitHub App webhook") is a scheduled job that lists the deliveries since
its last run with ``GET /app/hook/deliveries`` (App JWT; newest first, cursor paging), finds the ``guid``\\s
none of whose attempts succeeded (``status`` not ``OK``) and asks for another attempt with
``POST /app/hook/deliveries/{delivery_id}/attempts``; redelivery is possible for 3 days. The schema is
githubkit's (``githubkit_schemas``: ``AppsClient.list_webhook_deliveries`` / ``redeliver_webhook_delivery``,
model ``HookDeliveryItem``: ``id``, ``guid``, ``delivered_at``, ``redelivery``, ``status``, ``status_code``).
The operation is github/rest-api-description's ``apps/list-webhook-deliveries`` (parameters ``per_page`` ≤ 100,
``cursor``, ``status``; the next page is named by the ``Link: <…cursor=…>; rel="next"`` header, which
githubkit's ``paginate`` follows).

Every run reads every delivery of the whole 3-day window (no item cap: a busy App's older failures must not be
hidden behind its newer successes) and stops at the first older one (the list is newest first). A guid is
redelivered as long as GitHub allows it, with no count cap: each redelivery is itself a delivery (a new ``id``,
the same ``guid``) redeliverable for 3 more days, and a 20-hour outage must cost delay only. GitHub refusing a
redelivery (422: too old) skips the guid with that reason.

Idempotent across runs and instances: each guid has a ``redeliver:<guid>`` document (ETag-guarded) counting
the redeliveries asked for and when; another is asked only after a backoff (10 min doubling to 1 h, so at most
about 75 per guid in the window). A redelivery keeps the guid (``X-GitHub-Delivery``), so Reynolds' own dedupe
by delivery id turns any copy that did get through into a ``duplicate``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from githubkit.exception import RequestFailed

from shared.store.base import DocumentStore, safe_id, update_document

logger = logging.getLogger(__name__)

#: GitHub redelivers attempts made within the last 3 days: the whole window is read (GitHub refuses what is older).
WINDOW = timedelta(days=3)
#: A failed attempt younger than this may be followed by a redelivery someone already asked for.
SETTLE = timedelta(minutes=2)
FIRST_BACKOFF = timedelta(minutes=10)
#: The longest wait between two redeliveries of one guid: after an outage ends, its failures are redelivered
#: within an hour (and within the next 10-minute run for those last tried before it).
MAX_BACKOFF = timedelta(hours=1)


@dataclass
class RecoveryReport:
    """What one run saw and did."""

    scanned: int = 0
    failed_guids: int = 0
    redelivered: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _ok(item: Any) -> bool:
    return 200 <= int(item.status_code) < 300


def _backoff(count: int) -> timedelta:
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(count - 1, 0))


def recover_deliveries(app_github: Any, store: DocumentStore, now: Callable[[], datetime]) -> RecoveryReport:
    """One recovery pass (see the module docstring); ``app_github`` is a githubkit client acting as the App."""
    report = RecoveryReport()
    cutoff = now() - WINDOW
    attempts: dict[str, list[Any]] = {}
    for item in app_github.rest.paginate(app_github.rest.apps.list_webhook_deliveries, per_page=100):
        if item.delivered_at < cutoff:
            break  # newest first: everything further is older
        report.scanned += 1
        attempts.setdefault(item.guid, []).append(item)
    for guid, items in attempts.items():
        if any(_ok(i) for i in items):
            continue
        report.failed_guids += 1
        latest = max(items, key=lambda i: i.delivered_at)
        if now() - latest.delivered_at < SETTLE:
            report.skipped[guid] = "failed moments ago"
            continue
        claim = _claim(store, guid, now())
        if claim is not None:
            report.skipped[guid] = claim
            continue
        try:
            app_github.rest.apps.redeliver_webhook_delivery(latest.id)
        except RequestFailed as exc:
            if exc.response.status_code != 422:
                raise
            report.skipped[guid] = "GitHub refused the redelivery (422: too old)"
            continue
        report.redelivered.append(guid)
        logger.warning("github delivery %s (%s.%s, last status %s): redelivery requested", guid, latest.event,
                       latest.action, latest.status_code)
    return report


def _claim(store: DocumentStore, guid: str, at: datetime) -> str | None:
    """Record one more redelivery of ``guid`` unless too soon or too many; the reason when not."""
    refused: list[str] = []

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        refused.clear()
        count = int((doc or {}).get("count") or 0)
        last = (doc or {}).get("last_at")
        if last is not None and at - datetime.fromisoformat(last) < _backoff(count):
            refused.append("redelivered recently")
            return None
        return {"kind": "redelivery", "guid": guid, "count": count + 1, "last_at": at.isoformat(),
                "ttl": 4 * 86400}

    update_document(store, safe_id(f"redeliver:{guid}"), change)
    return refused[0] if refused else None
