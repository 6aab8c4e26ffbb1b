"""Service Bus queue trigger on ``%SERVICEBUS_EVENTS_QUEUE%``: CloudEvents in, a decision and maybe a reply.

Connection ``ServiceBusConnection`` (identity: ``ServiceBusConnection__fullyQualifiedNamespace``); the host
completes the message when this function returns. A message that can never be processed raises
``PoisonMessage``: it is logged with its reason and re-raised, so the host abandons it and the broker
dead-letters it after ``MaxDeliveryCount`` (see ``triggers/servicebus_mapping.py`` for why not settle it
explicitly). The loop guard's event id is ``servicebus:<MessageId>``: a message delivered twice (at-least-once,
or a producer's retry with the same id) is decided once and runs once. When deciding fails (the lineage store
or the Durable client unavailable), the message goes to the inbox (``triggers/inbox.py``) and completes: the
broker's own redelivery comes back at once and dead-letters after ``MaxDeliveryCount``, within seconds of an
outage.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.loop.envelope import EventEnvelope
from shared.platforms.servicebus.contract import PoisonMessage, parse_servicebus_body
from shared.services import get_services
from shared.settings import Settings
from shared.work.reply import servicebus_event
from triggers.ingress import MAX_INBOX_CHARS, InboxItem, admit, goes_to_inbox
from triggers.servicebus_mapping import from_function_message, log_poison

logger = logging.getLogger(__name__)

bp = df.Blueprint()


def reply_queues(settings: Settings) -> set[str]:
    """The queues a message's ``ReplyTo`` may name (anything else is answered on the out queue)."""
    return {settings.servicebus_out_queue, settings.servicebus_events_queue}


def parse_servicebus(body: bytes, metadata: dict[str, Any], reply_to: str | None, settings: Settings,
                     ) -> EventEnvelope:
    """Parse a message into its event (``PoisonMessage`` when it never can be); the door and the inbox share it."""
    parsed = parse_servicebus_body(body, **metadata)
    return servicebus_event(parsed, metadata.get("message_id"), reply_to=reply_to,
                            reply_queues=reply_queues(settings))


def servicebus_inbox_item(body: bytes, metadata: dict[str, Any], reply_to: str | None, event_id: str,
                          received_at: datetime) -> InboxItem:
    """The inbox item of a message: its body and what the broker told about it (``x-reynolds-servicebus``)."""
    headers = {"x-reynolds-servicebus": json.dumps({**metadata, "reply_to": reply_to}, default=str)}
    return InboxItem.of("servicebus", headers, body, received_at=received_at,
                        delivery=metadata.get("message_id"), event_id=event_id)


def servicebus_from_item(item: InboxItem, settings: Settings) -> EventEnvelope:
    """The event of an inbox item written by this door."""
    metadata = json.loads(item.headers["x-reynolds-servicebus"])
    reply_to = metadata.pop("reply_to", None)
    enqueued = metadata.get("enqueued_time")
    metadata["enqueued_time"] = datetime.fromisoformat(enqueued) if isinstance(enqueued, str) else None
    return parse_servicebus(item.raw(), metadata, reply_to, settings)


@bp.function_name("servicebus_events")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name="%SERVICEBUS_EVENTS_QUEUE%",
                              connection="ServiceBusConnection")
@bp.queue_output(arg_name="inbox", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def servicebus_events(msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient,
                            inbox: func.Out[str]) -> None:
    """Parse (poison → log and re-raise), key by message id, decide and start (inbox when that fails)."""
    body, metadata = from_function_message(msg)
    message_id = metadata.get("message_id")
    services = get_services()
    try:
        event = parse_servicebus(body, metadata, msg.reply_to, services.settings)
    except PoisonMessage as exc:
        log_poison(message_id, metadata.get("delivery_count"), exc.reason.value, exc.description)
        raise
    try:
        admission = await admit(event, client, services)
    except Exception as exc:
        if not goes_to_inbox(exc):
            raise
        # The broker would redeliver at once, MaxDeliveryCount times, and dead-letter it within seconds of an
        # outage: the inbox retries for a day instead, and the message completes here.
        item = servicebus_inbox_item(body, metadata, msg.reply_to, event.id, services.clock())
        text = item.model_dump_json()
        if len(text) > MAX_INBOX_CHARS:
            raise
        inbox.set(text)
        logger.warning("servicebus message %s event %s: deciding failed (%s); handed to the inbox", message_id,
                       event.id, type(exc).__name__)
        return
    logger.info("servicebus message %s event %s chain %s: %s (%s) instance %s", message_id, event.id,
                admission.decision.chain_id, admission.decision.verdict.value, admission.decision.reason,
                admission.instance_id)
