"""Map the host's ``func.ServiceBusMessage`` onto ``shared.platforms.servicebus.contract.parse_servicebus_body``.

How an invalid (poison) message gets dead-lettered — the decision and why
-------------------------------------------------------------------------
**Decision: re-raise.** The trigger lets ``PoisonMessage`` propagate; the host abandons the message, Service
Bus redelivers it, and after ``MaxDeliveryCount`` (10) deliveries the broker moves it to the dead-letter
sub-queue (``DeadLetterReason = MaxDeliveryCountExceeded``). The trigger logs the ``PoisonMessage`` reason and
description with the message id on every attempt, and at ``warning`` level with "dead-letter next" on the
delivery whose ``delivery_count`` reaches the queue's maximum, so the cause is in the logs beside the
dead-lettered message. Cost: up to 10 cheap failed invocations per poison message (parsing fails before any
I/O), which is bounded and self-cleaning.

**Why not settle it explicitly.** Explicit dead-lettering needs the SDK-type binding
(``azurefunctions-extensions-bindings-servicebus``: the trigger argument typed
``ServiceBusReceivedMessage`` plus a ``ServiceBusMessageActions`` argument whose
``deadletter(message, deadletter_reason=…, deadletter_error_description=…)`` settles over the host's gRPC
settlement channel, with ``auto_complete_messages=False`` on the trigger). It was rejected for now because:

* the package is still a pre-release on PyPI (1.0.0b2, September 2025), and
  users report the Functions docs saying settlement is "not yet supported" for Python while the package's
  own samples use it (Azure/azure-functions-python-extensions#146) — no stable, documented contract yet;
* it pulls ``uamqp`` (deprecated C extension), ``grpcio``, ``grpcio-tools`` and ``protobuf`` into the runtime
  image, against the rule that runtime packages stay minimal;
* it needs ``auto_complete_messages=False``, which moves completion of *every* message into our code (a
  forgotten ``complete`` means a redelivery storm), and it replaces ``func.ServiceBusMessage`` in the
  trigger signature, so the offline tests would need a fake of the settlement client.

The classic ``func.ServiceBusMessage`` exposes no settlement at all, and settling from a separate
``azure-servicebus`` receiver is impossible: a peek-lock can only be settled on the link that holds it.
``PoisonMessage.deadletter_kwargs()`` already speaks the settlement API's words, so switching later is a
change in the trigger only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import azure.functions as func

logger = logging.getLogger(__name__)

#: The queue's ``MaxDeliveryCount`` (Service Bus default); after this many deliveries the broker dead-letters.
MAX_DELIVERY_COUNT = 10


def from_function_message(msg: func.ServiceBusMessage) -> tuple[bytes, dict[str, Any]]:
    """Return ``(body, metadata)`` for ``parse_servicebus_body(body, **metadata)``.

    ``metadata`` holds ``message_id``, ``application_properties`` (the host's ``ApplicationProperties``, or the
    older ``UserProperties`` when that is all it sent), ``delivery_count``, ``content_type``, ``session_id``
    and ``enqueued_time`` (UTC).
    """
    properties: dict[str, Any] = dict(msg.application_properties or {}) or dict(msg.user_properties or {})
    enqueued: datetime | None = msg.enqueued_time_utc
    return msg.get_body(), {
        "message_id": msg.message_id,
        "application_properties": properties,
        "delivery_count": msg.delivery_count,
        "content_type": msg.content_type,
        "session_id": msg.session_id,
        "enqueued_time": enqueued,
    }


def is_last_delivery(delivery_count: int | None, max_delivery_count: int = MAX_DELIVERY_COUNT) -> bool:
    """True on the delivery after which a failure makes the broker dead-letter the message."""
    return delivery_count is not None and delivery_count >= max_delivery_count


def log_poison(message_id: str | None, delivery_count: int | None, reason: str, description: str) -> None:
    """Log a poison message so its cause is findable next to the dead-lettered message (then re-raise); the
    record carries the refusal as custom dimensions (``verdict`` ``rejected``, ``rule`` = the dead-letter reason)."""
    extra = {"verdict": "rejected", "rule": reason}
    if message_id and len(message_id) <= 180:  # the event id it would have had (shared.work.reply.servicebus_event)
        extra["event_id"] = f"servicebus:{message_id}"
    if is_last_delivery(delivery_count):
        logger.warning(
            "servicebus poison message %s (delivery %s): %s: %s; dead-letter next",
            message_id,
            delivery_count,
            reason,
            description,
            extra=extra,
        )
    else:
        logger.info(
            "servicebus poison message %s (delivery %s): %s: %s", message_id, delivery_count, reason, description,
            extra=extra,
        )
