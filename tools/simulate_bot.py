"""``tools.simulate`` bot items: a Bot Connector activity through ``POST /api/messages`` with a real JWT.

An item::

    {"source": "bot", "headers": {"Authorization": "Bearer auto", "Content-Type": "application/json"},
     "body": <activity JSON>, "token_claims": {…}}

``Bearer auto`` is replaced by a token the simulation's own issuer (``tools.fakes.bot.FakeTokenIssuer``) signs for
the simulated bot (``SIMULATE_BOT_APP_ID``) and the activity's ``serviceUrl``; ``token_claims`` overrides or
removes claims (``FakeTokenIssuer.channel_token``). Any other Authorization value is sent as is. The bot door
validates against the issuer's loopback OpenID metadata, and whatever the bot posts goes to the fake Bot Connector
(every ``serviceUrl`` is routed there), which refuses what the real one refuses. The output line is the Teams one;
each connector post is an effect ``{"platform": "teams", "kind": "message", "via": "bot", "target":
"<conversation id>", "id": "<activity id>"}``. The stand-ins start with the first bot item of a world and stop with
the world.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import httpx

from shared.platforms.teams.bot import BotRuntime, clear_bot_runtime, set_bot_runtime
from shared.platforms.teams.bot_auth import BotTokenValidator
from shared.platforms.teams.connector import BotConnector
from tools.fakes.bot import FakeBotConnector, FakeTokenIssuer
from tools.world import World, call_function

#: The simulated bot's app id (a real one is the Function App identity's client id; never written in the repo).
SIMULATE_BOT_APP_ID = "reynolds-simulate-bot"
DOOR_URL = "http://localhost:7071/api/messages"


class _ToFake(httpx.AsyncBaseTransport):
    """Routes every Bot Connector call to the fake, whatever ``serviceUrl`` the activity named."""

    def __init__(self, base_url: str) -> None:
        target = httpx.URL(base_url)
        self._scheme, self._host, self._port = target.scheme, target.host, target.port
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._scheme, host=self._host, port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class BotStage:
    """The bot's stand-ins for one world."""

    issuer: FakeTokenIssuer
    connector: FakeBotConnector
    runtime: BotRuntime | None = None
    app_id: str = SIMULATE_BOT_APP_ID

    def close(self) -> None:
        self.connector.stop()
        self.issuer.stop()
        if self.runtime is not None:
            clear_bot_runtime(self.runtime)


_STAGE_ATTRIBUTE = "_reynolds_bot_stage"


def bot_stage(world: World) -> BotStage:
    """Start (once per world) the fake issuer and connector and install the bot runtime that uses them."""
    stage = getattr(world, _STAGE_ATTRIBUTE, None)
    if isinstance(stage, BotStage):
        set_bot_runtime(stage.runtime)
        return stage
    clock = world.clock
    issuer = FakeTokenIssuer()
    issuer.start()
    connector = FakeBotConnector(issuer, clock=lambda: clock().timestamp())
    connector.start()
    stage = BotStage(issuer, connector)
    app_id = stage.app_id

    async def token() -> str:
        return issuer.bot_token(app_id)

    stage.runtime = BotRuntime(BotTokenValidator(app_id, metadata_url=issuer.metadata_url),
                               BotConnector(token, transport=_ToFake(connector.base_url)))
    set_bot_runtime(stage.runtime)
    setattr(world, _STAGE_ATTRIBUTE, stage)  # the World dataclass is not ours to extend; it carries the stage
    weakref.finalize(world, stage.close)
    return stage


def _activity(item: dict[str, Any]) -> tuple[bytes, dict[str, Any] | None]:
    body = item.get("body")
    if isinstance(body, str):
        raw = body.encode("utf-8")
    elif isinstance(body, dict | list):
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    else:
        raw = b"" if body is None else str(body).encode("utf-8")
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # the door judges it; the tool only peeks
        return raw, None
    return raw, parsed if isinstance(parsed, dict) else None


def _prepare(stage: BotStage, item: dict[str, Any], activity: dict[str, Any] | None) -> dict[str, str]:
    """The item's headers with ``Bearer auto`` signed; the conversation made known to the fake connector."""
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    claims = item.get("token_claims") if isinstance(item.get("token_claims"), dict) else None
    service_url = activity.get("serviceUrl") if activity else None
    for name, value in list(headers.items()):
        if name.lower() == "authorization" and value.strip().lower() == "bearer auto":
            token = stage.issuer.channel_token(stage.app_id, service_url if isinstance(service_url, str) else None,
                                               claims)
            headers[name] = f"Bearer {token}"
    conversation = activity.get("conversation") if activity else None
    if isinstance(conversation, dict) and isinstance(conversation.get("id"), str):
        # Teams knows every conversation the bot is in; the simulation learns them from the activities it sends.
        # A channel thread (``…;messageid=<root>``) belongs to its channel's conversation, where answers are posted.
        for conversation_id in dict.fromkeys((conversation["id"], conversation["id"].split(";messageid=", 1)[0])):
            stage.connector.add_conversation(conversation_id, stage.app_id)
            if activity is not None:
                stage.connector.receive(conversation_id, activity)
    return headers


async def run_bot(world: World, item: dict[str, Any]) -> dict[str, Any]:
    """One bot activity through ``POST /api/messages``; the line as for Teams items, bot posts as effects."""
    from tools.simulate import _chain_of, _effects_since, _marks

    stage = bot_stage(world)
    raw, activity = _activity(item)
    headers = _prepare(stage, item, activity)
    before, posted = _marks(world), len(stage.connector.activities)
    request = func.HttpRequest(method="POST", url=DOOR_URL, headers=headers, body=raw)
    response = await call_function("bot_messages", req=request, client=world.client)
    answer = json.loads(response.get_body() or b"{}")
    instance_id = answer.get("instance_id")
    await world.client.advance(None)
    effects = _effects_since(world, *before)
    effects += [{"platform": "teams", "kind": "message", "via": "bot", "target": p.conversation_id,
                 "id": p.activity_id} for p in stage.connector.activities[posted:]]
    world.clock.advance(1)
    delivery = answer.get("delivery") or (activity.get("id") if activity else None)
    return {"delivery": delivery, "status": response.status_code, "verdict": answer.get("verdict"),
            "reason": answer.get("reason", ""), "instance_id": instance_id,
            "runtime_status": await world.runtime_status(instance_id), "effects": effects,
            "chain_id": answer.get("chain_id") or _chain_of(world, answer.get("event_id"))}
