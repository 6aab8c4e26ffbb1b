"""Teams, Graph and Service Bus doors and effects, end to end through the world.

Everything runs the registered functions in-process: the Teams webhook and Graph notification triggers with
real ``func.HttpRequest`` objects, the Service Bus trigger with real ``func.ServiceBusMessage`` objects,
msgraph-sdk against the loopback fake Graph, orchestrations through the real durable replay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from shared import names
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.loop.lineage import instance_id_for
from shared.loop.marker import find_markers, hidden_marker
from shared.platforms.servicebus.contract import PROP_CHAIN_ID, PROP_DEPTH, PROP_EVENT_ID, PROP_MARKER
from shared.work.reply import outbound_message_id
from shared.work.routing import route
from tools.world import SIMULATE_MARKER_KEY, SIMULATE_TEAMS_TOKEN, World, build_world

TEAM, CHANNEL = "team-0001", "19:chan@thread.skype"


def _activity(text: str = "<at>Reynolds</at> the export crashes with an error", ident: str = "1700000000555",
              **sender: Any) -> bytes:
    activity = {
        "type": "message", "id": ident, "timestamp": "2026-01-01T00:00:05.1234567Z",
        "from": {"id": "29:1a2b3c", "name": "Ada Lovelace", "aadObjectId": "aad-ada", **sender},
        "conversation": {"id": f"19:abc@thread.skype;messageid={ident}", "conversationType": "channel",
                         "tenantId": "tenant-0001"},
        "channelData": {"teamsTeamId": "19:team@thread.skype", "teamsChannelId": CHANNEL,
                        "team": {"id": "19:team@thread.skype", "aadGroupId": TEAM}, "channel": {"id": CHANNEL}},
        "text": text,
    }
    return json.dumps(activity, separators=(",", ":")).encode()


def _sign(token_b64: str, body: bytes) -> str:
    """The Teams signature computed independently of the code under test."""
    digest = hmac.new(base64.b64decode(token_b64), body, hashlib.sha256).digest()
    return "HMAC " + base64.b64encode(digest).decode()


def _cloudevent(text: str, *, ident: str = "ce-1", kind: str = "human", **extra: Any) -> bytes:
    event = {"specversion": "1.0", "id": ident, "source": "/ops/scheduler", "type": "com.contoso.job.failed",
             "time": "2026-01-01T00:01:00Z", "data": {"text": text}, "actorlogin": "grace", "actorkind": kind,
             **extra}
    return json.dumps(event).encode()


def _stored(world: World, event_id: str) -> dict[str, Any]:
    stored = world.services.lineage.get_event(event_id)
    assert stored is not None, event_id
    return stored


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as built:
        yield built


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- routing and lineage -----------------------------------------------------------------------------------


def _event(platform: Platform, kind: ActorKind, name: tuple[str, str | None] = ("teams_message", "created")) -> Any:
    return EventEnvelope(id="x:1", source="/t", type="t", time="2026-01-01T00:00:00Z", platform=platform,
                         event=name[0], action=name[1], actor=Actor(login="a", kind=kind),
                         target=Target(platform=platform, key="k"))


@pytest.mark.parametrize(("platform", "kind", "profile", "expected"), [
    (Platform.TEAMS, ActorKind.HUMAN, "default", names.REPLY),
    (Platform.TEAMS, ActorKind.BOT, "default", None),
    (Platform.TEAMS, ActorKind.BOT, "reply-all", names.REPLY),
    (Platform.TEAMS, ActorKind.SELF, "reply-all", None),
    (Platform.SERVICEBUS, ActorKind.HUMAN, "default", names.REPLY),
    (Platform.SERVICEBUS, ActorKind.BOT, "default", None),
    (Platform.SERVICEBUS, ActorKind.BOT, "reply-all", names.REPLY),
    (Platform.SERVICEBUS, ActorKind.SELF, "reply-all", None),
])
def test_routing_for_teams_and_servicebus(platform: Platform, kind: ActorKind, profile: str,
                                          expected: str | None) -> None:
    name = ("com.contoso.job.failed", None) if platform is Platform.SERVICEBUS else ("teams_message", "created")
    assert route(_event(platform, kind, name), profile) == expected


def test_github_keeps_triage() -> None:
    event = _event(Platform.GITHUB, ActorKind.HUMAN, ("issue_comment", "created"))
    assert route(event, "default") == names.TRIAGE


def test_markers_outside_the_text_are_evidence(world: World) -> None:
    marker = hidden_marker(SIMULATE_MARKER_KEY, "c-known", "github:e1", 1)
    event = _event(Platform.TEAMS, ActorKind.BOT).model_copy(update={"data": {"markers": [marker]}, "text": "hi"})
    decision = world.services.lineage.decide(event, routed=True)
    assert decision.chain_id == "c-known"
    assert decision.depth == 2


# --- Teams outgoing webhook --------------------------------------------------------------------------------


def test_teams_hmac_vector_verifies_and_the_reply_is_built_in_process(world: World) -> None:
    body = _activity()
    started = time.perf_counter()
    status, answer, headers = _run(world.post_teams({"Authorization": _sign(SIMULATE_TEAMS_TOKEN, body)}, body))
    assert time.perf_counter() - started < 5.0
    assert status == 200
    assert answer["type"] == "message"
    assert answer["text"]
    assert headers["X-Reynolds-Verdict"] == "accepted"
    # The orchestration answered in the channel through the bot, with the signed marker embedded.
    (posted,) = world.teams_writes
    assert posted["from"]["application"]["applicationIdentityType"] == "bot"
    assert posted["channelIdentity"] == {"teamId": TEAM, "channelId": CHANNEL}
    (marker,) = find_markers(posted["body"]["content"], SIMULATE_MARKER_KEY)
    assert marker.valid
    assert marker.event_id == "teams:1700000000555"


def test_teams_one_changed_byte_is_401(world: World) -> None:
    body = _activity()
    signature = _sign(SIMULATE_TEAMS_TOKEN, body)
    tampered = body.replace(b"crashes", b"crashed")
    status, answer, _ = _run(world.post_teams({"Authorization": signature}, tampered))
    assert status == 401
    assert answer["verdict"] == "rejected"
    status, _, _ = _run(world.post_teams({}, body))
    assert status == 401
    assert world.client.starts == 0
    assert not world.teams_writes


def test_teams_malformed_activity_is_400(world: World) -> None:
    for body in (b"not json", b"[]", json.dumps({"type": "message"}).encode()):
        status, answer, _ = _run(world.post_teams({"Authorization": "auto"}, body))
        assert status == 400, answer


def test_teams_unconfigured_token_is_503_naming_the_setting() -> None:
    with build_world(extra_settings={"TEAMS_OUTGOING_WEBHOOK_TOKEN": ""}) as bare:
        body = _activity()
        status, answer, _ = _run(bare.post_teams({"Authorization": _sign(SIMULATE_TEAMS_TOKEN, body)}, body))
    assert status == 503
    assert answer["setting"] == "TEAMS_OUTGOING_WEBHOOK_TOKEN"


def test_teams_bot_is_not_answered_in_the_default_profile(world: World) -> None:
    body = _activity(ident="1700000000777", id="28:bot-app")
    status, _, headers = _run(world.post_teams({"Authorization": "auto"}, body))
    assert status == 200
    assert headers["X-Reynolds-Verdict"] == "ignored"
    assert not world.teams_writes


# --- Graph notifications -----------------------------------------------------------------------------------


def test_subscription_handshake_runs_through_msgraph_and_the_trigger(world: World) -> None:
    _run(world.ensure_subscriptions())
    resources = sorted(s["resource"] for s in world.graph.subscriptions.values())
    assert resources == ["chats/getAllMessages", "teams/getAllMessages"]
    status, body, mimetype = _run(world.post_graph(b"", {"validationToken": "abc 123"}))
    assert (status, body, mimetype) == (200, b"abc 123", "text/plain")
    status, _, _ = _run(world.post_graph(b""))
    assert status == 400


def test_wrong_client_state_is_accepted_but_ignored(world: World) -> None:
    _run(world.ensure_subscriptions())
    message = world.graph.post_as_user("<p>hello, this is an error</p>", team=TEAM, channel=CHANNEL)
    payload = world.graph.notifications_for(message)
    for item in payload["value"]:
        item["clientState"] = "forged"
    starts = world.client.starts
    status, body, _ = _run(world.post_graph(json.dumps(payload).encode()))
    assert status == 202
    assert json.loads(body)["rejected"] == 1
    assert world.client.starts == starts


def test_malformed_notification_is_400(world: World) -> None:
    status, _, _ = _run(world.post_graph(b'{"nothing": true}'))
    assert status == 400


def test_human_message_is_answered_and_reynolds_own_message_is_self_via_the_ledger(world: World) -> None:
    _run(world.ensure_subscriptions())
    world.graph.post_as_user("<p>The importer crashes with an error</p>", team=TEAM, channel=CHANNEL)
    first = world.graph.outbox.pop(0)
    status, body, _ = _run(world.post_graph(json.dumps(first).encode()))
    assert status == 202
    assert json.loads(body)["started"] == 1
    (posted,) = world.teams_writes
    # Graph names Reynolds' delegated account as a human author; Teams may also strip the marker comment.
    posted["body"]["content"] = re.sub(r"<!--.*?-->", "", posted["body"]["content"])
    own = world.graph.outbox.pop(0)
    _run(world.post_graph(json.dumps(own).encode()))
    output = world.client.run_of(instance_id_for(f"teams:{posted['id']}")).output
    assert output["verdict"] == "self"
    assert output["effects"] == []
    stored = _stored(world, f"teams:{posted['id']}")
    assert stored["via"] == "ledger"
    assert len(world.teams_writes) == 1


def test_a_notification_and_the_webhook_for_one_message_run_once(world: World) -> None:
    _run(world.ensure_subscriptions())
    message = world.graph.post_as_user("<p>The importer crashes with an error</p>", team=TEAM, channel=CHANNEL)
    notification = world.graph.outbox.pop(0)
    _run(world.post_graph(json.dumps(notification).encode()))
    _run(world.post_graph(json.dumps(notification).encode()))  # Graph retries
    status, _, headers = _run(world.post_teams({"Authorization": "auto"}, _activity(ident=message["id"])))
    assert status == 200
    assert headers["X-Reynolds-Verdict"] == "duplicate"
    assert len(world.teams_writes) == 1


def test_bot_connector_throttling_is_retried_after_retry_after(world: World) -> None:
    from tools.simulate_bot import bot_stage

    bot_stage(world).connector.throttle_next(30)
    body = _activity()
    _run(world.post_teams({"Authorization": "auto"}, body))
    assert not world.teams_writes  # waiting on a durable timer, not sleeping in the activity
    _run(world.client.advance(None))
    run = world.client.run_of(instance_id_for("teams:1700000000555"))
    assert run.runtime_status == "Completed"
    assert [name for name, _ in run.activity_calls].count(names.POST_TEAMS) == 2
    (timer,) = run.timers
    assert (timer[1] - timer[0]).total_seconds() >= 30
    assert len(world.teams_writes) == 1


def test_lifecycle_notifications_renew_recreate_and_record_missed(world: World) -> None:
    _run(world.ensure_subscriptions())
    sub_id = next(s["id"] for s in world.graph.subscriptions.values() if s["resource"] == "teams/getAllMessages")
    for event in ("reauthorizationRequired", "missed"):
        status, body, _ = _run(world.post_graph(json.dumps(world.graph.lifecycle_notification(sub_id, event))
                                                .encode()))
        assert status == 202
        assert json.loads(body)["lifecycle"] == 1
    assert world.graph.subscriptions[sub_id]["reauthorizedCount"] == 1
    missed = world.store.read(f"graph-missed:{sub_id}", f"graph-missed:{sub_id}")
    assert missed["count"] == 1
    payload = world.graph.lifecycle_notification(sub_id, "subscriptionRemoved")
    _run(world.post_graph(json.dumps(payload).encode()))
    assert sub_id not in world.graph.subscriptions
    assert "teams/getAllMessages" in {s["resource"] for s in world.graph.subscriptions.values()}


def test_timer_renews_subscriptions_before_they_expire(world: World) -> None:
    _run(world.ensure_subscriptions())
    before = {s["id"]: s["expirationDateTime"] for s in world.graph.subscriptions.values()}
    world.clock.advance(45 * 60)
    _run(world.ensure_subscriptions())
    after = {s["id"]: s["expirationDateTime"] for s in world.graph.subscriptions.values()}
    assert set(after) == set(before)
    assert all(after[k] > before[k] for k in before)


# --- Service Bus -------------------------------------------------------------------------------------------


def _message(body: bytes, message_id: str = "m-1", **kwargs: Any) -> ServiceBusMessage:
    return ServiceBusMessage(body, message_id=message_id, content_type="application/cloudevents+json", **kwargs)


def test_poison_message_ends_dead_lettered_with_a_reason(world: World) -> None:
    settlement = _run(world.deliver_servicebus(_message(b"{not json", "poison-1")))
    assert settlement.outcome == "dead-lettered"
    assert settlement.deliveries == 10
    assert settlement.reason.startswith("invalid-json")
    assert world.client.starts == 0


def test_the_same_message_id_twice_runs_once(world: World) -> None:
    message = _message(_cloudevent("Job 42 failed with an error"), "job-42")
    first = _run(world.deliver_servicebus(message))
    second = _run(world.deliver_servicebus(message, delivery_count=2))
    assert first.outcome == second.outcome == "completed"
    assert world.client.starts == 1
    assert len(world.publisher.sent) == 1
    assert _stored(world, "servicebus:job-42")["verdict"] == "accepted"


def test_published_answer_carries_lineage_and_comes_back_as_self(world: World) -> None:
    message = _message(_cloudevent("Job 42 failed with an error"), "job-43", reply_to="reynolds-events")
    _run(world.deliver_servicebus(message))
    ((queue, sent),) = world.publisher.sent
    assert queue == "reynolds-events"
    chain = _stored(world, "servicebus:job-43")["chain_id"]
    assert sent.message_id == outbound_message_id("servicebus:job-43", "servicebus:job-43:reply")
    assert sent.session_id == chain
    props = {k.decode() if isinstance(k, bytes) else k: v for k, v in (sent.application_properties or {}).items()}
    assert props[PROP_CHAIN_ID] == chain
    assert props[PROP_EVENT_ID] == sent.message_id
    # A Service Bus producer is an automation whatever it claims ("actorkind": "human"): its event is at
    # depth 1, Reynolds' answer at depth 2.
    assert props[PROP_DEPTH] == 2
    (marker,) = find_markers(str(props[PROP_MARKER]), SIMULATE_MARKER_KEY)
    assert marker.valid
    assert marker.event_id == "servicebus:job-43"
    # The reply queue is Reynolds' own input here: the message comes back through the trigger as ``self``.
    _run(world.deliver_servicebus(sent))
    assert _stored(world, f"servicebus:{sent.message_id}")["verdict"] == "self"
    assert len(world.publisher.sent) == 1


def test_servicebus_bot_is_not_answered_in_the_default_profile(world: World) -> None:
    _run(world.deliver_servicebus(_message(_cloudevent("Job failed with an error", kind="bot"), "bot-1")))
    assert _stored(world, "servicebus:bot-1")["verdict"] == "ignored"
    assert not world.publisher.sent


# --- tools ---------------------------------------------------------------------------------------------------


def test_simulate_accepts_teams_and_servicebus_deliveries() -> None:
    from pathlib import Path

    from tools.simulate import load_items, simulate

    sample = Path(__file__).resolve().parents[1] / "samples" / "teams-servicebus.jsonl"
    lines = _run(simulate(load_items([str(sample)]), "memory"))
    teams, forged, sb, again, poison = lines
    assert (teams["delivery"], teams["status"], teams["verdict"]) == ("1700000000555", 200, "accepted")
    assert teams["effects"][0]["platform"] == "teams"
    assert (forged["status"], forged["verdict"]) == (401, "rejected")
    assert (sb["status"], sb["settlement"], sb["verdict"]) == (None, "completed", "accepted")
    assert sb["effects"][0] == {"platform": "servicebus", "kind": "message", "target": "reynolds-out",
                                "id": sb["effects"][0]["id"]}
    assert (again["verdict"], again["effects"]) == ("duplicate", [])
    assert poison["settlement"] == "dead-lettered"
    assert poison["reason"].startswith("not-cloudevent")


def test_arena_bundles_the_cross_platform_scenarios() -> None:
    from pathlib import Path

    bundled = {p.stem for p in (Path(__file__).resolve().parents[1] / "samples" / "arena").glob("*.json")}
    assert {"cross-platform-four-hop", "teams-echo-bot", "servicebus-republisher", "teams-human-conversation",
            "servicebus-fanout"} <= bundled
