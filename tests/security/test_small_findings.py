"""Finding 7 (low): task quotas, the validation handshake, Mermaid labels, ReplyTo, blank secrets, idempotency keys.

Each through the registered function in-process (real ``func.HttpRequest`` / Service Bus message objects).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import azure.functions as func
import pytest
from azure.servicebus import ServiceBusMessage

from shared.settings import override_settings
from shared.store.memory import MemoryStore
from shared.work.quotas import TASKS_PER_HOUR
from tools.simulate_tasks import post_task, prepare
from tools.world import World, build_world, call_function

TASK = {"type": "maintenance", "description": "Tidy the release.", "components": ["changelog"]}


def _teams_task(n: int, sender: str = "aad-ada") -> bytes:
    return json.dumps({
        "type": "message", "id": _teams_message_id(n), "timestamp": "2026-01-01T00:00:00Z",
        "from": {"id": f"29:{sender}", "name": "Ada", "aadObjectId": sender},
        "conversation": {"id": "19:chat@thread.v2", "conversationType": "groupChat", "tenantId": "t"},
        "text": f"<at>Reynolds</at> task: tidy release notes batch {n}"}).encode()


def _teams_message_id(n: int) -> str:
    return f"17000000{n:05d}"


def _tracking_issues(world: World) -> int:
    return sum(1 for w in world.reynolds_writes if w.kind == "issue")


# --- per-requester task quota --------------------------------------------------------------------------------
async def test_a_requester_gets_a_bounded_number_of_tasks_and_a_clear_answer() -> None:
    with build_world() as world:
        prepare(world)
        answers = []
        for n in range(TASKS_PER_HOUR + 3):
            status, body, headers = await world.post_teams({"Authorization": "auto"}, _teams_task(n))
            answers.append((status, headers["X-Reynolds-Verdict"], body["text"]))
        accepted = [a for a in answers if a[1] == "accepted"]
        refused = [a for a in answers if a[1] == "rejected"]
        assert len(accepted) == TASKS_PER_HOUR
        assert len(refused) == 3
        assert all("task quota reached" in text for _, _, text in refused)
        assert _tracking_issues(world) == TASKS_PER_HOUR
        # What the requester was told is what the lineage records (the explorer shows the refusal and its rule).
        stored = world.services.lineage.get_event(f"teams:{_teams_message_id(TASKS_PER_HOUR)}") or {}
        assert (stored.get("verdict"), stored.get("rule")) == ("rejected", "task-quota")
        assert "task quota reached" in " ".join(stored.get("reasons") or [])
        # Someone else is not affected; the same requester is served again in the next hour.
        status, _body, headers = await world.post_teams({"Authorization": "auto"}, _teams_task(90, "aad-bob"))
        assert headers["X-Reynolds-Verdict"] == "accepted"
        world.clock.advance(3600)
        status, _body, headers = await world.post_teams({"Authorization": "auto"}, _teams_task(91))
        assert headers["X-Reynolds-Verdict"] == "accepted"
        # A redelivery of a refused task stays refused within the window (and starts nothing).
        starts = world.client.starts
        world.clock.advance(-3600)
        status, _body, headers = await world.post_teams({"Authorization": "auto"}, _teams_task(TASKS_PER_HOUR))
        assert world.client.starts == starts


# --- Graph validation handshake ------------------------------------------------------------------------------
async def _validate(world: World, token: str) -> tuple[int, bytes, str, dict[str, str]]:
    request = func.HttpRequest(method="POST", url="http://localhost/api/graph/notifications", headers={},
                               params={"validationToken": token}, route_params={}, body=b"")
    response = await world.call_door("graph_notifications", req=request, client=world.client)
    return response.status_code, response.get_body(), response.mimetype, dict(response.headers)


@pytest.mark.parametrize("token", ["x" * 5000, "<script>alert(1)</script>" * 100, "a\x00b", "line\r\nSet-Cookie: x=1"],
                         ids=["long", "script", "nul", "crlf"])
async def test_validation_token_is_capped_and_never_echoed_when_bad(token: str) -> None:
    with build_world() as world:
        status, body, mimetype, _headers = await _validate(world, token)
        assert status == 400
        assert token.encode() not in body
        assert mimetype == "text/plain"


async def test_validation_token_is_echoed_as_plain_text_with_nosniff() -> None:
    with build_world() as world:
        token = "Validation: Testing client application reachability for subscription 4d0c-1"
        status, body, mimetype, headers = await _validate(world, token)
        assert (status, body.decode(), mimetype) == (200, token, "text/plain")
        assert {k.lower(): v for k, v in headers.items()}["x-content-type-options"] == "nosniff"


# --- Mermaid labels ------------------------------------------------------------------------------------------
async def test_mermaid_labels_keep_no_raw_html() -> None:
    with build_world() as world:
        world.ensure_issue("octo/app", 3, "x")
        payload = {"action": "opened", "repository": {"full_name": "octo/app"},
                   "issue": {"id": 77, "number": 3, "title": "t", "updated_at": "2026-01-01T00:00:00Z",
                             "user": {"login": "alice"}},
                   "sender": {"login": 'x"]<img src=x onerror=alert(1)>#quot;', "type": "User", "id": 5}}
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "m-1", "X-Hub-Signature-256": "auto",
                   "Content-Type": "application/json"}
        _status, answer = await world.post_github(headers, json.dumps(payload).encode())
        request = func.HttpRequest(method="GET", url="http://localhost/api/chains/x", headers={},
                                   params={"format": "mermaid"}, route_params={"chain_id": answer["chain_id"]},
                                   body=b"")
        response = await call_function("get_chain", req=request)
        text = response.get_body().decode()
        assert response.status_code == 200
        assert "<img" not in text
        assert "onerror" not in text or "&lt;img" in text
        assert "#quot;" not in text
        assert {k.lower(): v for k, v in dict(response.headers).items()}["x-content-type-options"] == "nosniff"


# --- ReplyTo -------------------------------------------------------------------------------------------------
def _sb(message_id: str, *, reply_to: str | None = None, data_reply_to: str | None = None) -> ServiceBusMessage:
    data: dict[str, Any] = {"text": f"Build note {message_id}"}
    if data_reply_to:
        data["reply_to"] = data_reply_to
    event = {"specversion": "1.0", "id": f"ce-{message_id}", "source": "/ci", "type": "com.ci.note",
             "time": "2026-01-01T00:01:00Z", "data": data, "actorlogin": "ops", "actorkind": "human"}
    return ServiceBusMessage(json.dumps(event).encode(), message_id=message_id, reply_to=reply_to,
                             content_type="application/cloudevents+json")


@pytest.mark.parametrize(("reply_to", "data_reply_to"), [("payroll-commands", None), (None, "payroll-commands"),
                                                         ("reynolds-out/$deadletterqueue", None)])
async def test_reply_to_names_only_configured_queues(reply_to: str | None, data_reply_to: str | None) -> None:
    with build_world() as world:
        settlement = await world.deliver_servicebus(_sb("m-1", reply_to=reply_to, data_reply_to=data_reply_to))
        assert settlement.outcome == "completed"
        assert [queue for queue, _ in world.publisher.sent] == [world.settings.servicebus_out_queue]


# --- blank secrets -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("blank", [" ", "   \t", "\n"])
async def test_a_whitespace_only_webhook_secret_is_refused(blank: str) -> None:
    with build_world() as world:
        settings = world.settings.model_copy(update={"github_webhook_secret": type(
            world.settings.github_webhook_secret)(blank)})  # type: ignore[misc]
        world.services.settings = settings
        override_settings(settings)
        store = world.store
        assert isinstance(store, MemoryStore)
        before = len(store._docs)
        body = json.dumps({"action": "opened", "issue": {"id": 1, "number": 1}}).encode()
        signature = "sha256=" + hmac.new(blank.encode(), body, hashlib.sha256).hexdigest()
        status, answer = await world.post_github({"X-GitHub-Event": "issues", "X-GitHub-Delivery": "b-1",
                                                  "X-Hub-Signature-256": signature}, body)
        assert status == 503
        assert answer["verdict"] == "rejected"
        assert len(store._docs) == before


# --- idempotency keys ----------------------------------------------------------------------------------------
async def test_http_and_mcp_idempotency_keys_never_collide() -> None:
    with build_world() as world:
        prepare(world)
        status, http = await post_task(world, {"task": TASK}, headers={"Idempotency-Key": "mcp:k1"})
        assert status == 202
        answer = json.loads(await call_function(
            "mcp_orchestrate_task", context=json.dumps({"arguments": {"task": TASK, "idempotency_key": "k1"}}),
            client=world.client))
        assert answer["started"] is True
        assert answer["instance_id"] != http["instance_id"]
        assert world.client.starts == 2
