"""Unit tests of the orchestrate_task engine and its pure policy, on the fake context (no SDK)."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrators.engine import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    MARKER_SECONDS,
    PLAN_TASK,
    REPORT_STATUS,
    RUN_SUBTASK,
    EngineCarry,
    EngineFailed,
    approval_granted,
    run_orchestrate_task,
    run_subtask,
    subtask_instance_id,
)
from shared.names import CANCEL_SUBTASKS, LOAD_TASK, NOTIFY_PARENT, START_SUBTASKS, SUBTASK_DONE_EVENT_PREFIX
from shared.work.policy import (
    MAX_TIMER_SECONDS,
    RetryPolicy,
    backoff_seconds,
    blocked_by_failure,
    next_ready,
    retry_delay_seconds,
    truncate,
    validate_plan,
)
from shared.work.tasks import Plan, SubtaskState
from tests.harness.fake_context import PENDING, FakeOrchestrationContext, FakeTask, StalledError, drive

START = datetime(2026, 1, 1, tzinfo=UTC)
#: The run token of a parent started at START under id "inst" (``context.new_uuid`` is deterministic).
RUN = str(FakeOrchestrationContext(None, instance_id="inst", now=START).new_uuid()).replace("-", "")[:12]
OK = {"ok": True, "summary": "done"}


# ----------------------------------------------------------------------------------------------------- helpers


def make_plan(
    ids: Iterable[str], deps: dict[str, list[str]] | None = None, writes: Iterable[str] = ()
) -> dict[str, Any]:
    deps = deps or {}
    gated = set(writes)
    return {
        "subtasks": [
            {
                "id": sid,
                "title": f"do {sid}",
                "specialist": "devops",
                "dependencies": deps.get(sid, []),
                "writes": sid in gated,
            }
            for sid in ids
        ],
        "planner": "offline",
    }


def make_request(max_concurrency: int = 8, approach: str = "parallel_optimized") -> dict[str, Any]:
    return {
        "task": {"type": "incident", "description": "fix the pipeline"},
        "strategy": {"approach": approach, "max_concurrency": max_concurrency},
        "event_id": "evt-1",
        "chain_id": "chain-1",
        "tracking_issue": "octo/repo#1",
    }


def subtask_input(sid: str = "s1", writes: bool = False, **policy: Any) -> dict[str, Any]:
    return {
        "parent_instance_id": "parent",
        "subtask": {"id": sid, "title": "t", "specialist": "devops", "writes": writes},
        "policy": RetryPolicy(**policy).model_dump(mode="json"),
    }


def sid_of(event_name: str) -> str:
    """The subtask id in a ``subtask_done_<run>_<id>`` event name (the run is 12 hex digits)."""
    rest = event_name[len(SUBTASK_DONE_EVENT_PREFIX):]
    head, _, tail = rest.partition("_")
    return tail if len(head) == 12 and tail else rest


def observed(
    gen: Generator[Any, Any, Any], windows: list[list[str]], watches: set[int] | None = None
) -> Generator[Any, Any, Any]:
    """Proxy a generator, recording the subtasks in flight (their outcome waits) at every ``task_any`` that does
    not also wait for a START_SUBTASKS call, and (``watches``) the supervision timers: the live timers of a
    ``task_any`` that also waits for ``cancel``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            task = gen.throw(error) if error is not None else gen.send(value)
        except StopIteration as stop:
            return stop.value
        if watches is not None and task.kind == "any" and any(c.name == CANCEL_EVENT for c in task.children):
            watches.update(id(c) for c in task.children if c.kind == "timer" and not c.is_cancelled)
        if task.kind == "any" and not any(c.kind == "activity" for c in task.children):
            windows.append([f"inst:{sid_of(c.name or '')}" for c in task.children
                            if c.kind == "event" and (c.name or "").startswith(SUBTASK_DONE_EVENT_PREFIX)])
        try:
            value, error = (yield task), None
        except Exception as exc:
            value, error = None, exc


class World:
    """Resolves the parent's activities; START_SUBTASKS runs each subtask through ``run_subtask`` at once (its
    NOTIFY_PARENT makes the outcome the answer to the parent's ``subtask_done_<id>`` wait)."""

    def __init__(
        self,
        plan: dict[str, Any],
        run: Callable[[dict[str, Any]], Any] = lambda _inp: OK,
        approvals: dict[str, Any] | None = None,
        pending_subs: Iterable[str] = (),
        parent_events: dict[str, Any] | None = None,
        report: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.plan = plan
        self.run = run
        self.approvals = approvals or {}
        self.pending_subs = set(pending_subs)
        self.parent_events = parent_events or {}
        self.report = report
        self.reports: list[dict[str, Any]] = []
        self.children: dict[str, FakeOrchestrationContext] = {}
        self.run_inputs: list[dict[str, Any]] = []
        self.started: list[str] = []
        self.done: dict[str, Any] = {}
        self.cancel_requests: list[dict[str, Any]] = []
        #: Supervision timers (``observed``); they fire only when ``supervise`` says so.
        self.watches: set[int] = set()
        self.supervise = False

    def resolve(self, task: FakeTask) -> Any:
        if task.kind == "activity" and task.name == PLAN_TASK:
            return self.plan
        if task.kind == "activity" and task.name == REPORT_STATUS:
            self.reports.append(task.input)
            return self.report(task.input) if self.report else {"comment_id": 1}
        if task.kind == "activity" and task.name == START_SUBTASKS:
            for spec in task.input["children"]:
                sid = spec["input"]["subtask"]["id"]
                self.started.append(spec["instance_id"])
                if sid in self.pending_subs:
                    continue
                child = FakeOrchestrationContext(spec["input"], instance_id=spec["instance_id"], now=START)
                self.children[sid] = child
                drive(run_subtask(child), self.resolve_child(sid), child)
            collected = {sid: self.done[sid] for sid in task.input["collect"] if sid in self.done}
            return {"started": [c["instance_id"] for c in task.input["children"]], "outcomes": collected}
        if task.kind == "activity" and task.name == CANCEL_SUBTASKS:
            self.cancel_requests.append(task.input)
            return {"told": task.input["instance_ids"]}
        if task.kind == "event" and (task.name or "").startswith(SUBTASK_DONE_EVENT_PREFIX):
            return self.done.get(sid_of(task.name or ""), PENDING)
        if task.kind == "event":
            return self.parent_events.get(task.name or "", PENDING)
        if task.kind == "timer":
            # The supervision timer fires only when nothing else happens for ten minutes (never, unless asked).
            return PENDING if id(task) in self.watches and not self.supervise else None
        raise AssertionError(f"unexpected {task.kind} {task.name}")

    def resolve_child(self, sid: str) -> Callable[[FakeTask], Any]:
        def resolve(task: FakeTask) -> Any:
            if task.kind == "activity" and task.name == RUN_SUBTASK:
                self.run_inputs.append(task.input)
                return self.run(task.input)
            if task.kind == "activity" and task.name == LOAD_TASK:
                return make_request()["task"]
            if task.kind == "activity" and task.name == NOTIFY_PARENT:
                self.done[sid] = task.input["outcome"]
                return {"delivered": True}
            if task.kind == "event" and task.name == APPROVAL_EVENT:
                return self.approvals.get(sid, PENDING)
            if task.kind == "event":
                return PENDING
            if task.kind == "timer":
                return None
            raise AssertionError(f"unexpected {task.kind} {task.name}")

        return resolve


def run_parent(
    world: World, request: dict[str, Any] | None = None, **kw: Any
) -> tuple[dict[str, Any], FakeOrchestrationContext, list[list[str]]]:
    """Drive the parent through every execution (``continue_as_new`` hands the carry to the next one)."""
    payload: Any = request or make_request(**kw)
    windows: list[list[str]] = []
    while True:
        ctx = FakeOrchestrationContext(payload, instance_id="inst", now=START)
        output = drive(observed(run_orchestrate_task(ctx), windows, world.watches), world.resolve, ctx)
        if not ctx.continued_as:
            return output, ctx, windows
        assert output is None
        payload = json.loads(json.dumps(ctx.continued_as[-1]))


def real_timers(ctx: FakeOrchestrationContext) -> list[FakeTask]:
    """Timers other than the cancelled far-future markers that keep the host's walk moving."""
    return [t for t in ctx.calls if t.kind == "timer" and t.fire_at is not None
            and (t.fire_at - ctx.now).total_seconds() < MARKER_SECONDS - 3600]


def backoff_durations(ctx: FakeOrchestrationContext) -> list[float]:
    """Durations of the timers that fired (backoffs and approval deadlines), from the fake clock's steps."""
    fired = [t for t in ctx.calls if t.kind == "timer" and t.is_completed]
    durations: list[float] = []
    previous = START
    for timer in fired:
        assert timer.fire_at is not None
        durations.append((timer.fire_at - previous).total_seconds())
        previous = timer.fire_at
    return durations


# ------------------------------------------------------------------------------------------------------ policy


def test_backoff_is_deterministic_exponential_and_capped() -> None:
    delays = [backoff_seconds(n, 2, 300, seed="inst:s1") for n in range(1, 12)]
    assert delays == [backoff_seconds(n, 2, 300, seed="inst:s1") for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(300, 2 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling  # equal jitter never collapses to ~0
    assert max(delays) <= 300
    assert backoff_seconds(3, seed="a") != backoff_seconds(3, seed="b")


def test_full_jitter_stays_below_the_ceiling() -> None:
    values = [backoff_seconds(4, 2, 300, seed=f"s{i}", jitter="full") for i in range(50)]
    assert all(0 <= v < 16 for v in values)
    assert min(values) < 8  # full jitter uses the whole range


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_seconds(0, seed="x")


def test_retry_delay_honours_retry_after_and_timer_limit() -> None:
    policy = RetryPolicy()
    assert retry_delay_seconds(policy, 1, seed="x", retry_after=30) >= 30
    assert retry_delay_seconds(policy, 1, seed="x", retry_after=None) <= 2
    assert retry_delay_seconds(policy, 1, seed="x", retry_after=10 * 24 * 3600) == MAX_TIMER_SECONDS


def test_retry_policy_bounds() -> None:
    assert RetryPolicy().approval_timeout_seconds == 24 * 3600
    with pytest.raises(ValueError, match="less than or equal"):
        RetryPolicy(approval_timeout_seconds=7 * 24 * 3600)
    with pytest.raises(ValueError, match="cap must be at least base"):
        RetryPolicy(base=10, cap=5)


def test_next_ready_and_blocked_by_failure() -> None:
    plan = Plan.model_validate(make_plan(["a", "b", "c", "d", "e"], {"b": ["a"], "c": ["b"], "d": ["a", "e"]}))
    states: dict[str, SubtaskState] = dict.fromkeys(["a", "b", "c", "d", "e"], SubtaskState.PENDING)
    assert next_ready(plan, states) == ["a", "e"]
    states["a"] = SubtaskState.SUCCEEDED
    assert next_ready(plan, states) == ["b", "e"]
    states["b"] = SubtaskState.FAILED
    assert blocked_by_failure(plan, states) == {"c": "b"}
    states["e"] = SubtaskState.SKIPPED
    assert blocked_by_failure(plan, states) == {"c": "b", "d": "e"}


def test_validate_plan_rejects_bad_graphs() -> None:
    with pytest.raises(ValueError, match="unknown"):
        validate_plan(Plan.model_validate(make_plan(["a"], {"a": ["zz"]})))
    with pytest.raises(ValueError, match="cycle"):
        validate_plan(Plan.model_validate(make_plan(["a", "b", "c"], {"a": ["c"], "b": ["a"], "c": ["b"]})))
    with pytest.raises(ValueError, match="duplicate"):
        validate_plan(Plan.model_validate(make_plan(["a", "a"])))
    with pytest.raises(ValueError, match="itself"):
        validate_plan(Plan.model_validate(make_plan(["a"], {"a": ["a"]})))


def test_truncate_and_approval_payloads() -> None:
    assert len(truncate("x" * 5000)) == 500
    assert truncate("short") == "short"
    assert approval_granted(None) == (True, "")
    assert approval_granted({"approved": False, "by": "octocat"}) == (False, "octocat")
    assert subtask_instance_id("inst", "s1") == "inst:s1"


# ------------------------------------------------------------------------------------------- sliding window


def test_sliding_window_keeps_exactly_max_concurrency_in_flight() -> None:
    ids = [f"s{i:02d}" for i in range(10)]
    world = World(make_plan(ids))
    output, ctx, windows = run_parent(world, max_concurrency=3)

    assert output["succeeded"] == 10
    assert output["max_running"] == 3
    # While work remains, every wait has exactly 3 in flight; each completion admits exactly one more (not
    # batch-and-wait). After 4 outcomes the parent continues as new: the next execution's first START collects
    # the outcomes that landed meanwhile (here: all three running ones) and refills the window in one go.
    assert windows == [
        ["inst:s00", "inst:s01", "inst:s02"],
        ["inst:s01", "inst:s02", "inst:s03"],
        ["inst:s02", "inst:s03", "inst:s04"],
        ["inst:s03", "inst:s04", "inst:s05"],
        ["inst:s06", "inst:s07", "inst:s08"],
        ["inst:s07", "inst:s08", "inst:s09"],
        ["inst:s08", "inst:s09"],
        ["inst:s09"],
    ]
    assert world.started == [subtask_instance_id("inst", sid, RUN) for sid in ids]
    assert output["executions"] > 1  # the parent continued as new along the way


def test_sequential_runs_one_at_a_time() -> None:
    world = World(make_plan(["a", "b", "c"]))
    output, _, windows = run_parent(world, max_concurrency=8, approach="sequential")
    assert output["max_running"] == 1
    assert all(len(w) == 1 for w in windows)


def test_dependencies_are_respected_and_summaries_passed_on() -> None:
    world = World(
        make_plan(["a", "b", "c"], {"b": ["a"], "c": ["a", "b"]}),
        run=lambda inp: {"ok": True, "summary": f"did {inp['subtask']['id']}"},
    )
    output, _, windows = run_parent(world)
    assert windows == [["inst:a"], ["inst:b"], ["inst:c"]]
    assert output["succeeded"] == 3
    c_input = next(i for i in world.run_inputs if i["subtask"]["id"] == "c")
    assert c_input["dependency_summaries"] == {"a": "did a", "b": "did b"}


def test_failed_dependency_skips_the_downstream_cone() -> None:
    def run(inp: dict[str, Any]) -> dict[str, Any]:
        if inp["subtask"]["id"] == "a":
            return {"ok": False, "retryable": False, "error": "bad config"}
        return OK

    world = World(make_plan(["a", "b", "c", "d"], {"b": ["a"], "c": ["b"]}), run=run)
    output, ctx, _ = run_parent(world)
    by_id = {o["id"]: o for o in output["outcomes"]}
    assert by_id["a"]["status"] == "failed"
    assert by_id["a"]["attempts"] == 1
    assert by_id["b"]["status"] == "skipped"
    assert "dependency a" in by_id["b"]["error"]
    assert by_id["c"]["status"] == "skipped"
    assert "dependency b" in by_id["c"]["error"]
    assert by_id["d"]["status"] == "succeeded"
    assert (output["succeeded"], output["failed"], output["skipped"]) == (1, 1, 2)
    assert {sid for sid in world.children} == {"a", "d"}  # skipped subtasks never start
    assert ctx.custom_status["done"] == 4
    assert ctx.custom_status["failed"] == 1
    assert world.reports[-1]["phase"] == "partial"
    assert world.reports[-1]["labels"] == ["reynolds:failed"]


def test_nothing_succeeds_fails_the_orchestration_after_reporting() -> None:
    world = World(make_plan(["a", "b"]), run=lambda _inp: {"ok": False, "retryable": False, "error": "no"})
    with pytest.raises(EngineFailed, match="no subtask succeeded"):
        run_parent(world)
    assert [r["phase"] for r in world.reports] == ["started", "failed"]


def test_invalid_plan_fails_after_one_report() -> None:
    world = World(make_plan(["a", "b"], {"a": ["b"], "b": ["a"]}))
    with pytest.raises(EngineFailed, match="planning failed"):
        run_parent(world)
    assert [r["phase"] for r in world.reports] == ["failed"]


def test_reports_are_batched_and_custom_status_tracks_states() -> None:
    world = World(make_plan(["a", "w", "b"], {"b": ["a"]}, writes=["w"]), approvals={"w": {"approved": True}})
    output, ctx, _ = run_parent(world)
    assert [r["phase"] for r in world.reports] == ["started", "needs_approval", "succeeded"]
    assert world.reports[1]["states"]["w"] == "waiting"
    assert [r["idempotency_key"] for r in world.reports] == [f"inst:{RUN}:report:{i}" for i in (1, 2, 3)]
    first = ctx.custom_statuses[1]
    assert first["subtasks"] == {"a": "pending", "w": "pending", "b": "pending"}
    assert any(s.get("waiting") == 1 and s.get("running") == 1 for s in ctx.custom_statuses)
    assert ctx.custom_status == {
        "phase": "succeeded",
        "run": RUN,
        "waiting_ids": [],
        "subtasks": {"a": "succeeded", "w": "succeeded", "b": "succeeded"},
        "total": 3,
        "done": 3,
        "succeeded": 3,
        "running": 0,
        "waiting": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert output["succeeded"] == 3


def test_a_failing_report_does_not_fail_the_work() -> None:
    def report(_inp: dict[str, Any]) -> Any:
        raise RuntimeError("GitHub down")

    world = World(make_plan(["a"]), report=report)
    output, _, _ = run_parent(world)
    assert output["succeeded"] == 1
    assert output["report_failures"] == 2


def test_cancel_skips_the_rest_and_reports_final() -> None:
    world = World(
        make_plan(["a", "b", "c"], {"b": ["a"]}),
        pending_subs=["a", "c"],
        parent_events={CANCEL_EVENT: {"by": "octocat"}},
    )
    output, ctx, _ = run_parent(world)
    assert output["cancelled"] is True
    assert {o["status"] for o in output["outcomes"]} == {"skipped"}
    assert output["outcomes"][0]["error"] == "cancelled by octocat"
    assert world.reports[-1]["phase"] == "cancelled"
    assert world.reports[-1]["labels"] == []
    assert ctx.custom_status["skipped"] == 3
    # The running subtasks are told to stop; the parent does not wait for them.
    assert world.cancel_requests == [{"instance_ids": [f"inst:{RUN}:a", f"inst:{RUN}:c"], "by": "octocat"}]


# ------------------------------------------------------------------------------------------------ subtask


def run_child(
    inp: dict[str, Any], run: Callable[[dict[str, Any]], Any], events: dict[str, Any] | None = None
) -> tuple[dict[str, Any], FakeOrchestrationContext, list[dict[str, Any]]]:
    ctx = FakeOrchestrationContext(inp, instance_id="parent:s1", now=START)
    calls: list[dict[str, Any]] = []
    notified: list[dict[str, Any]] = []

    def resolve(task: FakeTask) -> Any:
        if task.kind == "activity" and task.name == RUN_SUBTASK:
            calls.append(task.input)
            return run(task.input)
        if task.kind == "activity" and task.name == LOAD_TASK:
            return {"type": "incident", "description": "fix"}
        if task.kind == "activity" and task.name == NOTIFY_PARENT:
            notified.append(task.input)
            return {"delivered": True}
        if task.kind == "event":
            return (events or {}).get(task.name or "", PENDING)
        if task.kind == "timer":
            return None
        raise AssertionError(task)

    outcome = drive(run_subtask(ctx), resolve, ctx)
    assert notified == [{"parent_instance_id": "parent", "event": "subtask_done_s1", "outcome": outcome}]
    return outcome, ctx, calls


def failing_then_ok(failures: list[Any]) -> Callable[[dict[str, Any]], Any]:
    def run(inp: dict[str, Any]) -> Any:
        attempt = inp["attempt"]
        if attempt <= len(failures):
            failure = failures[attempt - 1]
            if isinstance(failure, Exception):
                raise failure
            return failure
        return {"ok": True, "summary": f"ok on {attempt}"}

    return run


def test_backoff_delays_come_from_durable_timers() -> None:
    retry = {"ok": False, "retryable": True, "error": "flaky"}
    outcome, ctx, calls = run_child(subtask_input(), failing_then_ok([retry, retry, retry]))
    assert outcome["status"] == "succeeded"
    assert outcome["attempts"] == 4
    assert [c["attempt"] for c in calls] == [1, 2, 3, 4]
    assert {c["idempotency_key"] for c in calls} == {"parent:s1"}
    expected = [backoff_seconds(n, 2, 300, seed="parent:s1") for n in (1, 2, 3)]
    assert backoff_durations(ctx) == pytest.approx(expected, abs=1e-3)
    # Per-attempt timeouts that lost the race were cancelled.
    timeouts = [t for t in real_timers(ctx) if not t.is_completed]
    assert len(timeouts) == 4
    assert all(t.is_cancelled for t in timeouts)


def test_retry_after_is_honoured() -> None:
    limited = {"ok": False, "retryable": True, "retry_after": 30, "error": "429 secondary rate limit"}
    outcome, ctx, _ = run_child(subtask_input(), failing_then_ok([limited]))
    assert outcome["status"] == "succeeded"
    assert outcome["attempts"] == 2
    assert backoff_durations(ctx)[0] >= 30


def test_raised_activity_failure_is_retried_and_attempt_cap_applies() -> None:
    outcome, ctx, calls = run_child(subtask_input(max_attempts=3), failing_then_ok([RuntimeError("boom")] * 5))
    assert outcome["status"] == "failed"
    assert outcome["attempts"] == 3
    assert "boom" in outcome["error"]
    assert len(calls) == 3
    assert len(backoff_durations(ctx)) == 2


def test_permanent_failure_is_not_retried_and_error_truncated() -> None:
    permanent = {"ok": False, "retryable": False, "error": "x" * 10_000}
    outcome, ctx, calls = run_child(subtask_input(), failing_then_ok([permanent]))
    assert outcome["status"] == "failed"
    assert outcome["attempts"] == 1
    assert len(calls) == 1
    assert len(outcome["error"]) <= 500
    assert backoff_durations(ctx) == []


def test_malformed_result_is_a_permanent_failure() -> None:
    outcome, _, calls = run_child(subtask_input(), lambda _inp: {"status": "weird"})
    assert outcome["status"] == "failed"
    assert "malformed" in outcome["error"]
    assert len(calls) == 1


def test_attempt_timeout_counts_as_retryable() -> None:
    def run(inp: dict[str, Any]) -> Any:
        return PENDING if inp["attempt"] == 1 else OK

    outcome, ctx, _ = run_child(subtask_input(attempt_timeout_seconds=120), run)
    assert outcome["status"] == "succeeded"
    assert outcome["attempts"] == 2
    assert backoff_durations(ctx)[0] == 120  # the attempt's timeout timer fired first


def test_approval_times_out_cleanly() -> None:
    outcome, ctx, calls = run_child(subtask_input(writes=True, approval_timeout_seconds=3600), lambda _i: OK)
    assert outcome == {
        "id": "s1",
        "specialist": "devops",
        "status": "failed",
        "attempts": 0,
        "summary": "",
        "error": "approval timed out",
    }
    assert calls == []
    assert backoff_durations(ctx) == [3600]
    assert ctx.custom_statuses[0] == {"state": "waiting", "attempt": 0}


def test_approval_delivered_runs_the_subtask() -> None:
    outcome, ctx, calls = run_child(
        subtask_input(writes=True), lambda _i: OK, events={APPROVAL_EVENT: {"approved": True, "by": "octocat"}}
    )
    assert outcome["status"] == "succeeded"
    assert len(calls) == 1
    approval_deadline = next(t for t in ctx.calls if t.kind == "timer")
    assert approval_deadline.is_cancelled


def test_approval_denied_fails_without_running() -> None:
    outcome, _, calls = run_child(
        subtask_input(writes=True), lambda _i: OK, events={APPROVAL_EVENT: {"approved": False, "by": "octocat"}}
    )
    assert outcome["status"] == "failed"
    assert outcome["error"] == "approval denied by octocat"
    assert calls == []


def test_cancel_during_backoff_skips() -> None:
    retry = {"ok": False, "retryable": True, "error": "flaky"}
    ctx = FakeOrchestrationContext(subtask_input(), instance_id="parent:s1", now=START)

    def resolve(task: FakeTask) -> Any:
        if task.kind == "activity" and task.name == LOAD_TASK:
            return {"type": "incident", "description": "fix"}
        if task.kind == "activity":
            return retry
        if task.kind == "event" and task.name == CANCEL_EVENT:
            return {"by": "octocat"}
        return PENDING  # timers never fire: the cancel wins

    outcome = drive(run_subtask(ctx), resolve, ctx)
    assert outcome["status"] == "skipped"
    assert outcome["attempts"] == 1
    assert outcome["error"].startswith("cancelled")


def test_invalid_input_fails_with_a_short_message() -> None:
    ctx = FakeOrchestrationContext({"task": {"type": "x", "description": "y" * 100_000}, "bogus": 1})
    with pytest.raises(EngineFailed, match="invalid TaskRequest input") as raised:
        drive(run_orchestrate_task(ctx), lambda _t: None, ctx)
    assert len(str(raised.value)) <= 500


# ------------------------------------------------------------------------------- custom status and replay cost


def test_custom_status_stays_within_the_extensions_16_kb() -> None:
    from orchestrators.engine import MAX_CUSTOM_STATUS_BYTES, utf16_json_bytes

    ids = [f"{i:03d}-" + "x" * 60 for i in range(256)]  # the longest ids a plan may hold, the most subtasks
    world = World(make_plan(ids))
    output, ctx, _ = run_parent(world, max_concurrency=64)
    assert output["succeeded"] == 256
    assert all(utf16_json_bytes(status) <= MAX_CUSTOM_STATUS_BYTES for status in ctx.custom_statuses)
    assert ctx.custom_status["truncated"] is True
    assert ctx.custom_status["subtasks"] == {}
    assert ctx.custom_status["succeeded"] == 256
    small = World(make_plan(["a", "b"]))
    _, small_ctx, _ = run_parent(small)
    assert small_ctx.custom_status["subtasks"] == {"a": "succeeded", "b": "succeeded"}


def test_custom_status_is_set_on_replay_too_so_a_stray_wake_up_keeps_it() -> None:
    # A replayed episode (a duplicate outcome, a marker firing days later) yields only old steps; DTFx stores
    # what that episode set, so the engine sets the status on replay as well and approvals still find it.
    world = World(make_plan(["a", "w"], writes=["w"]))
    world.pending_subs = {"w"}
    ctx = FakeOrchestrationContext(make_request(max_concurrency=2), instance_id="inst", now=START)
    ctx.replaying = True
    with pytest.raises(StalledError):  # w waits for its approval: the parent waits with it
        drive(observed(run_orchestrate_task(ctx), [], world.watches), world.resolve, ctx)
    assert ctx.custom_status["waiting_ids"] == ["w"]
    assert ctx.custom_status["run"] == RUN


def test_large_plans_with_long_ids_stay_approvable_within_16_kb() -> None:
    from orchestrators.engine import MAX_CUSTOM_STATUS_BYTES, _custom_status, _Window, utf16_json_bytes
    from shared.work.task_report import subtask_ids_waiting

    ids = [f"{'x' * 60}{i:04d}" for i in range(200)]
    carry = {"request": make_request(), "subtasks": make_plan(ids, writes=ids)["subtasks"],
             "states": dict.fromkeys(ids, "waiting"), "run": RUN}
    from orchestrators.engine import EngineCarry

    status = _custom_status(_Window(EngineCarry.model_validate(carry)), "running")
    assert utf16_json_bytes(status) <= MAX_CUSTOM_STATUS_BYTES
    assert status["truncated"] is True
    waiting = subtask_ids_waiting(status)
    assert len(waiting) > 100  # the map is gone; the waiting list is what approvals read
    assert set(waiting) <= set(ids)


def test_subtask_inputs_carry_ids_not_the_description() -> None:
    world = World(make_plan(["a", "b"], {"b": ["a"]}), run=lambda inp: {"ok": True, "summary": "did it"})
    request = make_request()
    request["task"]["description"] = "D" * 8000
    run_parent(world, request=request)
    inputs = [c.get_input() for c in world.children.values()]
    assert all("task" not in i and "D" * 100 not in str(i) for i in inputs)
    assert inputs[1]["dependency_summaries"] == {"a": "did it"}
    assert inputs[1]["parent_instance_id"] == "inst"


def test_the_carried_plan_is_packed_and_reads_back_as_the_same_nodes() -> None:
    """continue_as_new writes the plan as rows under shared keys, each specialist once; the next execution
    reads exactly the nodes (defaults left out) the first one validated, and runs the DAG the same way."""
    plan = make_plan([f"s{i:02d}" for i in range(9)], deps={"s08": ["s00", "s03"]}, writes=["s05"])
    plan["subtasks"][2]["specialist"] = "code_intelligence"
    plan["subtasks"][4]["risk"] = "high"
    world = World(plan)
    request = make_request(max_concurrency=2)
    ctx = FakeOrchestrationContext(request, instance_id="inst", now=START)
    drive(run_orchestrate_task(ctx), world.resolve, ctx)
    carried = json.loads(json.dumps(ctx.continued_as[-1]))
    packed = carried["subtasks"]
    assert packed["specialists"] == ["devops", "code_intelligence"]
    assert len(packed["rows"]) == 9
    assert all(isinstance(row, list) for row in packed["rows"])
    expected = [Plan.model_validate(plan).subtasks[i].model_dump(mode="json", exclude_defaults=True)
                for i in range(9)]
    assert EngineCarry.model_validate(carried).subtasks == expected
    # Smaller than the nodes it stands for (what the task hub stores on every continue-as-new).
    assert len(json.dumps(packed)) < len(json.dumps(expected))
    # The whole run, through every execution, reads the packed plan back (the writing subtask's approval is
    # never granted in this world: it times out, as it does without packing).
    output, _, _ = run_parent(World(plan), max_concurrency=2)
    assert output["executions"] > 1
    assert [(o["id"], o["status"]) for o in output["outcomes"] if o["status"] != "succeeded"] == [("s05", "failed")]
    assert output["succeeded"] == 8


@pytest.mark.parametrize("rows", [[["a", "t"]], [["a", "t", 7]], [["a", "t", "devops"]], "rows"])
def test_a_malformed_packed_plan_is_refused(rows: Any) -> None:
    carry = {"request": make_request(), "subtasks": {"keys": ["id", "title", "specialist"],
                                                     "specialists": ["devops"], "rows": rows},
             "states": {"a": "pending"}}
    with pytest.raises(ValidationError):
        EngineCarry.model_validate(carry)
