"""Storage queue trigger on ``names.INBOX_QUEUE``: deliveries a door could not decide in time, decided here.

A door (GitHub, Teams, Graph) verifies a delivery and, when deciding or starting fails or is slow, writes the
raw request to the inbox and answers 202 (``triggers/ingress.py``). This function decides it with the door's
own code (``parse_github``/``admit_github``, ``parse_teams``/``admit``, ``handle_notifications``, the Service
Bus door's ``servicebus_from_item``): the
signature is verified again, the loop guard decides once per event id and the instance id keeps it to one
orchestration, so any number of deliveries of one item answer once.

Failures, as the Storage queue trigger defines them (Azure Functions "Azure Queue storage trigger", host.json
``queues``): an exception makes the host retry the message after ``visibilityTimeout`` (60 s here), up to
``maxDequeueCount`` (10) times, then move it to ``<queue>-poison`` without a reason. So:

* a transient failure (store, Durable, anything unexpected) raises: the host retries it;
* on the last dequeue the item is re-enqueued as a new message (``generation`` + 1) instead: a store or
  Durable outage of any length up to ``MAX_GENERATIONS`` × 10 min (24 h) costs delay, not the event;
* a permanent failure (the signature or body no longer verifies; the item is malformed), or the last
  generation, goes to ``names.INBOX_POISON_QUEUE`` with its ``poison_reason``, and is logged with it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import ValidationError

from shared import names
from shared.errors import IncomingRequestError
from shared.platforms.servicebus.contract import PoisonMessage
from shared.services import Services, get_services
from triggers.github_webhook import admit_github, parse_github
from triggers.graph_notifications import handle_notifications
from triggers.ingress import Admission, InboxItem, admit
from triggers.servicebus_events import servicebus_from_item
from triggers.teams_webhook import parse_teams

logger = logging.getLogger(__name__)

bp = df.Blueprint()

#: host.json ``extensions.queues.maxDequeueCount``: the last dequeue re-enqueues instead of failing.
MAX_DEQUEUE_COUNT = 10
#: host.json ``extensions.queues.visibilityTimeout`` in seconds: the wait between two dequeues of one message.
VISIBILITY_TIMEOUT_SECONDS = 60
#: Re-enqueues before the item is poisoned: 144 × (10 dequeues × 60 s) ≈ 24 h of retries.
MAX_GENERATIONS = 144


class PoisonItem(Exception):  # noqa: N818 - names the outcome, like the Service Bus trigger's PoisonMessage
    """An item that can never be decided (the reason goes to the poison queue)."""


async def decide_item(item: InboxItem, client: df.DurableOrchestrationClient, services: Services,
                      ) -> Admission | dict[str, int] | None:
    """Decide one inbox item with its door's code; ``PoisonItem`` when it no longer verifies or parses."""
    raw = item.raw()
    try:
        if item.source == "github":
            _, event = parse_github(item.headers, raw, services)
            return None if event is None else await admit_github(event, client, services)
        if item.source == "teams":
            return await admit(parse_teams(item.headers, raw, services), client, services)
        if item.source == "servicebus":
            return await admit(servicebus_from_item(item, services.settings), client, services)
        return await handle_notifications(raw, client, services)
    except IncomingRequestError as exc:
        raise PoisonItem(f"{type(exc).__name__}: {exc.reason}") from None
    except PoisonMessage as exc:
        raise PoisonItem(f"PoisonMessage: {exc.reason.value}: {exc.description}") from None


def poison_text(item: InboxItem | None, raw: str, reason: str) -> str:
    """What goes to the poison queue: the item (or the unreadable message) and why."""
    body: dict[str, Any] = item.model_dump(mode="json") if item is not None else {"message": raw[:40_000]}
    return json.dumps({**body, "poison_reason": reason[:500]})


@bp.function_name("inbox")
@bp.queue_trigger(arg_name="msg", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.queue_output(arg_name="requeue", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.queue_output(arg_name="poison", queue_name=names.INBOX_POISON_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def inbox(msg: func.QueueMessage, client: df.DurableOrchestrationClient, requeue: func.Out[str],
                poison: func.Out[str]) -> None:
    """Decide an inbox item; raise to retry, re-enqueue on the last dequeue, poison with a reason."""
    text = msg.get_body().decode("utf-8", "replace")
    try:
        item = InboxItem.model_validate_json(text)
    except ValidationError as exc:
        logger.error("inbox message %s: malformed (%d errors); poisoned", msg.id, exc.error_count())
        poison.set(poison_text(None, text, "malformed inbox item"))
        return
    try:
        result = await decide_item(item, client, get_services())
    except PoisonItem as exc:
        logger.error("inbox %s delivery %s event %s: poisoned: %s", item.source, item.delivery, item.event_id, exc)
        poison.set(poison_text(item, text, str(exc)))
        return
    except Exception as exc:
        dequeues = int(msg.dequeue_count or 1)
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        if dequeues < MAX_DEQUEUE_COUNT:
            logger.warning("inbox %s delivery %s event %s: attempt %d failed (%s); the host retries it",
                           item.source, item.delivery, item.event_id, dequeues, error)
            raise
        if item.generation + 1 < MAX_GENERATIONS:
            logger.warning("inbox %s delivery %s event %s: %d attempts failed (%s); re-enqueued (generation %d)",
                           item.source, item.delivery, item.event_id, dequeues, error, item.generation + 1)
            requeue.set(item.model_copy(update={"generation": item.generation + 1,
                                                "last_error": error}).model_dump_json())
            return
        logger.error("inbox %s delivery %s event %s: gave up after %d generations (%s); poisoned", item.source,
                     item.delivery, item.event_id, MAX_GENERATIONS, error)
        poison.set(poison_text(item, text, f"retries exhausted: {error}"))
        return
    verdict = result.decision.verdict.value if isinstance(result, Admission) else "handled"
    logger.info("inbox %s delivery %s event %s: %s (generation %d, dequeue %s)", item.source, item.delivery,
                item.event_id, verdict, item.generation, msg.dequeue_count)
