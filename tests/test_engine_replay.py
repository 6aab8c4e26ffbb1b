"""The orchestrate_task engine through the REAL azure-functions-durable replay (tools/harness/durable.py).

Every episode re-runs the generators against the SDK's own context from the recorded history, so these tests
also prove the engine deterministic: the harness fails on any replay that produces different actions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from orchestrators.engine import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    ORCHESTRATE_TASK,
    PLAN_TASK,
    REPORT_STATUS,
    RUN_SUBTASK,
    SUBTASK_ORCHESTRATOR,
    run_orchestrate_task,
    run_subtask,
)
from shared.names import NOTIFY_PARENT, subtask_instance_id
from shared.work.policy import RetryPolicy
from tools.harness.app_index import functions, memory_services
from tools.harness.durable import ExternalEvent, FakeDurableClient, OrchestrationRun, ReplayHarness
from tools.harness.replay_check import assert_replays_alike

LATENCY = 10.0


@pytest.fixture(autouse=True)
def _services() -> Iterator[Any]:
    """The lifecycle activities save the task in the store: an empty memory store per test."""
    with memory_services() as services:
        yield services

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATE_TASK)
def orchestrate_task(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    return (yield from run_orchestrate_task(context))


@bp.orchestration_trigger(context_name="context", orchestration=SUBTASK_ORCHESTRATOR)
def run_subtask_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    return (yield from run_subtask(context))


def plan_of(n: int, writes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "subtasks": [
            {"id": f"s{i:02d}", "title": f"step {i}", "specialist": "platform", "writes": f"s{i:02d}" in writes}
            for i in range(n)
        ],
        "planner": "offline",
    }


def request(max_concurrency: int = 8) -> dict[str, Any]:
    return {
        "task": {"type": "rollout", "description": "roll out the new runner image"},
        "strategy": {"approach": "parallel_optimized", "max_concurrency": max_concurrency},
        "event_id": "delivery-1",
        "chain_id": "chain-1",
        "tracking_issue": "octo/repo#7",
    }


def latency(name: str, _input: Any) -> float:
    return LATENCY if name == RUN_SUBTASK else 0.0


def harness(
    plan: dict[str, Any],
    run: Callable[[Any], Any] = lambda _inp: {"ok": True, "summary": "done"},
    orchestrators: dict[str, Any] | None = None,
    activities: dict[str, Any] | None = None,
) -> tuple[ReplayHarness, list[dict[str, Any]]]:
    """The registered app (orchestrators and the engine's lifecycle activities, which reach subtask
    orchestrations through the harness's durable client), with planning, attempts and reports replaced."""
    reports: list[dict[str, Any]] = []

    def report(payload: dict[str, Any]) -> dict[str, Any]:
        reports.append(payload)
        return {"comment_id": 1, "created": payload["sequence"] == 1}

    h = ReplayHarness.from_app(
        functions(),
        orchestrators=orchestrators or {},
        activities={PLAN_TASK: lambda _inp: plan, RUN_SUBTASK: run, REPORT_STATUS: report, **(activities or {})},
        latency=latency,
    )
    return h, reports


def children(h: ReplayHarness, parent: str) -> list[OrchestrationRun]:
    """The subtask orchestrations a parent started (top-level instances ``<parent>:<subtask id>``)."""
    return [
        i.snapshot()
        for i in h.instances.values()
        if i.name == SUBTASK_ORCHESTRATOR and i.instance_id.startswith(f"{parent}:")
    ]


def child(h: ReplayHarness, instance_id: str) -> OrchestrationRun:
    """A subtask orchestration by ``<parent>:<subtask id>``: its instance id carries the parent's run too."""
    parent, _, sid = instance_id.rpartition(":")
    run = (h.instances[parent].custom_status or {}).get("run", "")
    return h.instances[subtask_instance_id(parent, sid, run)].snapshot()


def most_running(h: ReplayHarness, parent: str) -> int:
    """Most subtask orchestrations of ``parent`` running at the same simulated moment."""
    edges: list[tuple[Any, int]] = []
    for i in h.instances.values():
        if i.name == SUBTASK_ORCHESTRATOR and i.instance_id.startswith(f"{parent}:"):
            edges += [(i.started_at, 1), (i.finished_at or i.now, -1)]
    running = best = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        best = max(best, running)
    return best


def durations(run: OrchestrationRun) -> list[float]:
    return [(fire - created).total_seconds() for created, fire in run.timers]


def test_sixteen_subtasks_window_of_eight() -> None:
    h, reports = harness(plan_of(16))
    run = h.run(ORCHESTRATE_TASK, request(8), instance_id="inst-16")

    assert run.runtime_status == "Completed", run.error
    assert run.output["succeeded"] == 16
    assert run.output["failed"] == 0
    assert run.output["max_running"] == 8
    assert most_running(h, "inst-16") == 8  # measured on the harness, not the engine's own count
    assert run.elapsed_seconds == pytest.approx(2 * LATENCY)
    run_token = run.custom_status["run"]
    assert {s.instance_id for s in children(h, "inst-16")} == {f"inst-16:{run_token}:s{i:02d}" for i in range(16)}
    assert all(s.runtime_status == "Completed" for s in children(h, "inst-16"))
    assert [r["phase"] for r in reports] == ["started", "succeeded"]
    assert run.custom_status["done"] == 16


def test_sliding_window_refills_without_waiting_for_the_batch() -> None:
    # s00 is slow; with batch-and-wait the others would idle behind it. With a sliding window of 2 the other
    # nine run through the second slot while s00 is still running.
    def slow_first(name: str, inp: Any) -> float:
        if name != RUN_SUBTASK:
            return 0.0
        return 100.0 if inp["subtask"]["id"] == "s00" else LATENCY

    h, _ = harness(plan_of(10))
    h.latency = slow_first
    run = h.run(ORCHESTRATE_TASK, request(2), instance_id="inst-slide")
    assert run.runtime_status == "Completed", run.error
    assert run.output["succeeded"] == 10
    assert run.output["max_running"] == 2
    assert run.elapsed_seconds == pytest.approx(100.0)  # 9 × 10 s fit beside the 100 s one


def test_retry_after_becomes_a_durable_timer() -> None:
    calls: dict[str, int] = {}

    def run_activity(inp: dict[str, Any]) -> dict[str, Any]:
        sid = inp["subtask"]["id"]
        calls[sid] = calls.get(sid, 0) + 1
        if sid == "s00" and inp["attempt"] == 1:
            return {"ok": False, "retryable": True, "retry_after": 30, "error": "HTTP 429: secondary rate limit"}
        return {"ok": True, "summary": "done"}

    h, _ = harness(plan_of(2), run_activity)
    run = h.run(ORCHESTRATE_TASK, request(), instance_id="inst-429")

    assert run.runtime_status == "Completed", run.error
    assert run.output["succeeded"] == 2
    limited = child(h, "inst-429:s00")
    assert any(30 <= d <= 31 for d in durations(limited)), durations(limited)
    assert limited.elapsed_seconds >= 30 + 2 * LATENCY
    assert calls == {"s00": 2, "s01": 1}
    assert run.output["outcomes"][0]["attempts"] == 2


def test_raised_activity_error_is_retried_with_backoff() -> None:
    def run_activity(inp: dict[str, Any]) -> dict[str, Any]:
        if inp["attempt"] < 3:
            raise ConnectionError("connection reset by peer")
        return {"ok": True, "summary": "third time lucky"}

    h, _ = harness(plan_of(1), run_activity)
    run = h.run(ORCHESTRATE_TASK, request(), instance_id="inst-raise")
    assert run.runtime_status == "Completed", run.error
    outcome = run.output["outcomes"][0]
    assert outcome["status"] == "succeeded"
    assert outcome["attempts"] == 3
    backoffs = [d for d in durations(child(h, "inst-raise:s00")) if d < RetryPolicy().attempt_timeout_seconds]
    assert len(backoffs) == 2
    assert 1 <= backoffs[0] <= 2
    assert 2 <= backoffs[1] <= 4


def test_one_permanent_failure_completes_with_the_others() -> None:
    def run_activity(inp: dict[str, Any]) -> dict[str, Any]:
        if inp["subtask"]["id"] == "s05":
            return {"ok": False, "retryable": False, "error": "repository archived"}
        return {"ok": True, "summary": "done"}

    h, reports = harness(plan_of(16), run_activity)
    run = h.run(ORCHESTRATE_TASK, request(8), instance_id="inst-perm")

    assert run.runtime_status == "Completed", run.error
    assert (run.output["succeeded"], run.output["failed"], run.output["skipped"]) == (15, 1, 0)
    failed = [o for o in run.output["outcomes"] if o["status"] == "failed"]
    assert failed == [
        {
            "id": "s05",
            "specialist": "platform",
            "status": "failed",
            "attempts": 1,
            "summary": "",
            "error": "repository archived",
        }
    ]
    final = reports[-1]
    assert final["phase"] == "partial"
    assert final["states"]["s05"] == "failed"
    assert final["labels"] == ["reynolds:failed"]
    assert len(reports) <= 3


def test_all_failing_fails_the_orchestration() -> None:
    h, reports = harness(plan_of(2), lambda _inp: {"ok": False, "retryable": False, "error": "nope"})
    run = h.run(ORCHESTRATE_TASK, request(), instance_id="inst-allfail")
    assert run.runtime_status == "Failed"
    assert "no subtask succeeded" in (run.error or "")
    assert reports[-1]["phase"] == "failed"


def test_approval_that_never_comes_times_out_cleanly() -> None:
    h, reports = harness(plan_of(2, writes=("s01",)))
    run = h.run(ORCHESTRATE_TASK, request(), instance_id="inst-noapprove")

    assert run.runtime_status == "Completed", run.error
    by_id = {o["id"]: o for o in run.output["outcomes"]}
    assert by_id["s00"]["status"] == "succeeded"
    assert by_id["s01"]["status"] == "failed"
    assert by_id["s01"]["error"] == "approval timed out"
    gated = child(h, "inst-noapprove:s01")
    assert gated.runtime_status == "Completed"
    assert durations(gated) == [24 * 3600.0]
    assert run.elapsed_seconds == pytest.approx(24 * 3600.0)
    assert [r["phase"] for r in reports] == ["started", "needs_approval", "partial"]
    assert reports[1]["labels"] == ["reynolds:needs-approval", "reynolds:running"]


def test_approval_delivered_lets_the_subtask_run() -> None:
    # The subtask alone (no parent instance): the task comes in its input, the outcome is not delivered
    # (NOTIFY_PARENT finds no parent) and the subtask still completes.
    h, _ = harness(plan_of(1))
    subtask_input = {
        "parent_instance_id": "inst-approve",
        "task": {"type": "rollout", "description": "deploy"},
        "subtask": {"id": "deploy", "title": "deploy", "specialist": "devops", "writes": True},
        "policy": RetryPolicy().model_dump(mode="json"),
    }
    run = h.run(
        SUBTASK_ORCHESTRATOR,
        subtask_input,
        instance_id="inst-approve:deploy",
        events=[ExternalEvent(90, APPROVAL_EVENT, {"approved": True, "by": "octocat"})],
    )
    assert run.runtime_status == "Completed", run.error
    assert run.output["status"] == "succeeded"
    assert run.output["attempts"] == 1
    assert [name for name, _ in run.activity_calls] == [RUN_SUBTASK, NOTIFY_PARENT]
    assert run.elapsed_seconds == pytest.approx(90 + LATENCY)
    assert run.custom_status == {"state": "succeeded", "attempt": 1}


def test_cancel_event_skips_remaining_subtasks() -> None:
    h, reports = harness(plan_of(4, writes=("s00", "s01", "s02", "s03")))
    run = h.run(
        ORCHESTRATE_TASK,
        request(2),
        instance_id="inst-cancel",
        events=[ExternalEvent(60, CANCEL_EVENT, {"by": "octocat"})],
    )
    assert run.runtime_status == "Completed", run.error
    assert run.output["cancelled"] is True
    assert {o["status"] for o in run.output["outcomes"]} == {"skipped"}
    assert run.elapsed_seconds == pytest.approx(60)
    assert reports[-1]["phase"] == "cancelled"
    started = children(h, "inst-cancel")
    assert len(started) == 2  # s02 and s03 never started
    # Told to stop through CANCEL_SUBTASKS, the gated subtasks end at once too: nothing is left running.
    assert [(s.runtime_status, s.finished_at_seconds, s.output["status"]) for s in started] == [
        ("Completed", 60.0, "skipped")
    ] * 2


def test_plain_generators_work_as_well() -> None:
    def parent(context: Any) -> Generator[Any, Any, dict[str, Any]]:
        return (yield from run_orchestrate_task(context, RetryPolicy(max_attempts=2)))

    h, _ = harness(
        plan_of(3),
        lambda _inp: {"ok": False, "retryable": True, "error": "flaky"},
        orchestrators={ORCHESTRATE_TASK: parent, SUBTASK_ORCHESTRATOR: run_subtask},
    )
    run = h.run(ORCHESTRATE_TASK, request(), instance_id="inst-plain")
    assert run.runtime_status == "Failed"
    assert all(s.output["attempts"] == 2 for s in children(h, "inst-plain"))
    assert run.elapsed_seconds < timedelta(minutes=1).total_seconds()


# -- on the host-faithful harness: window, DAG, timeouts, cancel, fresh-process replay ------------------------------


def test_window_stays_full_with_distinct_latencies_and_continues_as_new() -> None:
    from tools.bench_fanout import ideal_window, subtask_latency

    lat = {f"s{i:02d}": subtask_latency("distinct", i, 40) for i in range(40)}
    h, _ = harness(plan_of(40))
    h.latency = lambda name, inp: lat[inp["subtask"]["id"]] if name == RUN_SUBTASK else 0.0
    run = h.run(ORCHESTRATE_TASK, request(8), instance_id="inst-40")
    assert run.runtime_status == "Completed", run.error
    assert run.output["succeeded"] == 40
    assert most_running(h, "inst-40") == 8
    assert run.finished_at_seconds == pytest.approx(ideal_window(list(lat.values()), 8))
    assert run.output["executions"] > 2  # history per execution stays bounded
    assert run.open_tasks == 0


def test_dag_levels_run_as_soon_as_their_dependencies_succeed() -> None:
    # a0..a5 independent; b0..b2 each need two of them; c needs every b.
    plan = {
        "subtasks": [{"id": f"a{i}", "title": "a", "specialist": "platform"} for i in range(6)]
        + [{"id": f"b{i}", "title": "b", "specialist": "platform", "dependencies": [f"a{2 * i}", f"a{2 * i + 1}"]}
           for i in range(3)]
        + [{"id": "c", "title": "c", "specialist": "platform", "dependencies": ["b0", "b1", "b2"]}],
        "planner": "offline",
    }
    h, _ = harness(plan)
    run = h.run(ORCHESTRATE_TASK, request(4), instance_id="inst-dag")
    assert run.runtime_status == "Completed", run.error
    assert run.output["succeeded"] == 10
    started = {i.instance_id.split(":")[-1]: (i.started_at - h.start).total_seconds() for i in h.instances.values()
               if i.name == SUBTASK_ORCHESTRATOR}
    assert started["b0"] == pytest.approx(LATENCY)  # a0 and a1 done at 10 s
    assert started["c"] == pytest.approx(max(started[f"b{i}"] for i in range(3)) + LATENCY)
    assert most_running(h, "inst-dag") == 4


def test_a_hung_attempt_does_not_hold_the_parent() -> None:
    def parent(context: Any) -> Generator[Any, Any, dict[str, Any]]:
        return (yield from run_orchestrate_task(context, RetryPolicy(max_attempts=1, attempt_timeout_seconds=60)))

    h, _ = harness(plan_of(2), orchestrators={ORCHESTRATE_TASK: parent})
    h.latency = lambda name, inp: (3600.0 if inp["subtask"]["id"] == "s00" else LATENCY) if name == RUN_SUBTASK else 0
    run = h.run(ORCHESTRATE_TASK, request(), instance_id="inst-hung")
    assert run.runtime_status == "Completed", run.error
    assert run.output["outcomes"][0]["error"] == "attempt timed out after 60 s"
    assert run.finished_at_seconds == pytest.approx(60)  # not 3,600 s: the parent holds no task of the subtask
    hung = child(h, "inst-hung:s00")
    assert hung.finished_at_seconds == pytest.approx(3600)  # DTFx: the subtask itself waits for its activity


def test_cancel_on_forty_gated_subtasks_ends_everything_within_two_minutes() -> None:
    h, reports = harness(plan_of(40, writes=tuple(f"s{i:02d}" for i in range(40))))
    client = FakeDurableClient(h)

    async def scenario() -> None:
        await client.start_new(ORCHESTRATE_TASK, "inst-stop", request(8))
        await client.advance(90)  # approvals pending, nobody answers
        await client.raise_event("inst-stop", CANCEL_EVENT, {"by": "octocat"})  # what `/reynolds cancel` raises

    asyncio.run(scenario())
    parent = client.run_of("inst-stop")
    assert parent.runtime_status == "Completed"
    assert parent.output["cancelled"] is True
    assert parent.finished_at_seconds is not None
    assert parent.finished_at_seconds <= 90 + 120  # two simulated minutes after the cancel at most
    started = children(h, "inst-stop")
    assert len(started) == 8  # the window; 32 never started
    assert {s.runtime_status for s in started} == {"Completed"}
    assert all(s.output["status"] == "skipped" and s.output["error"] == "cancelled by octocat" for s in started)
    assert reports[-1]["phase"] == "cancelled"


def test_engine_replays_alike_in_a_fresh_process() -> None:
    h, _ = harness(plan_of(6, writes=("s05",)))
    run = h.run(ORCHESTRATE_TASK, request(3), instance_id="inst-fresh")
    assert run.runtime_status == "Completed", run.error
    keys = assert_replays_alike("orchestrators.tasks:orchestrate_task_orchestrator", run)
    assert keys  # the final execution replays into the same actions under another hash seed
    sub = child(h, "inst-fresh:s00")
    assert assert_replays_alike("orchestrators.tasks:run_subtask_orchestrator", sub)
