"""Publishing to Service Bus behind a small Protocol, so activities never care who carries the messages.

Production: ``AzureServiceBusPublisher`` opens an async ``ServiceBusClient`` on the namespace with
``DefaultAzureCredential`` (managed identity) for each send. A client per send keeps the publisher free of
event-loop affinity (the async client binds to the loop that opened it); sends are rare (one per answer), so
the connection cost does not matter. Tools and tests install a capturing publisher on ``Services``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from azure.servicebus import ServiceBusMessage

from shared.platforms.servicebus.contract import make_servicebus_client, publish

if TYPE_CHECKING:
    from shared.settings import Settings

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Sends messages to a queue (or topic); raises when the broker refuses them."""

    async def send(self, queue: str, messages: Sequence[ServiceBusMessage]) -> int:
        """Send ``messages`` to ``queue``; return how many were sent."""
        ...


class AzureServiceBusPublisher:
    """``Publisher`` over azure-servicebus, Entra credential on ``ServiceBusConnection__fullyQualifiedNamespace``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, queue: str, messages: Sequence[ServiceBusMessage]) -> int:
        """Open a client, send in batches (``shared.platforms.servicebus.contract.publish``), close everything."""
        client = make_servicebus_client(self.settings)
        async with client, client.get_queue_sender(queue_name=queue) as sender:
            return await publish(sender, messages)
