"""What the Durable extension and DTFx do with the SDK's answer, each rule pinned with a minimal orchestrator.

The rules and their upstream sources are listed in ``tools.harness.host_rules``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from tools.harness.durable import ExternalEvent, FakeDurableClient, NonDeterminismError, ReplayHarness
from tools.harness.replay_check import assert_replays_alike

L = 10.0
FAR = timedelta(days=5)


def _double(x: int) -> int:
    return 2 * x


def _latency(name: str, payload: Any) -> float:
    return 100.0 if name == "hang" else L


def _harness(**orchestrators: Any) -> ReplayHarness:
    return ReplayHarness(orchestrators, {"double": _double, "hang": _double}, latency=_latency)


def refill_with_cancelled_timer(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """A window of 8 over 16 activities where every refill entry carries an already cancelled timer."""
    pending = [context.call_activity("double", i) for i in range(8)]
    next_item, results = 8, []
    while pending:
        marker = context.create_timer(context.current_utc_datetime + FAR)
        marker.cancel()
        done = yield context.task_any([*pending, marker])
        if done is marker:
            continue
        pending.remove(done)
        results.append(done.result)
        if next_item < 16:
            task = context.call_activity("double", next_item)
            pending.append(task)
            next_item += 1
    return sorted(results)


def test_cancelled_timer_lets_the_host_walk_on_and_the_window_stays_full() -> None:
    run = _harness(w=refill_with_cancelled_timer).run("w")
    assert run.runtime_status == "Completed"
    assert run.output == sorted(2 * i for i in range(16))
    assert run.elapsed_seconds == pytest.approx(2 * L)
    assert run.max_concurrent == 8
    assert run.open_tasks == 0  # the far-future markers do not hold completion: they are cancelled


def abandoned_activity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    work = context.call_activity("hang", 1)
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=L))
    winner = yield context.task_any([work, deadline])
    return "timed out" if winner is deadline else "done"


def test_open_activity_holds_completion_until_it_returns() -> None:
    run = _harness(a=abandoned_activity).run("a")
    assert run.output == "timed out"  # the orchestrator returned at 10 s ...
    assert run.finished_at_seconds == pytest.approx(100.0)  # ... DTFx completed it when the activity came back


def uncancelled_deadline(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=300))
    event = context.wait_for_external_event("Go")
    winner = yield context.task_any([event, deadline])
    if winner is event and context.get_input():
        deadline.cancel()
    return winner is event


@pytest.mark.parametrize(("cancel", "finished"), [(True, 5.0), (False, 300.0)])
def test_only_a_cancelled_timer_stops_holding_completion(cancel: bool, finished: float) -> None:
    run = _harness(u=uncancelled_deadline).run("u", cancel, events=[ExternalEvent(5, "Go")])
    assert run.output is True
    assert run.finished_at_seconds == pytest.approx(finished)


def phone_verification(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """The SDK sample E4's loop: one timeout timer, a fresh wait for every attempt."""
    timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=60))
    for _ in range(3):
        answer = context.wait_for_external_event("SmsChallengeResponse")
        winner = yield context.task_any([answer, timeout])
        if winner is timeout:
            return "timed out"
        if answer.result == 1234:
            timeout.cancel()
            return "verified"
    return "failed"


def test_second_wait_entry_blocks_the_walk_like_the_e4_sample() -> None:
    run = _harness(e4=phone_verification).run("e4", events=[ExternalEvent(5, "SmsChallengeResponse", 1)])
    # The SDK returned "timed out" at 60 s, but the host awaits WhenAny{second wait} first: it never completes.
    assert run.runtime_status == "Running"
    assert run.output is None
    correct = _harness(e4=phone_verification).run("e4", events=[ExternalEvent(5, "SmsChallengeResponse", 1234)])
    assert correct.output == "verified"


def big_status(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    context.set_custom_status("x" * context.get_input())
    yield context.call_activity("double", 1)
    return "ok"


def test_custom_status_above_16_kb_of_utf16_fails_the_orchestration() -> None:
    # '"' + 8701 chars + '"' = 17,406 UTF-16 bytes: 16 whole KB, accepted; one more char makes 17 KB.
    assert _harness(s=big_status).run("s", 8701).runtime_status == "Completed"
    failed = _harness(s=big_status).run("s", 8702)
    assert failed.runtime_status == "Failed"
    assert "must not exceed 16 KB" in (failed.error or "")
    assert not failed.activity_calls  # SetCustomStatus throws before the action walk


def gated_child(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.wait_for_external_event("go"))


def gated_parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_sub_orchestrator("gated_child", None, "child-1"))


def test_children_are_instances_the_client_reaches() -> None:
    harness = ReplayHarness({"gated_parent": gated_parent, "gated_child": gated_child}, {})
    client = FakeDurableClient(harness)

    async def scenario() -> tuple[str, str, Any]:
        await client.start_new("gated_parent", "p-1")
        child_before = (await client.get_status("child-1")).runtime_status
        await client.raise_event("child-1", "go", {"by": "octocat"})
        parent = await client.get_status("p-1")
        assert child_before is not None
        return child_before.value, parent.runtime_status.value, parent.output

    assert asyncio.run(scenario()) == ("Running", "Completed", {"by": "octocat"})


NAMES = [f"item-{i}" for i in range(16)]


def list_order(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.task_all([context.call_activity("double", i) for i, _ in enumerate(sorted(NAMES))]))


def test_fresh_process_replay_catches_hash_seed_dependence() -> None:
    ok = _harness(list_order=list_order).run("list_order")
    assert len(assert_replays_alike("tests.test_durable_host_rules:list_order", ok)) == 16
    activities = {"double": lambda names: 0}
    ordered = ReplayHarness({"set_order": set_order_by_name}, activities).run("set_order")
    with pytest.raises(NonDeterminismError):
        assert_replays_alike("tests.test_durable_host_rules:set_order_by_name", ordered)


def set_order_by_name(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.task_all([context.call_activity(name, None) for name in _names_in_set_order()]))


def _names_in_set_order() -> list[str]:
    return ["double" if n == "item-0" else f"act-{n}" for n in set(NAMES)]


def status_once(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    if not context.is_replaying:
        context.set_custom_status({"step": 1})
    yield context.call_activity("double", 1)
    return "ok"


def test_custom_status_not_set_in_an_episode_is_cleared() -> None:
    # DTFx's TaskOrchestrationDispatcher stores, every episode, what the orchestrator set in that episode.
    h = _harness(status_once=status_once)
    first = h.start_instance("status_once", None, "once", h.start)
    first.step()
    assert first.custom_status == {"step": 1}
    h.run_in_time_order()
    assert first.status == "Completed"
    assert first.custom_status is None


def starter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("start_and_look", None)
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    return (yield context.call_activity("look", None))


def test_one_clock_for_every_instance_and_client_calls_from_activities() -> None:
    """Instances started by an activity run on the same clock; a status read from an activity sees the
    present, not the started instance's future."""
    seen: list[str] = []
    harness = ReplayHarness({"starter": starter, "sleeper_child": abandoned_activity}, {})

    async def start_and_look(_payload: Any, client: Any) -> str:
        await client.start_new("sleeper_child", "kid", None)
        status = await client.get_status("kid")
        seen.append(status.runtime_status.value)
        return "started"

    async def look(_payload: Any, client: Any) -> str:
        status = await client.get_status("kid")
        seen.append(status.runtime_status.value)
        return status.runtime_status.value

    harness.activities.update({"start_and_look": start_and_look, "look": look, "hang": _double})
    harness.client_params.update({"start_and_look": "client", "look": "client"})
    harness.latency = _latency
    run = harness.run("starter")
    assert run.output == "Running"  # at 30 s the child still waits for its 100 s activity
    assert seen == ["Running", "Running"]
    kid = harness.instances["kid"]
    assert kid.status == "Completed"
    assert (kid.finished_at - harness.start).total_seconds() == pytest.approx(100.0)
