"""The inbox Storage queue, in-process: what the Functions host does with a queue output and a queue trigger.

Modelled on the WebJobs queue listener as its source defines it (Azure/azure-webjobs-sdk,
``src/Microsoft.Azure.WebJobs.Extensions.Storage/Queues/QueueProcessor.cs``) and the documented bindings
("Azure Queue storage trigger for Azure Functions", "Poison messages", host.json ``queues``):

* ``QueueProcessor.BeginProcessingMessageAsync``: a message dequeued with ``DequeueCount > MaxDequeueCount`` is
  moved to the poison queue *without invoking the function*. That is how a message whose last invocation never
  reported (the host or worker killed, the lease expired) is poisoned: it reappears with one dequeue more.
* ``QueueProcessor.CompleteProcessingMessageAsync``: a failed invocation with ``DequeueCount >= MaxDequeueCount``
  goes through ``HandlePoisonMessageAsync`` → ``CopyMessageToPoisonQueueAsync`` (a copy of the body, no
  reason) then ``DeleteMessageAsync``; a failed one below that is released (``ReleaseMessageAsync``) to reappear
  after ``visibilityTimeout``; a succeeded one is deleted.
* An invocation fails when the function raises *or* when the host cannot write its output bindings after the
  function returned (the output flush is part of the invocation): a refused re-enqueue write is a failure.
* The trigger delivers ``dequeue_count`` (1 on the first delivery). Time is the world's clock: ``drain`` moves it
  to the next visible message when nothing else is due.

Fault hooks: ``crash(message)`` — the worker is killed during the invocation (outputs lost; the host records a
failure, so the Complete rule above applies); ``lost(message)`` — the whole host dies during it (nothing is
completed; the message reappears after ``visibility_timeout`` with the Begin rule to face); ``refuse_write(queue,
body)`` — a write to a queue is refused (the invocation fails).
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


class WorkerCrashed(Exception):  # noqa: N818 - the fault's name
    """The worker process died during the invocation (the host sees a failed invocation)."""


@dataclass
class InboxQueue:
    """A queue and its poison queue, with the host's delivery rules (see the module docstring)."""

    clock: Callable[[], datetime]
    name: str = "reynolds-inbox"
    max_dequeue_count: int = 10
    visibility_timeout: float = 60.0
    messages: list[QueuedMessage] = field(default_factory=list)
    #: Every body ever written to ``<name>-poison`` (by the host's move or by the function's poison output).
    poison: list[str] = field(default_factory=list)
    #: The subset moved by the host itself (``CopyMessageToPoisonQueueAsync``: the body only, no reason).
    host_poisoned: list[str] = field(default_factory=list)
    processed: int = 0
    failures: int = 0
    #: Invocations that never ran because the Begin rule poisoned the message first.
    poisoned_unseen: int = 0
    crash: Callable[[QueuedMessage], bool] | None = None
    lost: Callable[[QueuedMessage], bool] | None = None
    refuse_write: Callable[[str, str], bool] | None = None
    _ids: Any = field(default_factory=itertools.count)

    @property
    def poison_name(self) -> str:
        return f"{self.name}-poison"

    def out(self) -> QueueOut:
        """An output binding writing to this queue (call ``commit`` with it when the function returned)."""
        return QueueOut()

    def put(self, body: str) -> None:
        """Write one message (visible now)."""
        now = self.clock()
        self.messages.append(QueuedMessage(f"m{next(self._ids)}", body, now, inserted_at=now))

    def commit(self, out: QueueOut) -> None:
        """What the host does with an output binding after the function returned."""
        if out.value is not None:
            self.put(out.value)

    def __len__(self) -> int:
        return len(self.messages)

    def _refused(self, queue: str, body: str | None) -> bool:
        return body is not None and self.refuse_write is not None and self.refuse_write(queue, body)

    def _to_poison(self, message: QueuedMessage) -> None:
        self.messages.remove(message)
        self.poison.append(message.body)
        self.host_poisoned.append(message.body)

    async def drain(self, handler: Callable[..., Awaitable[None]], *, max_deliveries: int = 100_000,
                    advance: Callable[[float], None] | None = None, output: str = "requeue",
                    output_queue: InboxQueue | None = None) -> int:
        """Deliver messages until the queue is empty (moving the clock to the next visible message through
        ``advance``); ``handler(msg=, <output>=, poison=)`` is the trigger, ``output`` the name of its queue
        output, written to ``output_queue`` (this queue when None). Returns invocations made."""
        deliveries = 0
        target = output_queue if output_queue is not None else self
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
            if message.dequeue_count > self.max_dequeue_count:  # BeginProcessingMessageAsync
                self.poisoned_unseen += 1
                self._to_poison(message)
                continue
            deliveries += 1
            requeue, poison = QueueOut(), QueueOut()
            if self.lost is not None and self.lost(message):  # the host died: nothing completes
                message.visible_at = self.clock() + timedelta(seconds=self.visibility_timeout)
                self.failures += 1
                continue
            try:
                if self.crash is not None and self.crash(message):
                    raise WorkerCrashed(f"worker killed on dequeue {message.dequeue_count}")
                await handler(msg=trigger_message(message), **{output: requeue}, poison=poison)
                if self._refused(target.name, requeue.value) or self._refused(self.poison_name, poison.value):
                    raise OSError("the host could not write an output binding")
            except Exception:  # CompleteProcessingMessageAsync with a failed result
                self.failures += 1
                if message.dequeue_count >= self.max_dequeue_count:
                    self._to_poison(message)
                else:
                    message.visible_at = self.clock() + timedelta(seconds=self.visibility_timeout)
                continue
            self.messages.remove(message)
            self.processed += 1
            target.commit(requeue)
            if poison.value is not None:
                self.poison.append(poison.value)
        return deliveries
