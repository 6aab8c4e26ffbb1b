"""Finding 5: size and nesting limits before parsing at every door, authentication before parsing.

Deeply nested JSON used to reach ``json.loads`` and end in ``RecursionError``: a 500 with a logged traceback
over HTTP, and a Service Bus message retried instead of dead-lettered. Every door now answers 4xx (or
dead-letters with a reason) and writes nothing; the Teams webhook checks size and HMAC before it reads a byte.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from azure.servicebus import ServiceBusMessage

from shared.platforms.limits import MAX_JSON_DEPTH, NestingTooDeep, check_json, json_depth
from shared.store.memory import MemoryStore
from tools.simulate_tasks import prepare
from tools.world import SIMULATE_GRAPH_CLIENT_STATE, World, build_world, call_function

DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000
DEEP_LIST = b"[" * 5000 + b"]" * 5000


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with build_world() as built:
        prepare(built)
        yield built


def _state(world: World) -> tuple[int, int, int, int, int]:
    store = world.store
    assert isinstance(store, MemoryStore)
    return (len(store._docs), world.client.starts, len(world.github.writes()), len(world.graph.subscriptions),
            len(world.publisher.sent))


def test_depth_is_measured_without_parsing() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(DEEP) == 5000
    with pytest.raises(NestingTooDeep):
        check_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    check_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)


async def test_graph_deep_body_is_400_without_a_traceback(world: World, caplog: pytest.LogCaptureFixture) -> None:
    before = _state(world)
    body = b'{"value":[{"clientState":"' + SIMULATE_GRAPH_CLIENT_STATE.encode() + b'","x":' + DEEP_LIST + b"}]}"
    with caplog.at_level(logging.ERROR):
        status, _answer, _ = await world.post_graph(body)
    assert status == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert _state(world) == before


@pytest.mark.parametrize("authorization", [None, "HMAC AAAA", "auto"])
async def test_teams_deep_body_is_refused_before_any_parse(world: World, authorization: str | None) -> None:
    before = _state(world)
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    status, _answer, _ = await world.post_teams(headers, DEEP)
    assert status == (400 if authorization == "auto" else 401)
    assert _state(world) == before


async def test_teams_oversized_body_is_413_before_the_hmac(world: World) -> None:
    before = _state(world)
    status, _answer, _ = await world.post_teams({"Authorization": "HMAC AAAA"}, b" " * (300 * 1024))
    assert status == 413
    assert _state(world) == before


async def test_github_signed_deep_body_is_400(world: World) -> None:
    before = _state(world)
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "deep-1", "X-Hub-Signature-256": "auto",
               "Content-Type": "application/json"}
    status, answer = await world.post_github(headers, DEEP)
    assert (status, answer["verdict"]) == (400, "rejected")
    assert _state(world) == before


async def _api(name: str, body: bytes, world: World, route: dict[str, str] | None = None) -> tuple[int, Any]:
    request = func.HttpRequest(method="POST", url="http://localhost/api/x", headers={}, params={},
                               route_params=route or {}, body=body)
    kwargs: dict[str, Any] = {"req": request}
    if name != "api_analyze":
        kwargs["client"] = world.client
    response = await call_function(name, **kwargs)
    return response.status_code, json.loads(response.get_body() or b"{}")


@pytest.mark.parametrize("name", ["api_start_orchestration", "api_analyze", "api_approve_orchestration"])
async def test_api_deep_body_is_400(world: World, name: str) -> None:
    before = _state(world)
    status, _answer = await _api(name, DEEP, world, {"instance_id": "task-x"})
    assert status == 400
    assert _state(world) == before


@pytest.mark.parametrize("name", ["mcp_orchestrate_task", "mcp_get_chain", "mcp_analyze_orchestration_potential"])
async def test_mcp_deep_context_is_invalid_arguments(world: World, name: str) -> None:
    before = _state(world)
    kwargs: dict[str, Any] = {"context": DEEP.decode()}
    if name == "mcp_orchestrate_task":
        kwargs["client"] = world.client
    answer = json.loads(await call_function(name, **kwargs))
    assert answer["error"] == "invalid arguments"
    assert _state(world) == before


async def test_servicebus_deep_message_is_dead_lettered_with_its_reason(world: World) -> None:
    before = _state(world)
    message = ServiceBusMessage(DEEP, message_id="deep-1", content_type="application/cloudevents+json")
    settlement = await world.deliver_servicebus(message)
    assert settlement.outcome == "dead-lettered"
    assert settlement.reason is not None
    assert settlement.reason.startswith("nesting-too-deep")
    assert _state(world) == before
