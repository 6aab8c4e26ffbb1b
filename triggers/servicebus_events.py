"""Service Bus queue trigger on ``%SERVICEBUS_EVENTS_QUEUE%``: CloudEvents in, a decision and maybe a reply.

Connection ``ServiceBusConnection`` (identity: ``ServiceBusConnection__fullyQualifiedNamespace``); the host
completes the message when this function returns. A message that can never be processed raises
``PoisonMessage``: it is logged with its reason and re-raised, so the host abandons it and the broker
dead-letters it after ``MaxDeliveryCount`` (see ``triggers/servicebus_mapping.py`` for why not settle it
explicitly). The loop guard's event id is ``servicebus:<MessageId>``: a message delivered twice (at-least-once,
or a producer's retry with the same id) is decided once and runs once. Transient failures (the lineage store
unavailable) raise as well and the message comes back.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from shared.platforms.servicebus.contract import PoisonMessage, parse_servicebus_body
from shared.services import get_services
from shared.work.reply import servicebus_event
from triggers.ingress import admit
from triggers.servicebus_mapping import from_function_message, log_poison

logger = logging.getLogger(__name__)

bp = df.Blueprint()


@bp.function_name("servicebus_events")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name="%SERVICEBUS_EVENTS_QUEUE%",
                              connection="ServiceBusConnection")
@bp.durable_client_input(client_name="client")
async def servicebus_events(msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    """Parse (poison → log and re-raise), key by message id, decide and start."""
    body, metadata = from_function_message(msg)
    message_id = metadata.get("message_id")
    try:
        parsed = parse_servicebus_body(body, **metadata)
    except PoisonMessage as exc:
        log_poison(message_id, metadata.get("delivery_count"), exc.reason.value, exc.description)
        raise
    services = get_services()
    queues = {services.settings.servicebus_out_queue, services.settings.servicebus_events_queue}
    event = servicebus_event(parsed, message_id, reply_to=msg.reply_to, reply_queues=queues)
    admission = await admit(event, client, services)
    logger.info("servicebus message %s event %s chain %s: %s (%s) instance %s", message_id, event.id,
                admission.decision.chain_id, admission.decision.verdict.value, admission.decision.reason,
                admission.instance_id)
