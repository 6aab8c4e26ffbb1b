"""Storage queue trigger on ``names.INBOX_QUEUE``: deliveries a door could not decide in time, decided here.

A door (GitHub, Teams, Graph) verifies a delivery and, when deciding or starting fails or is slow, writes the
raw request to the inbox and answers 202 (``triggers/ingress.py``). This function decides it with the door's
own code (``parse_github``/``admit_github``, ``parse_teams``/``admit``, ``handle_notifications``, the Service
Bus door's ``servicebus_from_item``): the
signature is verified again, the loop guard decides once per event id and the instance id keeps it to one
orchestration, so any number of deliveries of one item answer once.

Failures, as the WebJobs queue listener defines them (Azure/azure-webjobs-sdk,
``Extensions.Storage/Queues/QueueProcessor.cs``; host.json ``queues``): a failed invocation (an exception, a
killed worker, an output write the host could not make) is released to reappear after ``visibilityTimeout``
(60 s) until ``DequeueCount >= maxDequeueCount`` (10), when ``CompleteProcessingMessageAsync`` copies it to
``<queue>-poison`` (``CopyMessageToPoisonQueueAsync``: the body, no reason); and a message whose invocation never
reported (the host died) reappears with one dequeue more, which ``BeginProcessingMessageAsync`` poisons
*without invoking* once it exceeds ``maxDequeueCount``. So the re-park must happen well before the last dequeue:

* dequeues 1 .. ``REPARK_DEQUEUE`` - 1: a transient failure (store, Durable, anything unexpected) raises and
  the host retries it;
* dequeue ``REPARK_DEQUEUE`` (5): a failure re-parks the item as a new message (``generation`` + 1, dequeue
  count 0); an outage up to ``MAX_GENERATIONS`` generations (24 h) costs delay, not the event;
* any later dequeue means the previous invocation did not complete (a crash, a killed worker, a refused
  re-enqueue write): the item is re-parked at once without deciding, with that reason; five more dequeues
  are left for that write before the host could poison it;
* a permanent failure (the signature or body no longer verifies; the item is malformed), or the last
  generation, goes to ``names.INBOX_POISON_QUEUE`` with its ``poison_reason``, and is logged with it.

Whatever still reaches the poison queue (the host's own move, or Reynolds' with a reason) is read by
``inbox_poison``: it counts ``reynolds.inbox.poisoned`` (the alert in ``infra/app/alerts.bicep``), decides the
item again with the door's code, and re-parks it into the inbox (``reparked`` + 1, at most ``MAX_REPARKS``) when
it still cannot be decided. The door's 202 is therefore never the end of an item: it is decided, refused for a
reason that is logged, or reported to a person by the alert.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import ValidationError

from shared import names, telemetry
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

#: host.json ``extensions.queues.maxDequeueCount``: the host poisons a message failing on this dequeue.
MAX_DEQUEUE_COUNT = 10
#: host.json ``extensions.queues.visibilityTimeout`` in seconds: the wait between two dequeues of one message.
VISIBILITY_TIMEOUT_SECONDS = 60
#: The dequeue whose failure re-parks the item; every later one re-parks without deciding.
REPARK_DEQUEUE = 5
#: How long the inbox keeps retrying an item before poisoning it with its reason.
RETRY_HORIZON_SECONDS = 24 * 3600
#: Re-parks before the item is poisoned: 288 generations × (5 dequeues × 60 s) = 24 h of retries.
MAX_GENERATIONS = RETRY_HORIZON_SECONDS // (REPARK_DEQUEUE * VISIBILITY_TIMEOUT_SECONDS)
#: Times the poison-queue reader puts one item back into the inbox (each a further 24 h of retries).
MAX_REPARKS = 2
#: The reason of an item the host moved itself (``CopyMessageToPoisonQueueAsync`` attaches none).
HOST_MOVED = "moved by the host after maxDequeueCount dequeues (a crash, a killed worker or a refused write)"

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


def _repark(item: InboxItem, text: str, error: str, requeue: func.Out[str], poison: func.Out[str]) -> str:
    """Re-park ``item`` as a fresh message (``generation`` + 1), or poison it after the last generation."""
    if item.generation + 1 < MAX_GENERATIONS:
        requeue.set(item.model_copy(update={"generation": item.generation + 1,
                                            "last_error": error[:500]}).model_dump_json())
        return f"re-parked (generation {item.generation + 1})"
    poison.set(poison_text(item, text, f"retries exhausted: {error}"))
    return f"gave up after {MAX_GENERATIONS} generations; poisoned"


@bp.function_name("inbox")
@bp.queue_trigger(arg_name="msg", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.queue_output(arg_name="requeue", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.queue_output(arg_name="poison", queue_name=names.INBOX_POISON_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def inbox(msg: func.QueueMessage, client: df.DurableOrchestrationClient, requeue: func.Out[str],
                poison: func.Out[str]) -> None:
    """Decide an inbox item; raise to retry, re-park from ``REPARK_DEQUEUE`` on, poison with a reason."""
    text = msg.get_body().decode("utf-8", "replace")
    try:
        item = InboxItem.model_validate_json(text)
    except ValidationError as exc:
        logger.error("inbox message %s: malformed (%d errors); poisoned", msg.id, exc.error_count())
        poison.set(poison_text(None, text, "malformed inbox item"))
        return
    dequeues = int(msg.dequeue_count or 1)
    if dequeues > REPARK_DEQUEUE:  # the invocation of dequeue REPARK_DEQUEUE did not complete
        error = f"dequeue {dequeues - 1} did not complete (a crash, a killed worker or a refused re-enqueue write)"
        outcome = _repark(item, text, error, requeue, poison)
        logger.warning("inbox %s delivery %s event %s: %s; %s", item.source, item.delivery, item.event_id,
                       error, outcome)
        return
    try:
        result = await decide_item(item, client, get_services())
    except PoisonItem as exc:
        logger.error("inbox %s delivery %s event %s: poisoned: %s", item.source, item.delivery, item.event_id, exc)
        poison.set(poison_text(item, text, str(exc)))
        return
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        if dequeues < REPARK_DEQUEUE:
            logger.warning("inbox %s delivery %s event %s: attempt %d failed (%s); the host retries it",
                           item.source, item.delivery, item.event_id, dequeues, error)
            raise
        outcome = _repark(item, text, error, requeue, poison)
        log = logger.error if outcome.endswith("poisoned") else logger.warning
        log("inbox %s delivery %s event %s: %d attempts failed (%s); %s", item.source, item.delivery,
            item.event_id, dequeues, error, outcome)
        return
    verdict = result.decision.verdict.value if isinstance(result, Admission) else "handled"
    logger.info("inbox %s delivery %s event %s: %s (generation %d, dequeue %s)", item.source, item.delivery,
                item.event_id, verdict, item.generation, msg.dequeue_count)


def read_poisoned(text: str) -> tuple[InboxItem | None, str]:
    """The item in a poison-queue message and why it is there (``HOST_MOVED`` when no reason was attached)."""
    try:
        body = json.loads(text)
    except ValueError:
        return None, HOST_MOVED
    if not isinstance(body, dict):
        return None, HOST_MOVED
    reason = body.pop("poison_reason", None)
    reason = reason if isinstance(reason, str) and reason else HOST_MOVED
    try:
        return InboxItem.model_validate(body), reason
    except ValidationError:
        return None, reason


def poison_cause(reason: str) -> str:
    """A short dimension for the alerting metric."""
    if reason == HOST_MOVED:
        return "host"
    if reason.startswith("retries exhausted"):
        return "exhausted"
    return "refused"


@bp.function_name("inbox_poison")
@bp.queue_trigger(arg_name="msg", queue_name=names.INBOX_POISON_QUEUE, connection="AzureWebJobsStorage")
@bp.queue_output(arg_name="inbox", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def inbox_poison(msg: func.QueueMessage, client: df.DurableOrchestrationClient, inbox: func.Out[str]) -> None:
    """Read one poisoned inbox item: count it (the alert), decide it again, or re-park it with its reason.

    Never raises for the item's sake: a failure here would send it on to a poison queue of the poison queue.
    A second dequeue means the first did not complete (the item may crash whoever decides it): it is re-parked
    without deciding."""
    text = msg.get_body().decode("utf-8", "replace")
    item, reason = read_poisoned(text)
    first = int(msg.dequeue_count or 1) == 1
    if first:  # once per poisoned item (its retries are not new items)
        telemetry.record_inbox_poisoned(poison_cause(reason))
    if item is None:
        logger.error("inbox-poison message %s: not an inbox item (%d characters; %s); nothing to decide", msg.id,
                     len(text), reason[:200])
        return
    logger.error("inbox-poison %s delivery %s event %s: poisoned (%s; generation %d, reparked %d)", item.source,
                 item.delivery, item.event_id, reason[:300], item.generation, item.reparked)
    error = reason
    if first:
        try:
            result = await decide_item(item, client, get_services())
        except PoisonItem as exc:
            logger.error("inbox-poison %s delivery %s event %s: refused for good: %s", item.source, item.delivery,
                         item.event_id, exc)
            return
        except Exception as exc:
            error = f"{reason[:200]}; then {type(exc).__name__}: {str(exc)[:200]}"
        else:
            verdict = result.decision.verdict.value if isinstance(result, Admission) else "handled"
            logger.warning("inbox-poison %s delivery %s event %s: re-decided: %s", item.source, item.delivery,
                           item.event_id, verdict)
            return
    if item.reparked >= MAX_REPARKS:
        logger.critical("inbox-poison %s delivery %s event %s: given up after %d re-parks (%s)", item.source,
                        item.delivery, item.event_id, item.reparked, error[:300])
        return
    inbox.set(item.model_copy(update={"generation": 0, "reparked": item.reparked + 1,
                                      "last_error": f"poisoned: {error}"[:500]}).model_dump_json())
    logger.warning("inbox-poison %s delivery %s event %s: re-parked into the inbox (%d)", item.source,
                   item.delivery, item.event_id, item.reparked + 1)
