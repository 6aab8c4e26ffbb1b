"""The replay harness drives real SDK orchestrators; these tests pin down what it simulates."""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from orchestrators.context import OrchestrationContext
from tests.harness.fake_context import PENDING, FakeOrchestrationContext, StalledError, drive, resolver
from tools.harness.durable import (
    ExternalEvent,
    FakeDurableClient,
    HarnessError,
    NonDeterminismError,
    ReplayHarness,
    parse_orchestrator_state,
)

bp = df.Blueprint()
LATENCY = 10.0


@bp.activity_trigger(input_name="payload")
def double(payload: int) -> int:
    return payload * 2


@bp.activity_trigger(input_name="payload", activity="describe")
def describe_activity(payload: dict) -> dict:
    return {"kind": type(payload).__name__, "keys": sorted(payload)}


@bp.activity_trigger(input_name="payload")
def explode(payload: str) -> str:
    raise ValueError(f"cannot handle {payload}")


@bp.orchestration_trigger(context_name="context")
def sequential(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    a = yield context.call_activity("double", context.get_input())
    b = yield context.call_activity("double", a)
    shape = yield context.call_activity("describe", {"b": b, "a": a})
    return [a, b, shape]


@bp.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    results = yield context.task_all([context.call_activity("double", i) for i in range(16)])
    return sum(results)


@bp.orchestration_trigger(context_name="context")
def sliding_window(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    pending = [context.call_activity("double", i) for i in range(8)]
    next_item, results = 8, []
    while pending:
        done = yield context.task_any(pending)
        pending.remove(done)
        results.append(done.result)
        if next_item < 16:
            pending.append(context.call_activity("double", next_item))
            next_item += 1
    return sorted(results)


@bp.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    return context.current_utc_datetime.isoformat()


@bp.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    context.set_custom_status({"stage": "waiting"})
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    event = context.wait_for_external_event("Approved")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        context.set_custom_status({"stage": "approved"})
        return {"approved": True, "by": event.result}
    context.set_custom_status({"stage": "timed out"})
    return {"approved": False}


@bp.orchestration_trigger(context_name="context")
def catcher(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    try:
        yield context.call_activity("explode", "x")
    except Exception as exc:
        return f"caught: {exc}"
    return "not reached"


@bp.orchestration_trigger(context_name="context")
def unhandled(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("explode", "y")
    return "not reached"


@bp.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    child = yield context.call_sub_orchestrator("sequential", 3)
    return {"child": child, "me": context.instance_id}


@bp.orchestration_trigger(context_name="context")
def uuids(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    first = context.new_uuid()
    yield context.call_activity("double", 1)
    second = context.new_uuid()
    yield context.call_activity("record", [first, second])
    return [first, second]


@bp.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)
    other = context.call_activity("double", 5)
    flaky = context.call_activity_with_retry("flaky", options, "go")
    results = yield context.task_all([flaky, other])
    after = yield context.call_activity("double", 7)
    return [*results, after]


@bp.orchestration_trigger(context_name="context")
def shim(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield from run_engine(context))


def run_engine(context: OrchestrationContext) -> Generator[Any, Any, Any]:
    """A pure engine written against the Protocol: runs under the real SDK and under the fake context."""
    context.set_custom_status("started")
    items = context.get_input()["items"]
    doubled = yield context.task_all([context.call_activity("double", i) for i in items])
    deadline = context.current_utc_datetime + timedelta(seconds=60)
    winner = yield context.task_any([context.wait_for_external_event("Go"), context.create_timer(deadline)])
    return {"doubled": doubled, "go": winner.result, "id": context.new_uuid()}


def make_app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(bp)
    return app


def harness(**kw: Any) -> ReplayHarness:
    return ReplayHarness.from_app(make_app(), **kw)


def equal_latency(_name: str, _input: Any) -> float:
    return LATENCY


# -- discovery ------------------------------------------------------------------------------------------------


def test_from_app_discovers_orchestrators_and_activities_by_binding() -> None:
    h = harness()
    assert {"sequential", "fan_out", "approval", "parent"} <= set(h.orchestrators)
    assert {"double", "describe", "explode"} <= set(h.activities)
    assert "describe_activity" not in h.activities  # the activity= name wins, as on the host
    registered = getattr(h.orchestrators["sequential"], "orchestrator_function", None)
    assert registered is sequential.build().get_user_function().orchestrator_function


# -- the scenarios ------------------------------------------------------------------------------------------------


def test_sequential_activities_round_trip_json_like_the_host() -> None:
    run = harness(latency=equal_latency).run("sequential", 5)
    assert run.runtime_status == "Completed"
    assert run.output == [10, 20, {"kind": "dict", "keys": ["a", "b"]}]
    assert run.activity_calls == [("double", 5), ("double", 10), ("describe", {"b": 20, "a": 10})]
    assert run.max_concurrent == 1
    assert run.elapsed_seconds == pytest.approx(3 * LATENCY)
    scheduled = [e for e in run.history if e["EventType"] == 4]
    assert [e["EventId"] for e in scheduled] == [0, 1, 2]
    assert run.episodes == 4


def test_fan_out_fan_in_runs_all_sixteen_at_once() -> None:
    run = harness(latency=equal_latency).run("fan_out")
    assert run.runtime_status == "Completed"
    assert run.output == sum(2 * i for i in range(16))
    assert run.max_concurrent == 16
    assert run.elapsed_seconds == pytest.approx(LATENCY)
    assert run.episodes == 2  # all completions at one instant arrive in one batch


def test_task_any_refills_serialise_on_the_host() -> None:
    """The old engine's pattern: ``task_any(in_flight)`` refills become ``WhenAny{new}`` entries the host awaits
    one at a time (ProcessAsyncActionsV2), so after the first wave one activity runs at a time: 10 s + 8 × 10 s
    instead of 20 s, although the orchestrator's own bookkeeping believes eight are in flight."""
    run = harness(latency=equal_latency).run("sliding_window")
    assert run.runtime_status == "Completed"
    assert run.output == sorted(2 * i for i in range(16))
    assert run.elapsed_seconds == pytest.approx(9 * LATENCY)
    assert run.max_concurrent == 8  # the first wave only
    scheduled = [e for e in run.history if e["EventType"] == 4]  # TaskScheduled
    assert len(scheduled) == 16


def test_timer_advances_the_simulated_clock() -> None:
    h = harness()
    run = h.run("sleeper")
    assert run.runtime_status == "Completed"
    assert run.elapsed_seconds == 30
    assert run.timers == [(h.start, h.start + timedelta(seconds=30))]
    assert run.output == (h.start + timedelta(seconds=30)).isoformat()


def test_external_event_beats_the_timer() -> None:
    run = harness().run("approval", events=[ExternalEvent(12, "Approved", {"user": "octocat"})])
    assert run.runtime_status == "Completed"
    assert run.output == {"approved": True, "by": {"user": "octocat"}}
    assert run.custom_status == {"stage": "approved"}
    assert run.elapsed_seconds == 12


def test_timer_wins_when_no_event_comes() -> None:
    run = harness().run("approval")
    assert run.output == {"approved": False}
    assert run.custom_status == {"stage": "timed out"}
    assert run.elapsed_seconds == 300


def test_event_after_the_deadline_loses() -> None:
    run = harness().run("approval", events=[ExternalEvent(301, "Approved", "late")])
    assert run.output == {"approved": False}


def test_activity_exception_caught_in_the_orchestrator() -> None:
    run = harness().run("catcher")
    assert run.runtime_status == "Completed"
    # TaskActivityShim: Reason "Activity function '<name>' failed: <Type>: <msg>", Details the exception JSON.
    assert run.output.startswith("caught: Activity function 'explode' failed: ValueError: cannot handle x \n {")
    failed = [e for e in run.history if e["EventType"] == 6]
    assert failed[0]["Reason"] == "Activity function 'explode' failed: ValueError: cannot handle x"
    details = json.loads(failed[0]["Details"])
    assert details["Message"] == "ValueError: cannot handle x"
    assert "Traceback" in details["InnerException"]["Message"]


def test_unhandled_activity_exception_fails_the_orchestration() -> None:
    run = harness().run("unhandled")
    assert run.runtime_status == "Failed"
    assert run.error is not None
    assert "cannot handle y" in run.error
    assert run.output is None


def test_sub_orchestration_runs_as_a_child_instance() -> None:
    run = harness(latency=equal_latency).run("parent", instance_id="p1")
    assert run.runtime_status == "Completed"
    assert run.output["me"] == "p1"
    assert run.output["child"][:2] == [6, 12]
    assert run.elapsed_seconds == pytest.approx(3 * LATENCY)
    (child,) = run.sub_orchestrations
    assert child.instance_id == "p1:0000"
    assert child.runtime_status == "Completed"
    assert len(child.activity_calls) == 3
    assert run.max_concurrent == 1


def test_failed_sub_orchestration_surfaces_in_the_parent() -> None:
    def calls_unhandled(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield context.call_sub_orchestrator("unhandled", None, "child-1")
        except Exception as exc:
            return str(exc)
        return "not reached"

    run = harness(orchestrators={"calls_unhandled": calls_unhandled}).run("calls_unhandled")
    assert run.runtime_status == "Completed"
    assert "Orchestrator function 'unhandled' failed" in run.output
    assert "cannot handle y" in run.output
    assert run.sub_orchestrations[0].instance_id == "child-1"


def test_new_uuid_is_stable_across_replays() -> None:
    recorded: list[Any] = []
    h = harness(activities={"record": recorded.append})
    run = h.run("uuids", instance_id="same")
    assert run.episodes == 3  # replayed twice, the uuids were minted on every replay
    assert recorded == [run.output]
    assert run.output[0] != run.output[1]
    assert h.run("uuids", instance_id="same").output == run.output
    assert h.run("uuids", instance_id="other").output != run.output


def test_retry_options_replay_failures_and_timers_like_the_extension() -> None:
    attempts: list[str] = []

    def flaky(payload: str) -> str:
        attempts.append(payload)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        return "finally"

    run = harness(activities={"flaky": flaky}).run("retrying")
    assert run.runtime_status == "Completed"
    assert run.output == ["finally", 10, 14]
    assert len(attempts) == 3
    assert run.elapsed_seconds == 10  # two 5 s retry intervals
    kinds = [(e["EventType"], e["EventId"], e.get("TaskScheduledId"), e.get("TimerId")) for e in run.history]
    assert (6, -1, 0, None) in kinds  # TaskFailed for the first attempt (id 0)
    assert (10, 2, None, None) in kinds  # the retry timer took id 2 ...
    assert (11, -1, None, 2) in kinds
    assert (4, 3, None, None) in kinds  # second attempt re-scheduled as id 3


def test_retry_exhaustion_fails_after_one_extra_timer() -> None:
    def always(payload: str) -> str:
        raise RuntimeError("still broken")

    run = harness(activities={"flaky": always}).run("retrying")
    assert run.runtime_status == "Failed"
    assert "still broken" in (run.error or "")
    assert len([c for c in run.activity_calls if c[0] == "flaky"]) == 3
    assert len(run.timers) == 3  # a timer after each failed attempt, including the last
    assert run.elapsed_seconds == 15


def test_waiting_forever_reports_running() -> None:
    run = ReplayHarness({"wait": _wait_only}, {}).run("wait")
    assert run.runtime_status == "Running"
    assert run.waiting_for == ["Never"]


def _wait_only(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.wait_for_external_event("Never"))


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")  # the SDK's note on a buffered event
def test_event_raised_before_the_wait_is_buffered() -> None:
    def late_wait(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=10))
        return (yield context.wait_for_external_event("Early"))

    run = ReplayHarness({"late_wait": late_wait}, {}).run("late_wait", events=[ExternalEvent(1, "Early", 7)])
    assert run.output == 7


def test_continue_as_new_restarts_with_new_input() -> None:
    def counter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        n = context.get_input()
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
        if n < 3:
            context.continue_as_new(n + 1)
            return None
        return n

    run = ReplayHarness({"counter": counter}, {}).run("counter", 0)
    assert run.output == 3
    assert run.elapsed_seconds == 4


def test_non_deterministic_orchestrator_is_caught() -> None:
    flip = iter(range(100))

    def nondeterministic(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        name = "double" if next(flip) % 2 == 0 else "triple"
        yield context.call_activity(name, 1)
        yield context.call_activity("double", 2)

    h = ReplayHarness({"nd": nondeterministic}, {"double": lambda x: x * 2, "triple": lambda x: x * 3})
    with pytest.raises(NonDeterminismError):
        h.run("nd")


def test_runaway_orchestration_hits_the_episode_cap() -> None:
    def forever(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        while True:
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))

    with pytest.raises(HarnessError):
        ReplayHarness({"forever": forever}, {}).run("forever", max_episodes=20)


def test_long_timers_are_split_by_the_sdk() -> None:
    def week(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        yield context.create_timer(context.current_utc_datetime + timedelta(days=8))
        return "woke"

    run = ReplayHarness({"week": week}, {}).run("week")
    assert run.output == "woke"
    assert run.elapsed_seconds == timedelta(days=8).total_seconds()
    assert len(run.timers) > 1  # the SDK chained intervals no longer than the storage limit


def test_state_parsing_is_strict_about_shape() -> None:
    state = parse_orchestrator_state(
        '{"isDone": false, "schemaVersion": 1, "actions": [[{"actionType": 12, "compoundActions": '
        '[{"actionType": 0, "functionName": "a", "input": "1"}, {"actionType": 5, "fireAt": "x"}]}]]}'
    )
    assert [a["actionType"] for a in state["actions"]] == [0, 5]
    assert state["output"] is None
    assert state["customStatus"] is None
    with pytest.raises(HarnessError):
        parse_orchestrator_state("[]")
    with pytest.raises(HarnessError):
        parse_orchestrator_state('{"schemaVersion": 1, "actions": [[{"noType": 1}]]}')


# -- the pure engine under both contexts ------------------------------------------------------------------------


def test_engine_shim_under_real_replay() -> None:
    run = harness().run("shim", {"items": [1, 2]}, events=[ExternalEvent(5, "Go", "now")])
    assert run.output["doubled"] == [2, 4]
    assert run.output["go"] == "now"
    assert run.custom_status == "started"


def test_engine_under_the_fake_context() -> None:
    ctx = FakeOrchestrationContext(input={"items": [1, 2]}, instance_id="i-1")
    out = drive(run_engine(ctx), resolver({"double": lambda x: x * 2}), ctx)
    assert out["doubled"] == [2, 4]
    assert out["go"] is None  # no event: the timer won and moved the clock
    assert ctx.now == FakeOrchestrationContext().now + timedelta(seconds=60)
    assert ctx.activity_calls() == [("double", 1), ("double", 2)]
    assert ctx.custom_statuses == ["started"]
    again = FakeOrchestrationContext(input={"items": [1, 2]}, instance_id="i-1")
    out2 = drive(run_engine(again), resolver({"double": lambda x: x * 2}, events={"Go": "yes"}), again)
    assert out2["go"] == "yes"
    assert out2["id"] == out["id"]  # deterministic uuids


def test_fake_context_throws_failures_and_detects_stalls() -> None:
    def gen(context: FakeOrchestrationContext) -> Generator[Any, Any, Any]:
        try:
            yield context.call_activity("boom")
        except ValueError as exc:
            return (yield context.wait_for_external_event(str(exc)))
        return None

    def resolve(task: Any) -> Any:
        if task.kind == "activity":
            raise ValueError("E")
        return PENDING

    ctx = FakeOrchestrationContext()
    with pytest.raises(StalledError):
        drive(gen(ctx), resolve, ctx)
    assert [t.kind for t in ctx.calls] == ["activity", "event"]


# -- the client -----------------------------------------------------------------------------------------------


async def test_client_replaces_a_completed_instance_with_the_same_id() -> None:
    client = FakeDurableClient(harness())
    assert await client.start_new("sequential", "dup", 1) == "dup"
    assert await client.start_new("sequential", "dup", 2) == "dup"
    assert client.starts == 2
    status = await client.get_status("dup")
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert status.output[0] == 4
    assert status.to_json()["runtimeStatus"] == "Completed"


async def test_client_refuses_to_restart_a_running_instance() -> None:
    client = FakeDurableClient(harness())
    await client.start_new("approval", "wait-1")
    with pytest.raises(Exception, match="already exists"):
        await client.start_new("approval", "wait-1")
    assert client.starts == 1


async def test_client_get_status_of_unknown_instance() -> None:
    status = await FakeDurableClient(harness()).get_status("nope")
    assert status.runtime_status is None
    assert not status


async def test_client_raise_event_resumes_a_waiting_orchestration() -> None:
    client = FakeDurableClient(harness())
    instance_id = await client.start_new("approval", client_input=None)
    status = await client.get_status(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Running
    assert status.custom_status == {"stage": "waiting"}
    await client.raise_event(instance_id, "Approved", "mona")
    status = await client.get_status(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert status.output == {"approved": True, "by": "mona"}
    with pytest.raises(Exception, match="gone"):
        await client.raise_event(instance_id, "Approved", "again")


async def test_client_terminate_and_failed_status() -> None:
    client = FakeDurableClient(harness())
    await client.start_new("approval", "t-1")
    await client.terminate("t-1", "no longer needed")
    assert (await client.get_status("t-1")).runtime_status == df.OrchestrationRuntimeStatus.Terminated
    await client.start_new("unhandled", "f-1")
    failed = await client.get_status("f-1")
    assert failed.runtime_status == df.OrchestrationRuntimeStatus.Failed
    assert "cannot handle y" in failed.output


def test_client_management_payload_and_check_status_response() -> None:
    client = FakeDurableClient(harness())
    payload = client.create_http_management_payload("abc")
    assert payload["id"] == "abc"
    assert "/instances/abc?" in payload["statusQueryGetUri"]
    request = func.HttpRequest("POST", "https://reynolds.example/api/start", body=b"")
    response = client.create_check_status_response(request, "abc")
    assert response.status_code == 202
    assert response.headers["Location"].startswith("https://reynolds.example/runtime/webhooks/durabletask/")


async def test_client_rejects_calls_it_does_not_simulate() -> None:
    with pytest.raises(AssertionError):
        await FakeDurableClient(harness()).get_status_all()


async def test_client_fires_orchestrator_timers_only_when_advanced() -> None:
    client = FakeDurableClient(harness())
    await client.start_new("approval", "timeout-1")
    await client.advance(299)
    assert (await client.get_status("timeout-1")).runtime_status == df.OrchestrationRuntimeStatus.Running
    await client.advance(1)
    status = await client.get_status("timeout-1")
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert status.output == {"approved": False}
    assert client.run_of("timeout-1").elapsed_seconds == 300
