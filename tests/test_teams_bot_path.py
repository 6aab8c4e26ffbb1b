"""Reynolds speaks in Teams only as its bot: under the fake Graph's real refusal (app-only message POSTs are 401),
every Teams answer goes through the Bot Connector, in the thread that asked, once; where the app is not installed
nothing is posted and the effect says why."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.loop.ledger import doc_id
from shared.loop.lineage import instance_id_for
from shared.loop.marker import find_markers
from shared.work.reply import reply_effect_key
from tools.simulate_bot import BotStage, bot_stage
from tools.world import SIMULATE_MARKER_KEY, World, build_world

TEAM, CHANNEL = "team-0001", "19:chan@thread.skype"
GRAPH_MESSAGE_POSTS = r"/(messages|replies)$"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    with build_world() as built:
        await built.ensure_subscriptions()
        yield built


def _effect(world: World, key: str) -> dict[str, Any]:
    ident = doc_id("fx", key)
    return world.store.read(ident, ident)


async def _person_writes(world: World, text: str) -> dict[str, object]:
    world.graph.outbox.clear()  # earlier notifications (Reynolds' own replies) are not this test's subject
    message = world.graph.post_as_user(f"<p>{text}</p>", team=TEAM, channel=CHANNEL)
    status, _body, _ = await world.post_graph(json.dumps(world.graph.outbox.pop(0)).encode())
    assert status == 202
    return message


async def test_a_graph_message_is_answered_in_its_thread_through_the_connector_once(world: World) -> None:
    stage = bot_stage(world)
    root = await _person_writes(world, "The importer crashes with an error")
    (posted,) = stage.connector.activities
    assert (posted.method, posted.conversation_id, posted.reply_to_id) == ("POST", CHANNEL, root["id"])
    assert posted.activity["replyToId"] == root["id"]
    (marker,) = find_markers(posted.activity["text"], SIMULATE_MARKER_KEY)
    assert marker.valid
    assert marker.event_id == f"teams:{root['id']}"
    # Teams shows it in the thread, authored by the bot; the ledger holds its id, so its echo is Reynolds' own.
    (message,) = world.teams_writes
    assert (message["id"], message["replyToId"]) == (posted.activity_id, root["id"])
    assert message["from"]["application"]["applicationIdentityType"] == "bot"
    record = _effect(world, reply_effect_key(f"teams:{root['id']}"))
    assert (record["state"], record["resource_id"]) == ("done", posted.activity_id)
    await world.deliver_notifications()  # Graph tells Reynolds about its own reply
    echo = world.client.run_of(instance_id_for(f"teams:{posted.activity_id}"))
    assert echo.output["verdict"] == "self"
    assert len(stage.connector.activities) == 1
    assert world.graph.requests_to("POST", GRAPH_MESSAGE_POSTS) == []


async def test_without_the_app_installed_nothing_is_posted_and_the_effect_says_why(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    stage: BotStage = bot_stage(world)
    stage.auto_install = False
    caplog.set_level(logging.WARNING, logger="shared.work.reply")
    root = await _person_writes(world, "Anyone there?")
    assert stage.connector.activities == []
    assert world.teams_writes == []
    record = _effect(world, reply_effect_key(f"teams:{root['id']}"))
    assert record["state"] == "suppressed"
    assert f"not installed in team {TEAM} channel {CHANNEL}" in record["reason"]
    assert any(f"team {TEAM}" in r.getMessage() and "install the Teams app" in r.getMessage() for r in caplog.records)
    assert world.graph.requests_to("POST", GRAPH_MESSAGE_POSTS) == []


async def test_no_teams_flow_posts_through_graph(world: World) -> None:
    """Graph notifications, the outgoing webhook and the bot door, each answered: zero Graph message POSTs."""
    from tests.test_bot_door import item, message
    from tools.simulate_bot import run_bot

    stage = bot_stage(world)
    await _person_writes(world, "The export crashed")
    body = json.dumps({
        "type": "message", "id": "1700000000777", "timestamp": "2026-01-01T00:00:05Z",
        "from": {"id": "29:ada", "name": "Ada", "aadObjectId": "aad-ada"},
        "conversation": {"id": f"{CHANNEL};messageid=1700000000777", "conversationType": "channel"},
        "channelData": {"teamsChannelId": CHANNEL, "team": {"id": "19:team@thread.skype", "aadGroupId": TEAM},
                        "channel": {"id": CHANNEL}},
        "text": "<at>Reynolds</at> the build is red"}).encode()
    status, _answer, headers = await world.post_teams({"Authorization": "auto"}, body)
    assert (status, headers["X-Reynolds-Verdict"]) == (200, "accepted")
    await world.client.advance(None)
    line = await run_bot(world, item(message("1700000000888")))
    assert line["verdict"] == "accepted"
    await world.deliver_notifications()
    assert len(stage.connector.activities) == 3
    # Each in the thread that asked (the bot door's message sits in the thread of 1700000000001).
    assert {a.reply_to_id for a in stage.connector.activities} >= {"1700000000777", "1700000000001"}
    assert world.graph.requests_to("POST", GRAPH_MESSAGE_POSTS) == []
    assert [r for r in world.graph.requests if r.method == "POST" and "/messages" in r.path] == []


async def test_a_reference_the_connector_no_longer_knows_is_suppressed_not_retried(world: World) -> None:
    stage = bot_stage(world)
    await _person_writes(world, "first")  # the app gets installed in the channel
    del stage.connector.conversations[CHANNEL]  # then removed from the team without Reynolds hearing of it
    stage.auto_install = False
    root = await _person_writes(world, "second")
    record = _effect(world, reply_effect_key(f"teams:{root['id']}"))
    assert record["state"] == "suppressed"
    assert "404 ConversationNotFound" in record["reason"]
    assert stage.connector.refusals[-1] == (404, "ConversationNotFound")
    assert len([r for r in stage.connector.refusals if r[1] == "ConversationNotFound"]) == 1  # no retry loop


async def test_a_vanished_thread_root_is_answered_in_the_channel(world: World) -> None:
    stage = bot_stage(world)
    await _person_writes(world, "first")
    world.graph.outbox.clear()
    root = world.graph.post_as_user("<p>second</p>", team=TEAM, channel=CHANNEL)
    del stage.connector.conversations[CHANNEL].activities[root["id"]]  # deleted before Reynolds answers
    status, _body, _ = await world.post_graph(json.dumps(world.graph.outbox.pop(0)).encode())
    assert status == 202
    (_, posted) = stage.connector.activities
    assert posted.reply_to_id is None
    assert stage.connector.refusals[-1] == (404, "ActivityNotFound")
    record = _effect(world, reply_effect_key(f"teams:{root['id']}"))
    assert (record["state"], record["resource_id"]) == ("done", posted.activity_id)
