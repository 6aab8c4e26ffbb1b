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
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import httpx

from shared.platforms.teams.bot import BotRuntime, clear_bot_runtime, set_bot_runtime
from shared.platforms.teams.bot_auth import BotTokenValidator
from shared.platforms.teams.bot_references import BotReferences, ConversationReference
from shared.platforms.teams.connector import BotConnector
from shared.platforms.teams.webhook import parse_teams_activity
from tools.fakes.bot import FakeBotConnector, FakeTokenIssuer
from tools.world import World, call_function

#: The simulated bot's app id (a real one is the Function App identity's client id; never written in the repo).
SIMULATE_BOT_APP_ID = "reynolds-simulate-bot"
DOOR_URL = "http://localhost:7071/api/messages"
#: The service URL of conversations the simulated app is installed in (every one is routed to the fake connector).
SIMULATE_SERVICE_URL = "https://smba.trafficmanager.net/amer/"


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
    #: Conversation id → where the fake Graph keeps that conversation (``("channel", team, channel)``/``("chat", id)``).
    graph_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The app counts as installed in every team and chat a person writes in (False: only where a test installs it).
    auto_install: bool = True

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
    _bridge(world, stage)
    return stage


def install_app(world: World, stage: BotStage, *, team: str | None = None, channel: str | None = None,
                chat: str | None = None) -> ConversationReference:
    """The Teams app installed in a team's channel or a chat: the reference the bot door would store from the
    ``installationUpdate`` (``BotReferences``), and the conversation made known to the fake connector."""
    conversation = channel if team else chat
    if not conversation:
        raise ValueError("install_app needs team and channel, or chat")
    reference = ConversationReference(
        conversation_id=conversation, service_url=SIMULATE_SERVICE_URL, bot_id=f"28:{stage.app_id}",
        bot_name="Reynolds", tenant_id=world.graph.tenant_id, team_id=team, teams_channel_id=channel if team else None,
        conversation_type="channel" if team else "groupChat")
    BotReferences(world.store).save(reference)
    stage.connector.add_conversation(conversation, stage.app_id)
    stage.graph_keys[conversation] = ("channel", team or "", conversation) if team else ("chat", conversation)
    return reference


def teams_activity_seen(world: World, body: bytes) -> None:
    """A channel or chat message reached Reynolds another way (the outgoing webhook): with ``auto_install`` the
    app is installed there too, and the bot may reply in the message's thread (the connector knows the message)."""
    stage = getattr(world, _STAGE_ATTRIBUTE, None)
    if not isinstance(stage, BotStage) or not stage.auto_install:
        return
    try:
        parse_teams_activity(body, received_at=world.clock())  # only a message the door would take is one Teams sent
        activity = json.loads(body)
    except Exception:  # noqa: BLE001 - anything the parser refuses is no Teams message
        return
    if not isinstance(activity, dict) or not isinstance(activity.get("id"), str):
        return

    def obj(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    data = obj(activity.get("channelData"))
    team = obj(data.get("team"))
    channel = data.get("teamsChannelId") or obj(data.get("channel")).get("id")
    group = team.get("aadGroupId") or data.get("teamsTeamId") or team.get("id")
    conversation = obj(activity.get("conversation"))
    chat = conversation.get("id") if conversation.get("conversationType") != "channel" else None
    if group and channel:
        target = str(channel)
        if target not in stage.connector.conversations:
            install_app(world, stage, team=str(group), channel=target)
    elif isinstance(chat, str) and chat:
        target = chat
        if target not in stage.connector.conversations:
            install_app(world, stage, chat=target)
    else:
        return
    stage.connector.receive(target, {"id": activity["id"], "type": "message"})
    root = str(conversation.get("id") or "").partition(";messageid=")[2]
    if root and root != activity["id"]:
        stage.connector.receive(target, {"id": root, "type": "message"})


def _bridge(world: World, stage: BotStage) -> None:
    """One Teams behind both fakes: what the bot posts through the connector is a message Graph readers see (with
    Graph's id as the activity id, as in Teams, and its change notifications); what people post in Graph is an
    activity the bot may reply to; with ``auto_install`` the app is installed where a person first writes."""
    graph = world.graph
    graph.bot_apps.add(stage.app_id)

    def on_post(conversation_id: str, activity: dict[str, Any], reply_to: str | None) -> str:
        key = stage.graph_keys.get(conversation_id, ("chat", conversation_id))
        text = str(activity.get("text") or "")
        if key[0] == "channel":
            message = graph.post_as_bot(stage.app_id, text, team=key[1], channel=key[2], reply_to=reply_to)
        else:
            message = graph.post_as_bot(stage.app_id, text, chat=key[1])
        return str(message["id"])

    def on_message(message: dict[str, Any]) -> None:
        if graph.is_poster(message):
            return
        ident = message.get("channelIdentity") or {}
        team, channel, chat = ident.get("teamId"), ident.get("channelId"), message.get("chatId")
        conversation = channel if ident else chat
        if not conversation:
            return
        if conversation not in stage.connector.conversations and stage.auto_install:
            install_app(world, stage, team=team, channel=channel, chat=None if ident else chat)
        stage.connector.receive(conversation, {"id": str(message["id"]), "type": "message"})

    stage.connector.on_post = on_post
    graph.on_message.append(on_message)


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
        channel_data = activity.get("channelData") if activity else None
        if isinstance(channel_data, dict) and isinstance(channel_data.get("team"), dict):
            team, channel = channel_data["team"], channel_data.get("channel") or {}
            group = team.get("aadGroupId") or team.get("id")
            root = conversation["id"].split(";messageid=", 1)[0]
            stage.graph_keys.setdefault(root, ("channel", str(group), str(channel.get("id") or root)))
        for conversation_id in dict.fromkeys((conversation["id"], conversation["id"].split(";messageid=", 1)[0])):
            stage.connector.add_conversation(conversation_id, stage.app_id)
            if activity is not None:
                stage.connector.receive(conversation_id, activity)
                root = conversation["id"].partition(";messageid=")[2]
                if root and root != activity.get("id"):  # the thread's root message exists in Teams too
                    stage.connector.receive(conversation_id, {"id": root, "type": "message"})
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
    # The connector's posts are listed by conversation id (the bot-item interface), not again as Graph sees them.
    effects = [e for e in _effects_since(world, *before) if e.get("via") != "bot"]
    effects += [{"platform": "teams", "kind": "message", "via": "bot", "target": p.conversation_id,
                 "id": p.activity_id} for p in stage.connector.activities[posted:]]
    world.clock.advance(1)
    delivery = answer.get("delivery") or (activity.get("id") if activity else None)
    return {"delivery": delivery, "status": response.status_code, "verdict": answer.get("verdict"),
            "reason": answer.get("reason", ""), "instance_id": instance_id,
            "runtime_status": await world.runtime_status(instance_id), "effects": effects,
            "chain_id": answer.get("chain_id") or _chain_of(world, answer.get("event_id"))}
