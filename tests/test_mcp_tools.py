"""The MCP tools' handlers, called in-process with the JSON context the Functions MCP extension sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.platforms.github.pacer import set_pacer
from shared.work.wisdom import get_reynolds_wisdom
from tools.harness.app_index import by_name
from tools.simulate import raw_body
from tools.simulate_tasks import TASK_SETTINGS, prepare
from tools.world import World, build_world, call_function

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "issues-opened.json"
TASK = {"type": "review", "description": "Review the retry logic", "components": ["api", "worker", "ci"]}


@pytest.fixture
def world() -> Iterator[World]:
    with build_world(extra_settings=TASK_SETTINGS) as built:
        prepare(built)
        yield built
        set_pacer(None)
        built.github.assert_no_unexpected()


async def tool(name: str, arguments: Any, client: Any = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"context": json.dumps({"arguments": arguments})}
    if client is not None:
        kwargs["client"] = client
    answer = await call_function(name, **kwargs)
    assert isinstance(answer, str)  # MCP tools answer JSON text
    result: dict[str, Any] = json.loads(answer)
    return result


def test_tools_are_declared_with_their_properties() -> None:
    binding = json.loads(by_name("mcp_orchestrate_task").get_function_json())["bindings"]
    trigger = next(b for b in binding if b["type"] == "mcpToolTrigger")
    properties = {p["propertyName"]: p for p in json.loads(trigger["toolProperties"])}
    assert trigger["toolName"] == "orchestrate_task"
    assert properties["task"]["isRequired"] is True
    assert properties["strategy"]["isRequired"] is False


async def test_orchestrate_task_starts_once_per_idempotency_key(world: World) -> None:
    first = await tool("mcp_orchestrate_task", {"task": TASK, "idempotency_key": "k1"}, world.client)
    second = await tool("mcp_orchestrate_task", {"task": TASK, "idempotency_key": "k1"}, world.client)
    assert first["started"] is True
    assert second["started"] is False
    assert first["instance_id"] == second["instance_id"]
    assert first["status_url"] == f"/api/orchestrations/{first['instance_id']}"
    status = await world.client.get_status(first["instance_id"])
    assert status.runtime_status.value == "Completed"
    assert world.client.starts == 1


async def test_invalid_arguments_answer_field_errors(world: World) -> None:
    answer = await tool("mcp_orchestrate_task", {"task": {"type": "x"}, "bogus": 1}, world.client)
    assert answer["error"] == "invalid arguments"
    assert {"task.description", "bogus"} <= {error["loc"] for error in answer["errors"]}
    assert world.client.starts == 0
    not_json = await call_function("mcp_get_chain", context="{oops")
    assert json.loads(not_json)["errors"][0]["type"] == "json_invalid"


async def test_analyze_orchestration_potential(world: World) -> None:
    answer = await tool("mcp_analyze_orchestration_potential", {"task": TASK, "strategy": {"max_concurrency": 2}})
    assert answer["analysis"]["subtasks"] == 4
    assert answer["analysis"]["max_concurrency"] == 2
    assert answer["plan"]["planner"] == "offline"


async def test_get_agent_status_filters_by_specialist(world: World) -> None:
    await tool("mcp_orchestrate_task", {"task": TASK}, world.client)
    everyone = await tool("mcp_get_agent_status", {})
    assert len(everyone["agents"]) == 3
    devops = await tool("mcp_get_agent_status", {"specialist": "devops"})
    assert [a["specialist"] for a in devops["agents"]] == ["devops"]
    assert devops["agents"][0]["calls"] == 1  # "ci" routes to DevOps
    assert "errors" in await tool("mcp_get_agent_status", {"specialist": "wizard"})


async def test_get_chain_explores_a_real_chain(world: World) -> None:
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    world.seed_from_payload(sample["body"])
    _, answer = await world.post_github(sample["headers"], raw_body(sample["body"]))
    chain = await tool("mcp_get_chain", {"chain_id": answer["chain_id"]})
    assert chain["found"] is True
    assert chain["chain_id"] == answer["chain_id"]
    assert [event["event_id"] for event in chain["events"]] == [answer["event_id"]]
    assert chain["effects"]
    assert await tool("mcp_get_chain", {"chain_id": "c-unknown"}) == {"chain_id": "c-unknown", "found": False}


async def test_get_reynolds_wisdom_is_deterministic(world: World) -> None:
    answer = await tool("mcp_get_reynolds_wisdom", {"situation": "two bots in a loop"})
    assert answer["wisdom"] == get_reynolds_wisdom("two bots in a loop")
    assert (await tool("mcp_get_reynolds_wisdom", {}))["wisdom"] == get_reynolds_wisdom("")
