"""``/reynolds approve`` and ``/reynolds cancel`` reach the real subtask orchestrations (no stand-in client).

The replay harness registers every subtask orchestration as an instance of its own, so the command handler's
``raise_event`` reaches a gated subtask the way it would on the task hub; the world's clock only moves when
the test moves it, so an approval gate stays open until someone answers.
"""

from __future__ import annotations

from typing import Any

from shared import names
from tools.simulate_tasks import TRACKING_REPO, post_task, prepare
from tools.world import World, build_world

TASK = {"task": {"type": "maintenance", "description": "Tidy the release.",
                 "components": ["review the changelog", "open an issue for the flaky login test"]},
        "strategy": {"approach": "parallel_optimized", "max_concurrency": 8}}


def _gated_plan(n: int) -> dict[str, Any]:
    return {"planner": "offline", "subtasks": [
        {"id": f"g{i:02d}", "title": f"change {i}", "specialist": "devops", "writes": True} for i in range(n)]}


async def _start(world: World, plan: dict[str, Any] | None = None) -> tuple[str, int]:
    prepare(world)
    if plan is not None:
        world.client.harness.activities[names.PLAN_TASK] = lambda _payload: plan
    status, answer = await post_task(world, TASK)
    assert status == 202
    issue = next(w for w in world.reynolds_writes if w.kind == "issue")
    return answer["instance_id"], issue.number


def _subtasks(world: World, instance: str) -> dict[str, Any]:
    return {i.instance_id: i for i in world.client.harness.instances.values()
            if i.name == names.SUBTASK_ORCHESTRATOR and i.instance_id.startswith(f"{instance}:")}


async def test_approve_reaches_the_waiting_subtask_and_the_task_finishes() -> None:
    with build_world() as world:
        instance, number = await _start(world, _gated_plan(1))
        status = await world.client.get_status(instance)
        assert status.custom_status["waiting"] == 1
        gated = names.subtask_instance_id(instance, "g00", status.custom_status["run"])
        assert (await world.client.get_status(gated)).runtime_status.value == "Running"
        world.github.add_user("maria")
        world.github.set_association(TRACKING_REPO, "maria", "COLLABORATOR")
        await world.comment(TRACKING_REPO, number, "/reynolds approve", "maria")
        done = await world.client.get_status(instance)
        assert done.runtime_status.value == "Completed"
        assert [o["status"] for o in done.output["outcomes"]] == ["succeeded"]
        assert world.client.events_raised[0] == (gated, names.APPROVAL_EVENT,
                                                 {"approved": True, "by": "maria"})


async def test_cancel_on_forty_gated_subtasks_ends_the_task_and_its_subtasks() -> None:
    with build_world() as world:
        instance, number = await _start(world, _gated_plan(40))
        started = _subtasks(world, instance)
        assert len(started) == 8
        assert {i.status for i in started.values()} == {"Running"}  # all waiting for an approval
        world.clock.advance(60)
        world.github.add_user("olivia")
        world.github.set_association(TRACKING_REPO, "olivia", "OWNER")
        await world.comment(TRACKING_REPO, number, "/reynolds cancel", "olivia")
        parent = world.client.run_of(instance)
        assert parent.runtime_status == "Completed"
        assert parent.output["cancelled"] is True
        assert parent.finished_at_seconds is not None
        # Ends at the cancel (the world's clock also moved a few seconds for the writes): nothing holds it open.
        assert 60 <= parent.finished_at_seconds <= 60 + 120
        after = _subtasks(world, instance)
        assert len(after) == 8  # no new subtask started
        assert [i.status for i in after.values() if i.status == "Running"] == []
        assert {i.output["error"] for i in after.values()} == {"cancelled by olivia"}


async def test_cancel_on_a_finished_task_answers_that_it_already_ended() -> None:
    with build_world() as world:
        plan = {"planner": "offline", "subtasks": [{"id": "a", "title": "read", "specialist": "devops"}]}
        instance, number = await _start(world, plan)
        assert (await world.client.get_status(instance)).runtime_status.value == "Completed"
        world.github.add_user("olivia")
        world.github.set_association(TRACKING_REPO, "olivia", "OWNER")
        before = len(world.reynolds_writes)
        status, _ = await world.comment(TRACKING_REPO, number, "/reynolds cancel", "olivia")
        assert status < 300
        await world.client.advance(None)
        bodies = [str(w.resource.get("body") or "") for w in world.reynolds_writes[before:]]
        assert any("already ended" in body and "nothing to cancel" in body for body in bodies), bodies
        assert (await world.client.get_status(instance)).runtime_status.value == "Completed"


async def test_a_report_committed_late_never_replaces_a_newer_one_on_the_status_comment() -> None:
    import asyncio

    from shared.work.task_report import ReportPayload, TaskReporter

    with build_world() as world:
        plan = {"planner": "offline", "subtasks": [{"id": "a", "title": "read", "specialist": "devops"}]}
        instance, number = await _start(world, plan)
        status = await world.client.get_status(instance)
        assert status.runtime_status.value == "Completed"
        run = status.custom_status["run"]

        def status_body() -> str:
            return next(c["body"] for c in world.github.comments(TRACKING_REPO, number)
                        if f"Instance: `{instance}`" in c["body"])

        done = status_body()
        assert "Done" in done
        # The needs-approval report (sequence 2) of the same run, committed after the final one (sequence 3).
        late = ReportPayload(instance_id=instance, run=run, idempotency_key=f"{instance}:{run}:report:2",
                             sequence=2, final=False, phase="needs_approval", title="maintenance: Tidy the release.",
                             tracking_issue=f"{TRACKING_REPO}#{number}", event_id="e", chain_id="c")
        result = await asyncio.to_thread(TaskReporter(world.services).report, late)
        assert result.edited is False
        assert status_body() == done
