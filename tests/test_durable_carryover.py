"""Two host rules the replay harness models, each pinned with a minimal orchestrator an older harness fails,
and the orchestrate_task engine proven under both (sources in ``tools.harness.host_rules``).

* **Carryover**: DTFx on Azure Storage hands every external event it processes after the ContinueAsNew call to
  the next execution (``EventBehaviourForContinueAsNew.Carryover``).
* **Per-worker activity limit**: host.json ``maxConcurrentActivityFunctions`` activities at once per worker.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest

from orchestrators.engine import (
    CANCEL_EVENT,
    EVENTS_PER_EXECUTION,
    ORCHESTRATE_TASK,
    PLAN_TASK,
    REPORT_STATUS,
    RUN_SUBTASK,
    SUBTASK_ORCHESTRATOR,
)
from tools.harness.app_index import functions, memory_services
from tools.harness.durable import (
    ExternalEvent,
    FakeDurableClient,
    ReplayHarness,
    max_concurrent_activities_from_host_json,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _services() -> Iterator[Any]:
    with memory_services() as services:
        yield services


def two_executions(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Execution 1 waits for ``a`` and continues as new; execution 2 waits for ``b``."""
    if context.get_input() == "second":
        value = yield context.wait_for_external_event("b")
        return f"b={value}"
    yield context.wait_for_external_event("a")
    context.continue_as_new("second")
    return None


@pytest.mark.parametrize("carryover", [True, False])
def test_an_event_processed_after_continue_as_new_reaches_the_next_execution(carryover: bool) -> None:
    # ``a`` and ``b`` arrive in one batch, ``a`` first: the walk reaches ContinueAsNew on ``a``; DTFx then
    # processes ``b`` with HasContinueAsNew set and carries it over (TaskOrchestrationExecutor.ProcessEvent,
    # EventRaised case -> TaskOrchestrationContext.AddEventToNextIteration).
    h = ReplayHarness({"two": two_executions}, {}, carryover=carryover)
    run = h.run("two", None, "carry-1", events=[ExternalEvent(5, "a", 1), ExternalEvent(5, "b", 2)])
    if carryover:
        assert run.runtime_status == "Completed"
        assert run.output == "b=2"
    else:  # EventBehaviourForContinueAsNew.Ignore (and the harness before this rule): b is gone
        assert run.runtime_status == "Running"
        assert run.waiting_for[-1] == "b"


def test_an_event_processed_before_continue_as_new_is_not_carried() -> None:
    # ``b`` first, then ``a``: b is processed while execution 1 still runs (it buffers it and is discarded with
    # it); only events after the ContinueAsNew call move over.
    h = ReplayHarness({"two": two_executions}, {})
    run = h.run("two", None, "carry-2", events=[ExternalEvent(5, "b", 2), ExternalEvent(5, "a", 1)])
    assert run.runtime_status == "Running"


def _slow(x: int) -> int:
    return x


def fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.task_all([context.call_activity("slow", i) for i in range(25)]))


def test_host_json_limits_activities_per_worker() -> None:
    limit = max_concurrent_activities_from_host_json(str(ROOT / "host.json"))
    assert limit == 10
    limited = ReplayHarness({"f": fan_out}, {"slow": _slow}, latency=lambda _n, _i: 10.0,
                            max_concurrent_activities=limit)
    run = limited.run("f")
    assert run.runtime_status == "Completed"
    assert run.elapsed_seconds == pytest.approx(30.0)  # 25 activities, 10 at a time: three rounds
    assert limited.max_activities_at_once == 10
    unlimited = ReplayHarness({"f": fan_out}, {"slow": _slow}, latency=lambda _n, _i: 10.0)
    assert unlimited.run("f").elapsed_seconds == pytest.approx(10.0)  # the harness before this rule


# ------------------------------------------------------------------------------------------- the engine


def _engine(n: int, latency: Any, **kw: Any) -> ReplayHarness:
    plan = {"subtasks": [{"id": f"s{i:02d}", "title": f"step {i}", "specialist": "platform"} for i in range(n)],
            "planner": "offline"}
    return ReplayHarness.from_app(
        functions(),
        activities={PLAN_TASK: lambda _inp: plan, RUN_SUBTASK: lambda _inp: {"ok": True, "summary": "done"},
                    REPORT_STATUS: lambda _inp: {"comment_id": 1}},
        latency=latency,
        **kw,
    )


class CancelAfter(FakeDurableClient):
    """Raises ``cancel`` to the parent right after the outcome that makes it continue as new: same moment,
    later in the batch, so DTFx processes it after the ContinueAsNew call."""

    def __init__(self, harness: ReplayHarness, after: str) -> None:
        super().__init__(harness)
        self.after = after

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None,
                          task_hub_name: str | None = None, connection_name: str | None = None) -> None:
        await super().raise_event(instance_id, event_name, event_data, task_hub_name, connection_name)
        if event_name.endswith(f"_{self.after}"):
            await super().raise_event(instance_id, CANCEL_EVENT, {"by": "maria"})


@pytest.mark.parametrize("carryover", [True, False])
def test_a_cancel_in_the_carried_batch_is_honoured(carryover: bool) -> None:
    # Distinct latencies: one outcome per episode; the 4th makes the parent continue as new.
    def latency(name: str, payload: Any) -> float:
        return 10.0 + int(payload["subtask"]["id"][1:]) if name == RUN_SUBTASK else 0.0

    h = _engine(12, latency, carryover=carryover)
    fourth = f"s{EVENTS_PER_EXECUTION - 1:02d}"
    h.client = CancelAfter(h, fourth)
    request = {"task": {"type": "rollout", "description": "roll out"},
               "strategy": {"approach": "parallel_optimized", "max_concurrency": 4},
               "event_id": "e", "chain_id": "c", "tracking_issue": "octo/repo#7"}
    run = h.run(ORCHESTRATE_TASK, request, instance_id="carry-engine")
    assert run.runtime_status == "Completed", run.error
    if carryover:
        assert run.output["cancelled"] is True
        assert run.output["succeeded"] < 12
        assert run.output["executions"] == 2
    else:  # the cancel was lost with the first execution's history: every subtask ran
        assert run.output["cancelled"] is False
        assert run.output["succeeded"] == 12


@pytest.mark.parametrize("width", [8, 32])
def test_the_engine_keeps_the_worker_busy_under_the_activity_limit(width: int) -> None:
    limit = max_concurrent_activities_from_host_json(str(ROOT / "host.json"))
    assert limit is not None
    n = 40
    h = _engine(n, lambda name, _p: 10.0 if name == RUN_SUBTASK else 0.0, max_concurrent_activities=limit)
    request = {"task": {"type": "rollout", "description": "roll out"},
               "strategy": {"approach": "parallel_optimized", "max_concurrency": width},
               "event_id": "e", "chain_id": "c", "tracking_issue": "octo/repo#7"}
    run = h.run(ORCHESTRATE_TASK, request, instance_id=f"limit-{width}")
    assert run.runtime_status == "Completed", run.error
    assert run.output["succeeded"] == n
    assert h.max_activities_at_once <= limit
    lanes = min(width, limit)
    ideal = math.ceil(n / lanes) * 10.0
    # One worker: never more than ``limit`` at once, and the engine keeps the lanes it may use busy.
    assert run.elapsed_seconds <= ideal * 1.15
    assert all(i.name != SUBTASK_ORCHESTRATOR or i.status == "Completed" for i in h.instances.values())
