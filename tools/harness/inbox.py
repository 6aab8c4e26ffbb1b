"""The inbox Storage queue, in-process: what the Functions host does with a queue output and a queue trigger.

Modelled on the Azure Functions Storage queue bindings as documented ("Azure Queue storage trigger for Azure
Functions", sections "Poison messages" and "host.json settings"): an output binding's message is written
when the function returns; the trigger delivers a message with its ``dequeue_count`` (1 on the first
delivery); a function that raises leaves the message to reappear after ``visibilityTimeout``; after
``maxDequeueCount`` failed deliveries the host moves it to ``<queue>-poison``. Time is the world's clock:
``drain`` moves it forward to the next visible message when nothing else is due.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter


@dataclass
class QueuedMessage:
    """One message in the queue."""

    id: str
    body: str
    visible_at: datetime
    dequeue_count: int = 0
    inserted_at: datetime | None = None


def trigger_message(message: QueuedMessage) -> func.QueueMessage:
    """The trigger argument the Python worker builds: its own converter over the host's trigger metadata."""
    metadata = {"Id": meta.Datum(message.id, "string"), "DequeueCount": meta.Datum(message.dequeue_count, "int"),
                "PopReceipt": meta.Datum(f"pop-{message.id}-{message.dequeue_count}", "string")}
    if message.inserted_at is not None:
        metadata["InsertionTime"] = meta.Datum(message.inserted_at.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "string")
    decoded = QueueMessageInConverter.decode(meta.Datum(message.body, "string"), trigger_metadata=metadata)
    assert isinstance(decoded, func.QueueMessage)
    return decoded


class QueueOut(func.Out[str]):
    """A queue output binding: ``set`` keeps the value; the host writes it once the function returned."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val

    def get(self) -> str:
        return self.value or ""


@dataclass
class InboxQueue:
    """The inbox queue and its poison queue, with the host's delivery rules."""

    clock: Callable[[], datetime]
    max_dequeue_count: int = 10
    visibility_timeout: float = 60.0
    messages: list[QueuedMessage] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)
    processed: int = 0
    failures: int = 0
    _ids: Any = field(default_factory=itertools.count)

    def out(self) -> QueueOut:
        """An output binding writing to this queue (call ``commit`` with it when the function returned)."""
        return QueueOut()

    def commit(self, out: QueueOut) -> None:
        """What the host does with an output binding after the function returned."""
        if out.value is not None:
            now = self.clock()
            self.messages.append(QueuedMessage(f"m{next(self._ids)}", out.value, now, inserted_at=now))

    def __len__(self) -> int:
        return len(self.messages)

    async def drain(self, handler: Callable[..., Awaitable[None]], *, max_deliveries: int = 100_000,
                    advance: Callable[[float], None] | None = None) -> int:
        """Deliver messages until the queue is empty (moving the clock to the next visible message through
        ``advance``); ``handler(msg=, requeue=, poison=)`` is the trigger. Returns deliveries made."""
        deliveries = 0
        while self.messages and deliveries < max_deliveries:
            now = self.clock()
            due = [m for m in self.messages if m.visible_at <= now]
            if not due:
                if advance is None:
                    break
                advance((min(m.visible_at for m in self.messages) - now).total_seconds())
                continue
            message = min(due, key=lambda m: (m.visible_at, m.id))
            message.dequeue_count += 1
            deliveries += 1
            requeue, poison = QueueOut(), QueueOut()
            msg = trigger_message(message)
            try:
                await handler(msg=msg, requeue=requeue, poison=poison)
            except Exception:
                self.failures += 1
                if message.dequeue_count >= self.max_dequeue_count:
                    self.messages.remove(message)
                    self.poison.append(message.body)  # the host's own poison move: no reason attached
                else:
                    message.visible_at = self.clock() + timedelta(seconds=self.visibility_timeout)
                continue
            self.messages.remove(message)
            self.processed += 1
            self.commit(requeue)
            if poison.value is not None:
                self.poison.append(poison.value)
        return deliveries
