"""``/reynolds`` commands in GitHub comments reach the orchestration that reports on the issue."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from tools.fakes.github import WriteEvent
from tools.simulate_tasks import TRACKING_REPO, post_task, prepare
from tools.world import World, build_world

TASK = {"task": {"type": "maintenance", "description": "Tidy the release.",
                 "components": ["review the changelog", "open an issue for the flaky login test"]},
        "strategy": {"approach": "parallel_optimized", "max_concurrency": 4}}


async def _comment(world: World, number: int, body: str, login: str) -> tuple[int, dict[str, Any]]:
    """A person comments on the tracking issue; GitHub delivers it to the webhook."""
    return await world.comment(TRACKING_REPO, number, body, login)


class ParentWaiting:
    """The world's durable client, except that the task's parent instance reports a subtask waiting.

    The replay harness runs a sub-orchestration's approval timer to its end (it pauses only the top-level
    instance's timers), so the waiting state is stood in here; the engine's reaction to an approval event is
    proven in ``tests/test_engine_replay.py``.
    """

    def __init__(self, inner: Any, instance: str, waiting: str) -> None:
        self.inner, self.instance, self.waiting = inner, instance, waiting
        self.raised: list[tuple[str, str, Any]] = []

    async def get_status(self, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        if instance_id == self.instance:
            return SimpleNamespace(runtime_status=OrchestrationRuntimeStatus.Running,
                                   custom_status={"phase": "needs_approval", "subtasks": {self.waiting: "waiting"},
                                                  "done": 1, "waiting": 1})
        return await self.inner.get_status(instance_id, *args, **kwargs)

    async def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        self.raised.append((instance_id, name, data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _waiting_task(world: World) -> tuple[str, int, ParentWaiting]:
    prepare(world)
    status, answer = await post_task(world, TASK)
    assert status == 202
    instance = answer["instance_id"]
    issue = next(w for w in world.reynolds_writes if w.kind == "issue")
    stub = ParentWaiting(world.client, instance, "s2")
    world.client = stub  # type: ignore[assignment]
    return instance, issue.number, stub


def _last_reply(world: World) -> str:
    return str(world.reynolds_writes[-1].resource.get("body") or "")


async def test_a_collaborator_approves_a_waiting_subtask_from_the_issue() -> None:
    with build_world() as world:
        instance, number, stub = await _waiting_task(world)
        world.github.add_user("maria")
        world.github.set_association(TRACKING_REPO, "maria", "COLLABORATOR")
        status, answer = await _comment(world, number, "/reynolds approve", "maria")
        assert status == 202
        assert answer["verdict"] == "accepted"
        assert stub.raised == [(f"{instance}:s2", "approval", {"approved": True, "by": "maria"})]
        assert "Approved by maria: `s2`" in _last_reply(world)


async def test_approval_from_someone_without_write_access_is_refused_with_a_reply() -> None:
    with build_world() as world:
        _instance, number, stub = await _waiting_task(world)
        world.github.add_user("mallory")
        status, _answer = await _comment(world, number, "/reynolds approve", "mallory")
        assert status == 202
        assert stub.raised == []
        reply = _last_reply(world)
        assert "### Reynolds · command" in reply
        assert "NONE" in reply or "write access" in reply.lower() or "collaborator" in reply.lower()


async def test_status_and_cancel_commands() -> None:
    with build_world() as world:
        instance, number, stub = await _waiting_task(world)
        world.github.add_user("olivia")
        world.github.set_association(TRACKING_REPO, "olivia", "OWNER")
        await _comment(world, number, "/reynolds status", "olivia")
        assert f"Orchestration `{instance}`: `Running` (done 1, waiting 1)" in _last_reply(world)
        await _comment(world, number, "/reynolds cancel", "olivia")
        assert stub.raised == [(instance, "cancel", {"by": "olivia"})]
        assert "Cancelling" in _last_reply(world)


async def test_a_redelivered_command_acts_once() -> None:
    with build_world() as world:
        _instance, number, stub = await _waiting_task(world)
        world.github.add_user("maria")
        world.github.set_association(TRACKING_REPO, "maria", "MEMBER")
        captured: list[WriteEvent] = []
        world.github.on_write.append(captured.append)
        world.github.create_comment(TRACKING_REPO, number, "/reynolds approve s2", "maria")
        event = world.github.webhook_for(captured[0])
        assert event is not None
        headers = {"X-GitHub-Event": event[0], "X-GitHub-Delivery": "cmd-redelivered",
                   "X-Hub-Signature-256": "auto", "Content-Type": "application/json"}
        answers = [await world.post_github(headers, json.dumps(event[1]).encode()) for _ in range(3)]
        assert [a["verdict"] for _, a in answers] == ["accepted", "duplicate", "duplicate"]
        assert len(stub.raised) == 1
