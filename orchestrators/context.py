"""The slice of ``DurableOrchestrationContext`` that Reynolds' orchestration engines are written against.

Registered orchestrators are three-line shims (``return (yield from run_x(context))``); the ``run_x``
generators take this Protocol, so they run unchanged under the real SDK replay and under a fake context in
unit tests. Everything here is deterministic on replay: no I/O, no wall clock, no random, no env reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class OrchestrationContext(Protocol):
    """What the engines may touch of the Durable orchestration context."""

    @property
    def instance_id(self) -> str: ...

    @property
    def current_utc_datetime(self) -> datetime: ...

    @property
    def is_replaying(self) -> bool: ...

    def get_input(self) -> Any: ...

    def call_activity(self, name: str, input_: Any = None) -> Any: ...

    def call_sub_orchestrator(self, name: str, input_: Any = None, instance_id: str | None = None) -> Any: ...

    def task_all(self, activities: list[Any]) -> Any: ...

    def task_any(self, activities: list[Any]) -> Any: ...

    def create_timer(self, fire_at: datetime) -> Any: ...

    def wait_for_external_event(self, name: str) -> Any: ...

    def set_custom_status(self, status: Any) -> None: ...

    def new_uuid(self) -> str: ...

    def continue_as_new(self, input_: Any) -> None: ...
