"""Keeping Graph change-notification subscriptions alive: lifecycle events and the renewal timer's work.

The notification trigger never calls Graph: it hands lifecycle notifications (``reauthorizationRequired``,
``subscriptionRemoved``, ``missed``) to the ``graph_subscriptions`` orchestration, and a timer starts the same
orchestration every few minutes with none. Its activity runs ``maintain``: act on each lifecycle event
through ``SubscriptionManager``, record ``missed`` ones (Graph lost notifications for that subscription: the
record is what an operator, or a later delta-query resync, works from), renew every Reynolds subscription
close to expiry, and make sure each configured resource (``GRAPH_SUBSCRIPTION_RESOURCES``) has one.

A lifecycle notification is authenticated by ``clientState`` only, so whoever learns it could name any chat or
channel in a ``subscriptionRemoved`` and have Reynolds subscribe to it: lifecycle events act only on resources
of ``GRAPH_SUBSCRIPTION_RESOURCES`` (compared without a leading ``/`` and case-insensitively); any other is
counted as ``refused`` and logged, and nothing is created, renewed or recorded for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field

from shared.errors import NotFound
from shared.platforms.teams.notifications import LifecycleEvent, LifecycleNotification
from shared.platforms.teams.subscription_manager import SubscriptionManager
from shared.store.base import DocumentStore, safe_id

logger = logging.getLogger(__name__)


class LifecycleItem(BaseModel):
    """One lifecycle notification, as the trigger hands it over (clientState already verified)."""

    subscription_id: str
    event: LifecycleEvent
    resource: str | None = None


class MaintenanceInput(BaseModel):
    """Input of the subscription orchestration: lifecycle events to act on (none for a timer run)."""

    lifecycle: list[LifecycleItem] = Field(default_factory=list)


class MaintenanceReport(BaseModel):
    """What one maintenance run did."""

    reauthorized: int = 0
    recreated: int = 0
    missed: int = 0
    renewed: int = 0
    #: Lifecycle events naming a resource outside ``GRAPH_SUBSCRIPTION_RESOURCES`` (nothing done for them).
    refused: int = 0
    ensured: list[str] = Field(default_factory=list)


def configured_resources(value: str | None) -> list[str]:
    """The resources of ``GRAPH_SUBSCRIPTION_RESOURCES`` (comma-separated, blanks dropped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _resource_key(resource: str | None) -> str:
    return (resource or "").strip().lstrip("/").rstrip("/").lower()


def is_configured(resource: str | None, resources: list[str]) -> bool:
    """Whether ``resource`` is one of the configured subscription resources."""
    key = _resource_key(resource)
    return bool(key) and key in {_resource_key(item) for item in resources}


def record_missed(store: DocumentStore, item: LifecycleItem, now: datetime) -> dict[str, object]:
    """Count a ``missed`` lifecycle event per subscription (``graph-missed:<id>``, its own partition)."""
    doc_id = safe_id(f"graph-missed:{item.subscription_id}")
    try:
        doc = store.read(doc_id, doc_id)
        count = int(doc.get("count") or 0)
    except NotFound:
        count = 0
    body: dict[str, object] = {"id": doc_id, "pk": doc_id, "kind": "graph-missed",
                               "subscription_id": item.subscription_id, "resource": item.resource,
                               "count": count + 1, "last_at": now.isoformat(), "ttl": 30 * 86400}
    store.upsert(body)
    return body


async def maintain(manager: SubscriptionManager, store: DocumentStore, clock: Callable[[], datetime],
                   request: MaintenanceInput, resources: list[str]) -> MaintenanceReport:
    """Act on lifecycle events, renew expiring subscriptions, ensure configured ones; Graph errors raise."""
    report = MaintenanceReport()
    for item in request.lifecycle:
        if not is_configured(item.resource, resources):
            report.refused += 1
            logger.warning("graph lifecycle %s for subscription %s names a resource outside "
                           "GRAPH_SUBSCRIPTION_RESOURCES; refused", item.event.value, item.subscription_id)
            continue
        notification = LifecycleNotification(item.subscription_id, item.event, item.resource)
        if item.event is LifecycleEvent.MISSED:
            record_missed(store, item, clock())
            report.missed += 1
            logger.warning("graph subscription %s missed notifications on %s; recorded for resync",
                           item.subscription_id, item.resource)
            continue
        result = await manager.handle_lifecycle(notification)
        if item.event is LifecycleEvent.REAUTHORIZATION_REQUIRED:
            report.reauthorized += 1
        else:
            report.recreated += 1
        logger.info("graph subscription %s: %s handled (now %s)", item.subscription_id, item.event.value,
                    result.id if result else None)
    report.renewed = len(await manager.renew_expiring())
    for resource in resources:
        sub = await manager.ensure(resource)
        report.ensured.append(sub.id)
    return report
