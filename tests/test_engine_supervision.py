"""Acceptance of issue 20's engine half: no task hangs, none adopts an old run's results.

A fault drill on the host-faithful replay harness (``tools.harness.durable``: the extension's sequential walk,
open tasks holding completion, instance-id reuse as the extension allows it), with the registered orchestrators
and the engine's real lifecycle activities reaching subtasks through the harness's durable client:

* an outcome lost in every position of plans of 1, 3, 4, 5 and 16 subtasks (the subtask's NOTIFY_PARENT fails
  all its attempts: the subtask Completed, the parent never heard);
* a subtask orchestration that Fails, one that is Terminated;
* the task hub unreachable for 20 s (every client call refused) while waves start and outcomes are raised;
* a parent restarted under its instance id after it was Terminated with subtasks in flight, and after it
  Completed.

Every task ends (Completed or Failed) with every subtask's outcome reported, and no outcome comes from a
previous run's subtask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from orchestrators.engine import (
    APPROVAL_EVENT,
    ORCHESTRATE_TASK,
    PLAN_TASK,
    REPORT_STATUS,
    RUN_SUBTASK,
    SUBTASK_ORCHESTRATOR,
    SUPERVISE_SECONDS,
    run_subtask,
)
from shared.names import SUBTASK_DONE_EVENT_PREFIX, subtask_instance_id
from tests.test_engine_replay import plan_of
from tests.test_engine_replay import request as replay_request
from tools.harness.app_index import functions, memory_services
from tools.harness.durable import FakeDurableClient, ReplayHarness

LATENCY = 10.0


@pytest.fixture(autouse=True)
def _services() -> Iterator[Any]:
    with memory_services() as services:
        yield services


def request(max_concurrency: int = 4) -> dict[str, Any]:
    """The replay tests' task request, with a window of 4 by default."""
    return replay_request(max_concurrency)


def said_by(payload: dict[str, Any]) -> dict[str, Any]:
    """RUN_SUBTASK's answer names the subtask instance that ran it: outcomes show which run they came from."""
    return {"ok": True, "summary": f"done by {payload['subtask_instance_id']}"}


class DrillClient(FakeDurableClient):
    """The harness's durable client with faults: outcome events of ``lose`` subtasks refused (NOTIFY_PARENT
    fails every attempt), and every call refused while the simulated clock is inside ``outage``."""

    def __init__(self, harness: ReplayHarness) -> None:
        super().__init__(harness)
        self.lose: set[str] = set()
        self.outage: tuple[datetime, datetime] | None = None
        self.refused = 0

    def _check(self) -> None:
        if self.outage is None or not self.harness.acting:
            return
        now = self.harness.acting[-1]
        if self.outage[0] <= now < self.outage[1]:
            self.refused += 1
            raise ConnectionError("task hub unreachable (drill)")

    async def start_new(self, orchestration_function_name: str, instance_id: str | None = None,
                        client_input: Any | None = None, version: str | None = None) -> str:
        self._check()
        return await super().start_new(orchestration_function_name, instance_id, client_input, version)

    async def get_status(self, instance_id: str, show_history: bool = False, show_history_output: bool = False,
                         show_input: bool = False) -> Any:
        self._check()
        return await super().get_status(instance_id, show_history, show_history_output, show_input)

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None,
                          task_hub_name: str | None = None, connection_name: str | None = None) -> None:
        self._check()
        if event_name.startswith(SUBTASK_DONE_EVENT_PREFIX) and event_name.rpartition("_")[2] in self.lose:
            raise ConnectionError(f"{event_name} lost (drill)")
        await super().raise_event(instance_id, event_name, event_data, task_hub_name, connection_name)


def drill(
    plan: dict[str, Any],
    run: Callable[[Any], Any] = said_by,
    orchestrators: dict[str, Any] | None = None,
) -> tuple[ReplayHarness, DrillClient, list[dict[str, Any]]]:
    reports: list[dict[str, Any]] = []

    def report(payload: dict[str, Any]) -> dict[str, Any]:
        reports.append(payload)
        return {"comment_id": 1}

    h = ReplayHarness.from_app(
        functions(),
        orchestrators=orchestrators or {},
        activities={PLAN_TASK: lambda _inp: plan, RUN_SUBTASK: run, REPORT_STATUS: report},
        latency=lambda name, _inp: LATENCY if name == RUN_SUBTASK else 0.0,
    )
    client = DrillClient(h)
    h.client = client
    return h, client, reports


def assert_ended_with_every_outcome(h: ReplayHarness, instance_id: str, n: int) -> dict[str, Any]:
    parent = h.instances[instance_id]
    assert parent.status in ("Completed", "Failed"), (parent.status, parent.waiting_for)
    if parent.status == "Completed":
        outcomes = parent.output["outcomes"]
        assert [o["id"] for o in outcomes] == [f"s{i:02d}" for i in range(n)]
        assert all(o["status"] in ("succeeded", "failed", "skipped") for o in outcomes)
        return dict(parent.output)
    return {}


CASES = [(n, lost) for n in (1, 3, 4, 5, 16) for lost in range(n)]


@pytest.mark.parametrize(("n", "lost"), CASES, ids=[f"n{n}-lost{lost}" for n, lost in CASES])
def test_a_lost_outcome_anywhere_in_the_plan_is_collected_by_supervision(n: int, lost: int) -> None:
    h, client, reports = drill(plan_of(n))
    client.lose = {f"s{lost:02d}"}
    run = h.run(ORCHESTRATE_TASK, request(4), instance_id=f"lose-{n}-{lost}")

    assert run.runtime_status == "Completed", (run.error, run.waiting_for)
    output = assert_ended_with_every_outcome(h, run.instance_id, n)
    assert output["succeeded"] == n  # the lost outcome was the subtask's own (Completed): collected, not failed
    assert reports[-1]["phase"] == "succeeded"
    # It took the supervision timer, not luck: the parent ended after one supervision interval at most.
    assert run.elapsed_seconds <= SUPERVISE_SECONDS + n * LATENCY + 60


def test_a_failed_and_a_terminated_subtask_are_failed_outcomes() -> None:
    crashing = "s01"
    def subtask(context: Any) -> Any:
        # The registered handle is what the worker calls; this one fails the s01 orchestration outright.
        def gen(ctx: Any) -> Any:
            data = ctx.get_input()
            if data["subtask"]["id"] == crashing:
                raise RuntimeError("subtask orchestration crashed")
            return (yield from run_subtask(ctx))

        return gen(context)

    handle = df.Orchestrator.create(subtask)
    h, client, reports = drill(plan_of(5))

    async def run(payload: dict[str, Any]) -> dict[str, Any]:
        if payload["subtask"]["id"] == "s03":  # s03 terminates s02 while both run
            victim = payload["subtask_instance_id"].rpartition(":")[0] + ":s02"
            await client.terminate(victim, "operator terminated it")
        return said_by(payload)

    h.activities[RUN_SUBTASK] = run
    h.orchestrators[SUBTASK_ORCHESTRATOR] = handle
    parent = h.run(ORCHESTRATE_TASK, request(4), instance_id="crash-1")

    assert parent.runtime_status == "Completed", parent.error
    by_id = {o["id"]: o for o in parent.output["outcomes"]}
    assert by_id["s01"]["status"] == "failed"
    assert "failed" in by_id["s01"]["error"]
    assert by_id["s02"]["status"] == "failed"
    assert "terminated" in by_id["s02"]["error"]
    assert {sid for sid, o in by_id.items() if o["status"] == "succeeded"} == {"s00", "s03", "s04"}
    assert reports[-1]["phase"] == "partial"


def test_a_20_second_task_hub_outage_loses_nothing() -> None:
    h, client, reports = drill(plan_of(16))
    # From just after the first wave was started until 20 s later: the first outcomes are raised inside it
    # (NOTIFY fails its 3 attempts), the refills' START_SUBTASKS fail.
    client.outage = (h.start + timedelta(seconds=LATENCY - 1), h.start + timedelta(seconds=LATENCY + 19))
    run = h.run(ORCHESTRATE_TASK, request(4), instance_id="blip-1")

    assert client.refused > 0
    assert run.runtime_status == "Completed", (run.error, run.waiting_for)
    output = assert_ended_with_every_outcome(h, "blip-1", 16)
    assert output["succeeded"] == 16
    started = [i for i in h.instances.values() if i.name == SUBTASK_ORCHESTRATOR]
    assert len(started) == 16  # each started once: the ones whose START failed were sent again, not doubled


def test_a_parent_restarted_under_its_id_never_adopts_the_previous_runs_subtasks() -> None:
    h, client, _ = drill(plan_of(3, writes=("s01",)))
    instance = "restart-1"
    first = h.start_instance(ORCHESTRATE_TASK, request(4), instance, h.start)
    first.run_until_idle(timer_horizon=h.start + timedelta(seconds=120))
    h.settle_all(horizon=h.start + timedelta(seconds=120))
    assert first.status == "Running"  # s01 waits for its approval
    old_run = first.custom_status["run"]
    asyncio.run(client.terminate(instance, "operator"))

    # Redelivery or recovery starts the id again (the extension allows it: the instance is Terminated).
    asyncio.run(client.start_new(ORCHESTRATE_TASK, instance, request(4)))
    restarted = h.instances[instance]
    h.settle_all(horizon=restarted.now + timedelta(seconds=120))
    new_run = restarted.custom_status["run"]
    assert new_run != old_run
    # The new run's gated subtask waits on its own instance; approve it (and, later, the old one).
    asyncio.run(client.raise_event(subtask_instance_id(instance, "s01", new_run), APPROVAL_EVENT, {"by": "m"}))
    asyncio.run(client.raise_event(subtask_instance_id(instance, "s01", old_run), APPROVAL_EVENT, {"by": "m"}))
    h.run_in_time_order()

    assert restarted.status == "Completed", restarted.error
    outcomes = restarted.output["outcomes"]
    assert [o["status"] for o in outcomes] == ["succeeded"] * 3
    expected = [f"done by {subtask_instance_id(instance, sid, new_run)}" for sid in ("s00", "s01", "s02")]
    assert [o["summary"] for o in outcomes] == expected
    for sid in ("s00", "s01", "s02"):
        assert subtask_instance_id(instance, sid, new_run) in h.instances

    # Completed, then started again under the same id: a third run with subtasks of its own.
    asyncio.run(client.start_new(ORCHESTRATE_TASK, instance, request(4)))
    third = h.instances[instance]
    h.settle_all(horizon=third.now + timedelta(seconds=120))
    third_run = third.custom_status["run"]
    assert third_run not in (old_run, new_run)
    gated = subtask_instance_id(instance, "s01", third_run)
    asyncio.run(client.raise_event(gated, APPROVAL_EVENT, {"by": "m"}))
    h.run_in_time_order()
    assert third.status == "Completed"
    assert all(f":{third_run}:" in o["summary"] for o in third.output["outcomes"])


def test_subtask_ids_stay_within_100_characters() -> None:
    parent = "p" * 100
    sid = "x" * 100
    long_id = subtask_instance_id(parent, sid, "0123456789ab")
    assert len(long_id) == 100
    assert long_id != subtask_instance_id(parent, sid, "ba9876543210")
    assert subtask_instance_id("inst", "s1", "r1") == "inst:r1:s1"


def test_recovery_restarts_a_continued_parent_from_its_request_not_its_carry() -> None:
    from shared.work.restart import restart_orchestration

    h, client, _ = drill(plan_of(8, writes=("s07",)))
    instance = "restart-carry"
    first = h.start_instance(ORCHESTRATE_TASK, request(4), instance, h.start)
    first.run_until_idle(timer_horizon=h.start + timedelta(seconds=120))
    h.settle_all(horizon=h.start + timedelta(seconds=120))
    old_run = first.custom_status["run"]
    asyncio.run(client.terminate(instance, "operator"))
    carried = asyncio.run(client.get_status(instance, show_input=True)).input_
    assert carried["run"] == old_run  # it had continued as new: its input is the carry of the old run

    asyncio.run(restart_orchestration(client, ORCHESTRATE_TASK, instance, carried))
    again = h.instances[instance]
    h.settle_all(horizon=again.now + timedelta(seconds=120))
    new_run = again.custom_status["run"]
    assert new_run != old_run
    asyncio.run(client.raise_event(subtask_instance_id(instance, "s07", new_run), APPROVAL_EVENT, {"by": "m"}))
    h.run_in_time_order()
    assert again.status == "Completed", again.error
    assert all(f":{new_run}:" in o["summary"] for o in again.output["outcomes"])
