"""A fake orchestration context for unit tests of the pure engine generators (no SDK, no replay).

``FakeOrchestrationContext`` satisfies ``orchestrators.context.OrchestrationContext``: every API returns a
``FakeTask`` and is recorded in ``calls``; the clock only moves when a test (or a fired timer) moves it;
``new_uuid`` is deterministic. ``drive(generator, resolve)`` plays the SDK's part: it resolves each yielded
task with ``resolve(task)`` (raise to fail it, return ``PENDING`` to leave it open), throws failures back
into the generator, and returns the generator's return value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

PENDING: Any = object()  # returned by a resolver: "this task has not completed"

_UUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")


@dataclass(eq=False)
class FakeTask:
    """A task handed out by the fake context; ``kind`` is activity | sub | timer | event | all | any."""

    kind: str
    name: str | None = None
    input: Any = None
    fire_at: datetime | None = None
    instance_id: str | None = None
    children: list[FakeTask] = field(default_factory=list)
    result: Any = None
    is_completed: bool = False
    is_faulted: bool = False
    is_cancelled: bool = False

    def cancel(self) -> None:
        if self.is_completed:
            raise ValueError("Cannot cancel a completed task.")
        self.is_cancelled = True

    def _complete(self, value: Any, faulted: bool = False) -> None:
        self.result, self.is_completed, self.is_faulted = value, True, faulted


class FakeOrchestrationContext:
    """Records every call; ``now`` is the controllable clock (UTC)."""

    def __init__(
        self,
        input: Any = None,  # noqa: A002 - mirrors the SDK's wording
        instance_id: str = "fake-instance",
        now: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    ) -> None:
        self._input = input
        self._instance_id = instance_id
        self.now = now
        self.replaying = False
        self.custom_status: Any = None
        self.custom_statuses: list[Any] = []
        self.calls: list[FakeTask] = []
        self.continued_as: list[Any] = []
        self._uuid_counter = 0

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def current_utc_datetime(self) -> datetime:
        return self.now

    @property
    def is_replaying(self) -> bool:
        return self.replaying

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def get_input(self) -> Any:
        return self._input

    def call_activity(self, name: str, input_: Any = None) -> FakeTask:
        return self._record(FakeTask("activity", name=name, input=input_))

    def call_sub_orchestrator(self, name: str, input_: Any = None, instance_id: str | None = None) -> FakeTask:
        return self._record(FakeTask("sub", name=name, input=input_, instance_id=instance_id))

    def task_all(self, activities: list[Any]) -> FakeTask:
        return FakeTask("all", children=list(activities))

    def task_any(self, activities: list[Any]) -> FakeTask:
        return FakeTask("any", children=list(activities))

    def create_timer(self, fire_at: datetime) -> FakeTask:
        return self._record(FakeTask("timer", fire_at=fire_at))

    def wait_for_external_event(self, name: str) -> FakeTask:
        return self._record(FakeTask("event", name=name))

    def set_custom_status(self, status: Any) -> None:
        self.custom_status = status
        self.custom_statuses.append(status)

    def new_uuid(self) -> str:
        name = f"{self._instance_id}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    def continue_as_new(self, input_: Any) -> None:
        self.continued_as.append(input_)

    def activity_calls(self) -> list[tuple[str | None, Any]]:
        return [(t.name, t.input) for t in self.calls if t.kind == "activity"]

    def _record(self, task: FakeTask) -> FakeTask:
        self.calls.append(task)
        return task


def resolver(
    activities: Mapping[str, Callable[[Any], Any]] = {},  # noqa: B006 - read-only default
    events: Mapping[str, Any] | None = None,
    sub_orchestrators: Mapping[str, Callable[[Any], Any]] | None = None,
    fire_timers: bool = True,
) -> Callable[[FakeTask], Any]:
    """Build a ``resolve`` for ``drive``: activities and sub-orchestrators by name (missing name raises),
    external events from ``events`` (absent: ``PENDING``), timers fire unless ``fire_timers`` is false."""

    def resolve(task: FakeTask) -> Any:
        if task.kind == "activity":
            name = task.name or ""
            if name not in activities:
                raise AssertionError(f"unexpected activity {name!r}")
            return activities[name](task.input)
        if task.kind == "sub":
            subs = sub_orchestrators or {}
            name = task.name or ""
            if name not in subs:
                raise AssertionError(f"unexpected sub-orchestration {name!r}")
            return subs[name](task.input)
        if task.kind == "event":
            return (events or {}).get(task.name or "", PENDING)
        if task.kind == "timer":
            return None if fire_timers else PENDING
        raise AssertionError(f"cannot resolve {task.kind}")

    return resolve


class StalledError(RuntimeError):
    """The generator waits on a task that the resolver leaves pending."""


def drive(
    generator: Generator[Any, Any, Any],
    resolve: Callable[[FakeTask], Any],
    context: FakeOrchestrationContext | None = None,
) -> Any:
    """Run ``generator`` to its return value, resolving every yielded task with ``resolve``.

    Like the SDK: a failed atomic task raises into the generator, ``task_all`` fails with its first failed
    child, ``task_any`` returns the first child that completes (in list order; a failed child is returned
    with its exception as ``result``). With ``context``, a fired timer moves its clock to ``fire_at``.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            task = generator.throw(error) if error is not None else generator.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        _settle(task, resolve, context)
        if not task.is_completed:
            raise StalledError(f"orchestration waits forever on {task.kind} {task.name or ''}".strip())
        if task.is_faulted:
            error = task.result
        else:
            value = task.result


def _settle(task: FakeTask, resolve: Callable[[FakeTask], Any], context: FakeOrchestrationContext | None) -> None:
    if task.is_completed:
        return
    if task.kind == "all":
        for child in task.children:
            _settle(child, resolve, context)
            if child.is_completed and child.is_faulted:
                task._complete(child.result, faulted=True)
                return
        if all(child.is_completed for child in task.children):
            task._complete([child.result for child in task.children])
        return
    if task.kind == "any":
        for child in task.children:
            _settle(child, resolve, context)
            if child.is_completed:
                task._complete(child)
                return
        return
    if task.kind == "timer" and task.is_cancelled:
        return  # a cancelled timer never completes a wait (it could only fire days later)
    try:
        result = resolve(task)
    except Exception as exc:
        task._complete(exc, faulted=True)
        return
    if result is PENDING:
        return
    if task.kind == "timer" and context is not None and task.fire_at is not None:
        context.now = max(context.now, task.fire_at)
    task._complete(result)


__all__ = ["PENDING", "FakeOrchestrationContext", "FakeTask", "StalledError", "drive", "resolver"]
