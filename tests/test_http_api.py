"""The HTTP API, called in-process with real ``func.HttpRequest`` objects against the world."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import pytest

from orchestrators.engine import SubtaskInput
from shared import names
from shared.errors import StoreError
from shared.platforms.github.pacer import set_pacer
from shared.services import Services, set_services
from shared.settings import Settings
from shared.store.memory import MemoryStore
from shared.work.tasks import Subtask, TaskSpec
from tools.simulate_tasks import TASK_SETTINGS, prepare
from tools.world import World, build_world, call_function

TASK = {"task": {"type": "review", "description": "Review the retry logic", "components": ["api", "worker"]},
        "strategy": {"approach": "parallel_optimized", "max_concurrency": 4}}


@pytest.fixture
def world() -> Iterator[World]:
    with build_world(extra_settings=TASK_SETTINGS) as built:
        prepare(built)
        yield built
        set_pacer(None)
        built.github.assert_no_unexpected()


def request(method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None,
            route_params: dict[str, str] | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return func.HttpRequest(method=method, url=f"http://localhost:7071{url}", headers=headers or {}, params={},
                            route_params=route_params or {}, body=raw)


async def call(name: str, req: func.HttpRequest, client: Any = None) -> tuple[int, dict[str, Any]]:
    kwargs: dict[str, Any] = {"req": req}
    if client is not None:
        kwargs["client"] = client
    response = await call_function(name, **kwargs)
    return response.status_code, json.loads(response.get_body() or b"{}")


async def start(world: World, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    return await call("api_start_orchestration", request("POST", "/api/orchestrations", body, headers=headers),
                      world.client)


# --- start and status -------------------------------------------------------------------------------------------


async def test_start_answers_202_with_the_status_url_and_the_run_completes(world: World) -> None:
    response = await call_function("api_start_orchestration", req=request("POST", "/api/orchestrations", TASK),
                                   client=world.client)
    assert response.status_code == 202
    answer = json.loads(response.get_body())
    assert answer["status_url"] == f"/api/orchestrations/{answer['instance_id']}"
    assert response.headers["Location"] == answer["status_url"]

    status, body = await call("api_get_orchestration",
                              request("GET", answer["status_url"], route_params={"instance_id": answer["instance_id"]}),
                              world.client)
    assert status == 200
    assert body["runtime_status"] == "Completed"
    assert body["output"]["succeeded"] == 3
    assert body["custom_status"]["phase"] == "succeeded"
    (_, _, started_input), = world.client.start_log
    assert started_input["event_id"] == f"api-{answer['instance_id']}"
    assert started_input["depth"] == 0


async def test_idempotency_key_never_starts_a_second_run(world: World) -> None:
    first = await start(world, TASK, {"Idempotency-Key": "abc-123"})
    second = await start(world, TASK, {"Idempotency-Key": "abc-123"})
    other = await start(world, TASK, {"Idempotency-Key": "abc-124"})
    assert first[0] == second[0] == 202
    assert first[1]["instance_id"] == second[1]["instance_id"] != other[1]["instance_id"]
    assert (first[1]["started"], second[1]["started"]) == (True, False)
    assert world.client.starts == 2


async def test_without_a_key_every_start_is_a_new_run(world: World) -> None:
    first = await start(world, TASK)
    second = await start(world, TASK)
    assert first[1]["instance_id"] != second[1]["instance_id"]


@pytest.mark.parametrize(("body", "loc"), [
    (b"{not json", "body"),
    ({"task": {"type": "review"}}, "task.description"),
    ({"task": {"type": "review", "description": "x"}, "strategy": {"max_concurrency": 0}},
     "strategy.max_concurrency"),
    ({**TASK, "event_id": "forged"}, "event_id"),
    ({**TASK, "tracking_issue": "not-an-issue"}, "tracking_issue"),
])
async def test_invalid_bodies_are_422_with_field_errors(world: World, body: Any, loc: str) -> None:
    status, answer = await start(world, body)
    assert status == 422
    assert loc in [error["loc"] for error in answer["errors"]]
    assert world.client.starts == 0


@pytest.mark.parametrize("instance_id", ["unknown-instance", "bad/id"])
async def test_unknown_orchestration_is_404(world: World, instance_id: str) -> None:
    status, _ = await call("api_get_orchestration",
                           request("GET", "/api/orchestrations/x", route_params={"instance_id": instance_id}),
                           world.client)
    assert status == 404
    status, _ = await call("api_approve_orchestration",
                           request("POST", "/api/orchestrations/x/approve", {},
                                   route_params={"instance_id": instance_id}), world.client)
    assert status == 404


# --- approvals ----------------------------------------------------------------------------------------------------


@dataclass
class ParentStatus:
    runtime_status: str
    custom_status: Any
    name: str = names.ORCHESTRATE_TASK
    output: Any = None


@dataclass
class ApprovalClient:
    """A hand-written client: the parent's status is given; events go to the world's client (or are recorded)."""

    parent_id: str
    custom_status: Any
    forward_to: Any = None
    raised: list[tuple[str, str, Any]] = field(default_factory=list)

    async def get_status(self, instance_id: str) -> ParentStatus | None:
        return ParentStatus("Running", self.custom_status) if instance_id == self.parent_id else None

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        self.raised.append((instance_id, event_name, event_data))
        if self.forward_to is not None:
            await self.forward_to.raise_event(instance_id, event_name, event_data)


async def approve(client: Any, instance_id: str, body: Any) -> tuple[int, dict[str, Any]]:
    return await call("api_approve_orchestration",
                      request("POST", f"/api/orchestrations/{instance_id}/approve", body,
                              route_params={"instance_id": instance_id}), client)


async def test_approve_all_raises_the_event_on_every_waiting_subtask(world: World) -> None:
    client = ApprovalClient("p1", {"phase": "running", "subtasks": {"s1": "waiting", "s2": "running", "s3": "waiting"}})
    status, answer = await approve(client, "p1", None)
    assert status == 202
    assert answer["approved"] == ["s1", "s3"]
    assert client.raised == [("p1:s1", names.APPROVAL_EVENT, {"approved": True, "by": "api"}),
                             ("p1:s3", names.APPROVAL_EVENT, {"approved": True, "by": "api"})]


async def test_approving_a_subtask_that_does_not_wait_is_409(world: World) -> None:
    client = ApprovalClient("p1", {"subtasks": {"s1": "running"}})
    assert (await approve(client, "p1", {"subtask": "s1"}))[0] == 409
    assert (await approve(client, "p1", {}))[0] == 409
    assert (await approve(client, "p1", {"subtask": "s1", "extra": 1}))[0] == 422
    assert client.raised == []


async def test_the_approval_lets_the_gated_subtask_run(world: World) -> None:
    # The gated subtask runs as its own instance under the derived id, exactly as the engine starts it.
    child_id = "p2:s1"
    sub_input = SubtaskInput(parent_instance_id="p2", subtask=Subtask(id="s1", title="Open an issue",
                                                                       specialist="devops", writes=True),
                             task=TaskSpec(type="ops", description="Open an issue"), event_id="e", chain_id="c")
    await world.client.start_new(names.SUBTASK_ORCHESTRATOR, child_id, sub_input.model_dump(mode="json"))
    assert (await world.client.get_status(child_id)).custom_status == {"state": "waiting", "attempt": 0}

    client = ApprovalClient("p2", {"subtasks": {"s1": "waiting"}}, forward_to=world.client)
    status, answer = await approve(client, "p2", {"subtask": "s1", "by": "octocat"})
    assert status == 202
    assert answer["approved"] == ["s1"]
    done = await world.client.get_status(child_id)
    assert done.runtime_status.value == "Completed"
    assert done.output["status"] == "succeeded"
    assert done.output["summary"] == "devops (offline): Open an issue"


# --- analyze, agents, health, status ------------------------------------------------------------------------------


async def test_analyze_plans_and_predicts_with_default_durations(world: World) -> None:
    status, answer = await call("api_analyze", request("POST", "/api/analyze", TASK))
    assert status == 200
    assert answer["mode"] == "offline"
    assert len(answer["plan"]["subtasks"]) == 3
    assert answer["analysis"]["levels"] == [["s1", "s2"], ["s3"]]
    assert set(answer["durations"].values()) == {1.0}
    assert (await call("api_analyze", request("POST", "/api/analyze", {"task": {}})))[0] == 422


async def test_agents_show_learned_statistics_after_a_run(world: World) -> None:
    await start(world, TASK)
    status, answer = await call("api_agents", request("GET", "/api/agents"))
    assert status == 200
    by_name = {agent["specialist"]: agent for agent in answer["agents"]}
    assert set(by_name) == {"devops", "platform", "code_intelligence"}
    assert by_name["code_intelligence"]["calls"] == 3
    assert by_name["code_intelligence"]["success_rate"] == 1.0
    assert by_name["code_intelligence"]["p50_seconds"] is not None
    assert by_name["code_intelligence"]["breaker"] == "closed"
    assert by_name["platform"]["calls"] == 0


async def test_health_is_200_when_everything_answers(world: World) -> None:
    status, answer = await call("api_health", request("GET", "/api/health"))
    assert status == 200
    assert answer == {"status": "healthy", "store": "reachable", "missing_settings": [], "model": "offline",
                      "graph": {"status": "not_checked", "reason": "GRAPH_API_URL is not Microsoft Graph"}}


async def test_health_is_503_naming_missing_settings() -> None:
    set_services(Services(settings=Settings.model_validate({"LINEAGE_STORE": "memory"}), store=MemoryStore()))
    try:
        status, answer = await call("api_health", request("GET", "/api/health"))
    finally:
        set_services(None)
    assert status == 503
    assert "REYNOLDS_MARKER_KEY" in answer["missing_settings"]
    assert "GITHUB_WEBHOOK_SECRET" in answer["missing_settings"]


class DownStore(MemoryStore):
    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        raise StoreError("connection refused")


async def test_health_is_503_when_the_store_does_not_answer(world: World) -> None:
    set_services(Services(settings=world.settings, store=DownStore()))
    status, answer = await call("api_health", request("GET", "/api/health"))
    assert status == 503
    assert answer["store"] == "unreachable"


async def test_status_reports_version_profile_and_counts(world: World) -> None:
    await start(world, TASK)
    status, answer = await call("api_status", request("GET", "/api/status"))
    assert status == 200
    assert answer["version"] == "0.1.0"
    assert answer["profile"] == "default"
    assert answer["counts"]["orchestrations"] == {"total": 1, "succeeded": 1}
    assert answer["counts"]["subtask_attempts"] == 3
