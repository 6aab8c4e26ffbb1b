"""Bad-input corpus: every door of the registered Function App, fed what an attacker or a broken client sends.

Each case goes through the real handler in-process (``func.HttpRequest``, the host's Service Bus message, MCP
tool context) and asserts the door's answer — a 4xx over HTTP, an MCP error, a dead-letter with its reason on
Service Bus, or Graph's documented 202 that drops the forged items — and that nothing was written: no store
document, no orchestration start, no GitHub write, no Graph subscription or message, no Service Bus message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest
from azure.servicebus import ServiceBusMessage

from shared.platforms.github.events import MAX_BODY_BYTES as GITHUB_MAX
from shared.store.memory import MemoryStore
from tools.simulate_tasks import prepare
from tools.world import SIMULATE_GRAPH_CLIENT_STATE, World, build_world, call_function

DEEP = b'{"a":' * 3000 + b"1" + b"}" * 3000
ISSUE = {"action": "opened", "repository": {"full_name": "octo/app"},
         "issue": {"id": 42, "number": 1, "title": "t", "updated_at": "2026-01-01T00:00:00Z", "user": {"login": "a"}},
         "sender": {"login": "alice", "type": "User", "id": 3}}
ISSUE_BYTES = json.dumps(ISSUE).encode()
ACTIVITY = {"type": "message", "id": "1700000099999", "timestamp": "2026-01-01T00:00:00Z",
            "from": {"id": "29:ada", "name": "Ada", "aadObjectId": "aad-ada"},
            "conversation": {"id": "19:chat@thread.v2", "conversationType": "groupChat", "tenantId": "t"},
            "text": "<at>Reynolds</at> hello"}
CE = {"specversion": "1.0", "id": "ce-1", "source": "/ci", "type": "com.ci.note", "time": "2026-01-01T00:00:00Z",
      "data": {"text": "hello"}, "actorkind": "human"}


@dataclass(frozen=True)
class Case:
    """One bad input: the door, what is sent, and what the door must answer."""

    door: str
    name: str
    send: Callable[[World], Any]
    expect: Any


CASES: list[Case] = []


def case(door: str, name: str, expect: Any) -> Callable[[Callable[[World], Any]], Callable[[World], Any]]:
    def register(send: Callable[[World], Any]) -> Callable[[World], Any]:
        CASES.append(Case(door, name, send, expect))
        return send
    return register


# --- GitHub webhook -------------------------------------------------------------------------------------------
def _gh_headers(world: World, body: bytes, changes: dict[str, str | None]) -> dict[str, str]:
    secret = world.settings.require("github_webhook_secret")
    headers: dict[str, str | None] = {
        "X-GitHub-Event": "issues", "X-GitHub-Delivery": "bad-delivery-1", "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    headers.update(changes)
    return {k: v for k, v in headers.items() if v is not None}


async def _github(world: World, body: bytes, changes: dict[str, str | None]) -> tuple[int, dict[str, Any]]:
    return await world.post_github(_gh_headers(world, body, changes), body)


def _github_case(name: str, status: int, body: bytes = ISSUE_BYTES, sign_as: bytes | None = None,
                 headers: dict[str, str | None] | None = None) -> None:
    async def send(world: World) -> tuple[int, dict[str, Any]]:
        changes = dict(headers or {})
        if sign_as is not None:
            secret = world.settings.require("github_webhook_secret")
            changes.setdefault("X-Hub-Signature-256",
                               "sha256=" + hmac.new(secret.encode(), sign_as, hashlib.sha256).hexdigest())
        return await _github(world, body, changes)
    case("github", name, status)(send)


_github_case("no-signature", 401, headers={"X-Hub-Signature-256": None})
_github_case("wrong-signature", 401, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
_github_case("sha1-only", 401, headers={"X-Hub-Signature-256": None, "X-Hub-Signature": "sha1=" + "0" * 40})
_github_case("malformed-signature", 401, headers={"X-Hub-Signature-256": "sha256=zz"})
_github_case("signature-of-another-body", 401, sign_as=b'{"action":"closed"}')
_github_case("signature-with-trailing-space", 401, sign_as=ISSUE_BYTES + b" ")
_github_case("missing-event-header", 400, headers={"X-GitHub-Event": None})
_github_case("missing-delivery-header", 400, headers={"X-GitHub-Delivery": None})
_github_case("event-header-injection", 400, headers={"X-GitHub-Event": "issues\r\nX-Evil: 1"})
_github_case("delivery-header-with-path", 400, headers={"X-GitHub-Delivery": "../../etc/passwd"})
_github_case("signed-not-json", 400, body=b"{not json")
_github_case("signed-json-array", 400, body=b"[1,2,3]")
_github_case("signed-deep-json", 400, body=DEEP)
_github_case("signed-empty-body", 400, body=b"")
_github_case("unsupported-content-type", 415, headers={"Content-Type": "text/plain"})
_github_case("form-without-payload", 400, body=urlencode({"other": "1"}).encode(),
             headers={"Content-Type": "application/x-www-form-urlencoded"})
_github_case("form-payload-not-json", 400, body=urlencode({"payload": "{oops"}).encode(),
             headers={"Content-Type": "application/x-www-form-urlencoded"})
_github_case("oversized-body", 413, body=b" " * (GITHUB_MAX + 1))


# --- Teams outgoing webhook -----------------------------------------------------------------------------------
def _teams_case(name: str, status: int, body: bytes | dict[str, Any] | list[Any], authorization: str | None = "auto",
                ) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def send(world: World) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": authorization} if authorization else {}
        code, answer, _ = await world.post_teams(headers, raw)
        return code, answer
    case("teams", name, status)(send)


_teams_case("no-authorization", 401, ACTIVITY, None)
_teams_case("wrong-hmac", 401, ACTIVITY, "HMAC " + base64.b64encode(b"0" * 32).decode())
_teams_case("bearer-instead-of-hmac", 401, ACTIVITY, "Bearer abc")
_teams_case("hmac-not-base64", 401, ACTIVITY, "HMAC !!!notbase64")
_teams_case("unsigned-deep-json", 401, DEEP, None)
_teams_case("unsigned-oversized", 413, b" " * (300 * 1024), "HMAC AAAA")
_teams_case("signed-not-json", 400, b"{nope")
_teams_case("signed-array", 400, [ACTIVITY])
_teams_case("signed-deep-json", 400, DEEP)
_teams_case("signed-not-a-message", 400, {**ACTIVITY, "type": "invoke"})
_teams_case("signed-without-id", 400, {k: v for k, v in ACTIVITY.items() if k != "id"})
_teams_case("signed-without-from-id", 400, {**ACTIVITY, "from": {"name": "x"}})
_teams_case("signed-from-not-object", 400, {**ACTIVITY, "from": "29:ada"})
_teams_case("signed-text-not-string", 400, {**ACTIVITY, "text": {"html": "<b>x</b>"}})
_teams_case("signed-without-conversation", 400, {k: v for k, v in ACTIVITY.items() if k != "conversation"})
_teams_case("signed-over-long-id", 400, {**ACTIVITY, "id": "9" * 400})


# --- Teams bot (POST /api/messages, issue 22): the Bot Framework JWT first, then the activity -------------------
BOT_ACTIVITY = {**ACTIVITY, "channelId": "msteams", "serviceUrl": "https://smba.trafficmanager.net/amer/",
                "recipient": {"id": "28:reynolds-simulate-bot", "name": "Reynolds"}}


def _bot_case(name: str, status: int, body: bytes | dict[str, Any] | list[Any], authorization: str | None = "auto",
              claims: dict[str, Any] | None = None) -> None:
    from tools.simulate_bot import run_bot

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def send(world: World) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": "Bearer auto" if authorization == "auto" else authorization} if authorization \
            else {}
        line = await run_bot(world, {"source": "bot", "headers": headers, "body": raw.decode("utf-8", "replace"),
                                     "token_claims": claims or {}})
        return line["status"], line
    case("bot", name, status)(send)


_bot_case("no-authorization", 401, BOT_ACTIVITY, None)
_bot_case("hmac-instead-of-bearer", 401, BOT_ACTIVITY, "HMAC " + base64.b64encode(b"0" * 32).decode())
_bot_case("bearer-not-a-jwt", 401, BOT_ACTIVITY, "Bearer abc")
_bot_case("alg-none", 401, BOT_ACTIVITY, claims={"alg": "none"})
_bot_case("unsigned-deep-json", 401, DEEP, None)
_bot_case("unsigned-oversized", 413, b" " * (1024 * 1024 + 1), "Bearer abc")
_bot_case("signed-not-json", 400, b"{nope")
_bot_case("signed-array", 400, [BOT_ACTIVITY])
_bot_case("signed-deep-json", 400, DEEP)
_bot_case("signed-without-service-url", 401, {k: v for k, v in BOT_ACTIVITY.items() if k != "serviceUrl"})
_bot_case("signed-without-id", 400, {k: v for k, v in BOT_ACTIVITY.items() if k != "id"})
_bot_case("signed-install-without-conversation", 400,
          {k: v for k, v in {**BOT_ACTIVITY, "type": "installationUpdate", "action": "add"}.items()
           if k != "conversation"})


# --- Graph change notifications -------------------------------------------------------------------------------
def _graph_case(name: str, expect: Any, body: bytes | dict[str, Any], params: dict[str, str] | None = None) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def send(world: World) -> tuple[int, Any]:
        code, answer, _ = await world.post_graph(raw, params)
        try:
            return code, json.loads(answer or b"{}")
        except ValueError:
            return code, answer.decode(errors="replace")
    case("graph", name, expect)(send)


_graph_case("deep-json", 400, DEEP)
_graph_case("not-json", 400, b"{nope")
_graph_case("no-value-array", 400, {"items": []})
_graph_case("value-not-array", 400, {"value": {"clientState": SIMULATE_GRAPH_CLIENT_STATE}})
_graph_case("oversized", 413, b'{"value":[' + b'{"a":1},' * 200_000 + b'{"a":1}]}')
_graph_case("validation-token-too-long", 400, b"", {"validationToken": "v" * 2000})
_graph_case("validation-token-with-nul", 400, b"", {"validationToken": "a\x00b"})
_graph_case("empty-body-without-token", 400, b"")
_graph_case("forged-client-state-change", ("rejected", 1), {"value": [{
    "subscriptionId": "s1", "clientState": "guess", "changeType": "created",
    "resource": "chats('19:chat@thread.v2')/messages('1700000000001')"}]})
_graph_case("forged-client-state-lifecycle", ("rejected", 1), {"value": [{
    "subscriptionId": "s1", "clientState": "guess", "lifecycleEvent": "subscriptionRemoved",
    "resource": "chats('19:secret@thread.v2')/messages"}]})
_graph_case("unknown-resource-with-right-state", ("ignored", 1), {"value": [{
    "subscriptionId": "s1", "clientState": SIMULATE_GRAPH_CLIENT_STATE, "changeType": "created",
    "resource": "users('ceo')/messages('1')"}]})


# --- Service Bus ----------------------------------------------------------------------------------------------
def _sb_case(name: str, reason: str, body: bytes | dict[str, Any] | list[Any], content_type: str | None =
             "application/cloudevents+json") -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def send(world: World) -> Any:
        message = ServiceBusMessage(raw, message_id=f"bad-{name}", content_type=content_type)
        return await world.deliver_servicebus(message)
    case("servicebus", name, reason)(send)


_sb_case("not-json", "invalid-json", b"{nope")
_sb_case("deep-json", "nesting-too-deep", DEEP)
_sb_case("json-array", "not-cloudevent", [CE])
_sb_case("missing-id", "not-cloudevent", {k: v for k, v in CE.items() if k != "id"})
_sb_case("missing-source", "not-cloudevent", {k: v for k, v in CE.items() if k != "source"})
_sb_case("specversion-0.3", "schema-invalid", {**CE, "specversion": "0.3"})
_sb_case("binary-data", "schema-invalid", {**CE, "data_base64": "AAAA"})
_sb_case("data-not-object", "schema-invalid", {**CE, "data": "text"})
_sb_case("text-plain", "unsupported-content-type", CE, "text/plain")
_sb_case("oversized", "oversized", b'{"pad":"' + b"x" * (300 * 1024) + b'"}')
_sb_case("invalid-task", "schema-invalid", {**CE, "data": {"task": {"type": "x"}}})
_sb_case("id-over-200-chars", "schema-invalid", {**CE, "id": "i" * 300})
_sb_case("invalid-time", "schema-invalid", {**CE, "time": "yesterday"})


# --- HTTP API -------------------------------------------------------------------------------------------------
def _api_case(name: str, status: int, function: str, body: bytes, route: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> None:
    async def send(world: World) -> tuple[int, Any]:
        request = func.HttpRequest(method="POST", url="http://localhost/api/x", headers=headers or {},
                                   params=params or {}, route_params=route or {}, body=body)
        kwargs: dict[str, Any] = {"req": request}
        if function in ("api_start_orchestration", "api_approve_orchestration"):
            kwargs["client"] = world.client
        response = await call_function(function, **kwargs)
        return response.status_code, json.loads(response.get_body() or b"{}")
    case("http", name, status)(send)


TASK_BODY = json.dumps({"task": {"type": "x", "description": "d"}}).encode()
_api_case("start-not-json", 422, "api_start_orchestration", b"{nope")
_api_case("start-deep-json", 400, "api_start_orchestration", DEEP)
_api_case("start-unknown-field", 422, "api_start_orchestration",
          json.dumps({"task": {"type": "x", "description": "d"}, "admin": True}).encode())
_api_case("start-oversized", 413, "api_start_orchestration", b" " * (300 * 1024))
_api_case("start-idempotency-key-too-long", 422, "api_start_orchestration", TASK_BODY,
          headers={"Idempotency-Key": "k" * 500})
_api_case("start-tracking-issue-injection", 422, "api_start_orchestration",
          json.dumps({"task": {"type": "x", "description": "d"}, "tracking_issue": "../../orgs/x#1"}).encode())
_api_case("approve-instance-with-path", 404, "api_approve_orchestration", b"", route={"instance_id": "../x"})
_api_case("approve-deep-json", 400, "api_approve_orchestration", DEEP, route={"instance_id": "task-x"})
_api_case("analyze-not-json", 422, "api_analyze", b"{nope")


# --- MCP tools ------------------------------------------------------------------------------------------------
def _mcp_case(name: str, function: str, context: str) -> None:
    async def send(world: World) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"context": context}
        if function == "mcp_orchestrate_task":
            kwargs["client"] = world.client
        answer = json.loads(await call_function(function, **kwargs))
        return 400 if answer.get("error") else 200, answer
    case("mcp", name, 400)(send)


_mcp_case("orchestrate-not-json", "mcp_orchestrate_task", "{nope")
_mcp_case("orchestrate-deep-json", "mcp_orchestrate_task", DEEP.decode())
_mcp_case("orchestrate-arguments-not-object", "mcp_orchestrate_task", json.dumps({"arguments": [1]}))
_mcp_case("orchestrate-unknown-field", "mcp_orchestrate_task",
          json.dumps({"arguments": {"task": {"type": "x", "description": "d"}, "sudo": True}}))
_mcp_case("get-chain-deep-json", "mcp_get_chain", DEEP.decode())


# --- chain explorer -------------------------------------------------------------------------------------------
def _explorer_case(name: str, status: int, function: str, route: dict[str, str],
                   params: dict[str, str] | None = None) -> None:
    async def send(world: World) -> tuple[int, Any]:
        request = func.HttpRequest(method="GET", url="http://localhost/api/x", headers={}, params=params or {},
                                   route_params=route, body=b"")
        response = await call_function(function, req=request)
        return response.status_code, response.get_body().decode(errors="replace")
    case("explorer", name, status)(send)


_explorer_case("chain-id-with-path", 400, "get_chain", {"chain_id": "../../secrets"})
_explorer_case("chain-format-unknown", 400, "get_chain", {"chain_id": "c-1"}, {"format": "svg<script>"})
_explorer_case("event-id-with-space", 400, "get_event", {"event_id": "a b"})
_explorer_case("event-id-too-long", 400, "get_event", {"event_id": "e" * 500})


# --- the run --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with build_world() as built:
        prepare(built)
        yield built


def _state(world: World) -> tuple[int, int, int, int, int, int]:
    store = world.store
    assert isinstance(store, MemoryStore)
    return (len(store._docs), world.client.starts, len(world.github.writes()), len(world.graph.subscriptions),
            len(world.teams_writes), len(world.publisher.sent))


def test_the_corpus_covers_every_door() -> None:
    assert len(CASES) >= 60
    assert {c.door for c in CASES} == {"github", "teams", "bot", "graph", "servicebus", "http", "mcp", "explorer"}
    assert len({(c.door, c.name) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[f"{c.door}-{c.name}" for c in CASES])
async def test_bad_input_is_refused_and_writes_nothing(world: World, bad: Case) -> None:
    before = _state(world)
    result = await bad.send(world)
    if bad.door == "servicebus":
        assert result.outcome == "dead-lettered", result
        assert result.reason.startswith(bad.expect), result
    elif isinstance(bad.expect, tuple):
        status, answer = result
        key, count = bad.expect
        assert status == 202
        assert answer[key] == count
        assert answer["started"] == 0
    else:
        status, answer = result
        assert status == bad.expect, answer
        assert 400 <= status < 500
        if isinstance(answer, dict) and "verdict" in answer:
            assert answer["verdict"] == "rejected"
    assert _state(world) == before
