"""Work asked for over Service Bus or Teams is orchestrated and reported on a GitHub tracking issue."""

from __future__ import annotations

import json
from typing import Any

from azure.servicebus import ServiceBusMessage

from shared.loop.lineage import instance_id_for
from tools.simulate_tasks import TRACKING_REPO, prepare
from tools.world import World, build_world

TASK = {"type": "maintenance", "description": "Review the release notes.",
        "components": ["changelog review", "dependency audit"]}


def _task_message(message_id: str, data: dict[str, Any], kind: str = "bot") -> ServiceBusMessage:
    event = {"specversion": "1.0", "id": message_id, "source": "/ops/release-bot", "type": "com.contoso.task",
             "time": "2026-01-01T00:01:00Z", "data": data, "actorlogin": "release-bot", "actorkind": kind}
    return ServiceBusMessage(json.dumps(event).encode(), message_id=message_id,
                             content_type="application/cloudevents+json")


def _tracking_issues(world: World) -> list[Any]:
    return [w for w in world.reynolds_writes if w.kind == "issue" and w.repo == TRACKING_REPO]


async def test_a_task_on_the_queue_runs_orchestrate_task_with_a_tracking_issue() -> None:
    with build_world() as world:
        prepare(world)
        message = _task_message("task-1", {"task": TASK, "strategy": {"max_concurrency": 2}})
        settlement = await world.deliver_servicebus(message)
        assert settlement.outcome == "completed"
        instance = instance_id_for("servicebus:task-1")
        await world.client.advance(None)
        status = await world.client.get_status(instance)
        assert status.name == "orchestrate_task_orchestrator"
        assert await world.runtime_status(instance) == "Completed"
        (issue,) = _tracking_issues(world)
        assert "Review the release notes" in str(issue.resource.get("body"))
        assert world.publisher.sent == []  # the work is reported on GitHub, nothing goes back to the queue
        again = await world.deliver_servicebus(message)  # the broker redelivers: runs once
        assert again.outcome == "completed"
        assert len(_tracking_issues(world)) == 1


async def test_an_invalid_task_is_dead_lettered_with_the_reason() -> None:
    with build_world() as world:
        settlement = await world.deliver_servicebus(_task_message("task-2", {"task": {"type": "x"}}))
        assert settlement.outcome == "dead-lettered"
        assert settlement.reason is not None
        assert settlement.reason == "schema-invalid: invalid task: task.description: Field required"


async def test_a_teams_message_asking_for_a_task_opens_a_tracking_issue() -> None:
    with build_world() as world:
        prepare(world)
        activity = {
            "type": "message", "id": "1700000000777", "timestamp": "2026-01-01T00:00:05.1234567Z",
            "from": {"id": "29:1a2b3c", "name": "Ada Lovelace", "aadObjectId": "aad-ada"},
            "conversation": {"id": "19:abc@thread.skype;messageid=1700000000777", "conversationType": "channel",
                             "tenantId": "tenant-0001"},
            "channelData": {"teamsTeamId": "19:team@thread.skype", "teamsChannelId": "19:chan@thread.skype",
                            "team": {"id": "19:team@thread.skype", "aadGroupId": "team-1"},
                            "channel": {"id": "19:chan@thread.skype"}},
            "text": "<at>Reynolds</at> task: audit the CI workflows; review the deploy scripts",
        }
        status, answer, _ = await world.post_teams({"Authorization": "auto"}, json.dumps(activity).encode())
        assert status == 200
        instance = instance_id_for("teams:1700000000777")
        await world.client.advance(None)
        assert (await world.client.get_status(instance)).name == "orchestrate_task_orchestrator"
        assert await world.runtime_status(instance) == "Completed"
        (issue,) = _tracking_issues(world)
        assert "audit the CI workflows" in str(issue.resource.get("body"))


async def test_a_teams_task_seen_through_graph_runs_as_a_sub_orchestration() -> None:
    with build_world() as world:
        prepare(world)
        await world.ensure_subscriptions()
        message = world.graph.post_as_user("<p>task: check the nightly backup job</p>", team="team-0001",
                                           channel="19:chan@thread.skype")
        answers = await world.deliver_notifications()
        assert [status for status, _ in answers] == [202]
        instance = instance_id_for(f"teams:{message['id']}")
        await world.client.advance(None)
        run = world.client.run_of(instance)
        assert run.runtime_status == "Completed"
        assert run.output["task"]["succeeded"] >= 1
        (issue,) = _tracking_issues(world)
        assert "check the nightly backup job" in str(issue.resource.get("body"))
        assert world.teams_writes == []  # the work is reported on its tracking issue
