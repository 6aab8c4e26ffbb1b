"""``POST /api/graph/notifications`` (Graph change and lifecycle notifications) and the subscription timer.

Anonymous at the Functions level: Graph cannot send a key. The ``clientState`` of every item, compared in
constant time, is the authentication; items with a wrong one are dropped and logged while the POST still
gets 202 (Graph would retry otherwise). ``?validationToken=…`` is the subscription handshake: 200 text/plain
echo; a handshake-shaped request (empty body) without a token gets 400.

The trigger never calls Graph. A change notification carries no author and no text, so it cannot be judged
here: each ``created`` change starts the Teams notification orchestration, whose first activity fetches the
message through msgraph-sdk, recognises Reynolds' own messages through the effect ledger (its bot's activity
ids are the Teams message ids) and the marker, and only then asks the loop guard. Its instance id is
the one the Teams outgoing webhook would give the same message (``teams:<message id>``), so the two doors
run one orchestration per message between them. Lifecycle notifications start the subscription orchestration
(renew, recreate, record ``missed``), which a timer also starts every ten minutes to renew before expiry.
When starting fails (the Durable client down, slow), the batch goes to the inbox and ``triggers/inbox.py`` runs
``handle_notifications`` on it; the answer is still 202, so Graph does not drop the subscription.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.loop.lineage import instance_id_for
from shared.platforms.teams.notifications import (
    VALIDATION_HEADERS,
    handle_validation,
    notification_to_envelope,
    parse_notifications,
)
from shared.platforms.teams.subscriptions import LifecycleItem, MaintenanceInput
from shared.services import Services, get_services
from shared.work.reply import TeamsChange
from triggers.ingress import (
    INLINE_BUDGET_SECONDS,
    InboxItem,
    error_response,
    goes_to_inbox,
    hand_to_inbox,
    json_response,
)

logger = logging.getLogger(__name__)

bp = df.Blueprint()

#: Every ten minutes: message subscriptions live at most 60 min and are renewed with 15 min to spare.
SUBSCRIPTION_TIMER_SCHEDULE = "0 */10 * * * *"
TIMER_INSTANCE_ID = "graph-subscriptions"


async def _exists(client: df.DurableOrchestrationClient, instance_id: str, *, unfinished_only: bool) -> bool:
    status = await client.get_status(instance_id)
    if not status or status.runtime_status is None:
        return False
    if not unfinished_only:
        return True
    value = getattr(status.runtime_status, "value", status.runtime_status)
    return str(value) in ("Running", "Pending", "ContinuedAsNew", "Suspended")


async def _start_once(client: df.DurableOrchestrationClient, name: str, instance_id: str, payload: Any, *,
                      unfinished_only: bool = False) -> bool:
    """Start ``name`` as ``instance_id`` unless that instance exists (a retried notification starts nothing);
    with ``unfinished_only`` a finished instance is replaced (the timer's singleton)."""
    if await _exists(client, instance_id, unfinished_only=unfinished_only):
        return False
    await client.start_new(name, instance_id, payload)
    return True


async def handle_notifications(raw: bytes, client: df.DurableOrchestrationClient, services: Services,
                               ) -> dict[str, int]:
    """Verify clientState and start one orchestration per change / lifecycle batch (idempotent by instance id:
    the door and the inbox run this same code, any number of times)."""
    state = services.settings.graph_client_state
    batch = parse_notifications(raw, state.get_secret_value() if state else None)
    started = duplicates = ignored = 0
    for change in batch.changes:
        if change.change_type != "created":
            ignored += 1  # Reynolds subscribes to "created"; edits and deletions start nothing
            continue
        event = notification_to_envelope(change, received_at=services.clock())
        payload = TeamsChange(event_id=event.id, resource=change.resource, change_type=change.change_type,
                              subscription_id=change.subscription_id, tenant_id=change.tenant_id,
                              received_at=services.clock()).model_dump(mode="json")
        if await _start_once(client, names.TEAMS_NOTIFICATION, instance_id_for(event.id), payload):
            started += 1
            logger.info("graph notification for event %s: started %s", event.id, instance_id_for(event.id))
        else:
            duplicates += 1
            logger.info("graph notification for event %s: instance exists; not started again", event.id)
    lifecycle = 0
    if batch.lifecycle:
        items = [LifecycleItem(subscription_id=n.subscription_id, event=n.event, resource=n.resource)
                 for n in batch.lifecycle]
        lifecycle_input = MaintenanceInput(lifecycle=items).model_dump(mode="json")
        digest = hashlib.sha256(repr(lifecycle_input).encode()).hexdigest()[:24]
        lifecycle = len(items)
        await _start_once(client, names.GRAPH_SUBSCRIPTIONS, f"graph-lifecycle-{digest}", lifecycle_input)
        logger.info("graph lifecycle notifications: %s", ", ".join(f"{i.subscription_id} {i.event.value}"
                                                                    for i in items))
    if batch.rejected:
        logger.warning("graph notifications: %d item(s) with a wrong clientState ignored", batch.rejected)
    return {"started": started, "duplicates": duplicates, "lifecycle": lifecycle,
            "ignored": ignored + batch.ignored, "rejected": batch.rejected}


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.queue_output(arg_name="inbox", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def graph_notifications(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                              inbox: func.Out[str]) -> func.HttpResponse:
    """Handshake, or verify clientState and hand each change / lifecycle event to an orchestration."""
    raw = req.get_body()
    if "validationToken" in req.params or not raw.strip():
        status, text, mimetype = handle_validation(req.params.get("validationToken"))
        return func.HttpResponse(text, status_code=status, mimetype=mimetype, headers=dict(VALIDATION_HEADERS))
    try:
        services = get_services()
    except Exception as exc:  # translated to 503; never a stack trace to the caller
        return error_response(exc)
    try:
        counts = await asyncio.wait_for(handle_notifications(raw, client, services), INLINE_BUDGET_SECONDS["graph"])
    except Exception as exc:
        if not goes_to_inbox(exc):
            return error_response(exc)
        return hand_to_inbox(inbox, InboxItem.of("graph", dict(req.headers), raw, received_at=services.clock()),
                             exc)
    return json_response(202, counts)


@bp.function_name("graph_subscription_timer")
@bp.timer_trigger(schedule=SUBSCRIPTION_TIMER_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def graph_subscription_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Start the subscription orchestration (renew before expiry, ensure configured resources) unless running."""
    if await _start_once(client, names.GRAPH_SUBSCRIPTIONS, TIMER_INSTANCE_ID, MaintenanceInput().model_dump(),
                         unfinished_only=True):
        logger.info("graph subscriptions: maintenance started (%s)", TIMER_INSTANCE_ID)
    else:
        logger.info("graph subscriptions: maintenance still running; skipped")
