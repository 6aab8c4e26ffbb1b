"""The arena DSL's additions for loop guard v3: the event's own timestamp (``created_at_offset_seconds``),
reactions and labels, each delivered as the platform delivers it (or not at all), seen on the wire."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tools.arena import Scenario, run_scenario
from tools.fakes.github.app_api import delivery_log
from tools.world import START, World

ROOT = Path(__file__).resolve().parents[1]


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _play(spec: dict[str, Any]) -> tuple[dict[str, Any], World]:
    seen: list[World] = []
    result = asyncio.run(run_scenario(Scenario.model_validate(spec), "memory", inspect=seen.append))
    return result, seen[0]


def _issue(at: float = 0, **action: Any) -> dict[str, Any]:
    return {"at": at, "actor": {"login": "alice", "type": "User"},
            "action": {"platform": "github", "kind": "issue", "repo": "octo/app", "number": 7,
                       "body": "The export crashes", **action}}


def _deliveries(world: World, event: str, action: str | None = None) -> list[tuple[datetime, dict[str, Any]]]:
    return [(d.delivered_at, json.loads(d.body)) for d in delivery_log(world.github).items
            if d.event == event and (action is None or d.action == action)]


def test_every_bundled_scenario_still_parses() -> None:
    for path in sorted((ROOT / "samples" / "arena").glob("*.json")):
        Scenario.model_validate_json(path.read_text(encoding="utf-8"))


def test_a_backdated_comment_carries_its_own_created_at_and_is_delivered_now() -> None:
    spec = {"name": "backlog", "expect": "legit", "until_seconds": 4000,
            "start": [_issue(),
                      {"at": 1800, "actor": {"login": "bob", "type": "User"},
                       "action": {"platform": "github", "kind": "comment", "number": 7, "body": "Same here",
                                  "created_at_offset_seconds": -1500}}]}
    _result, world = _play(spec)
    (delivered_at, payload), = [(at, p) for at, p in _deliveries(world, "issue_comment", "created")
                                if p["sender"]["login"] == "bob"]
    created = _iso(payload["comment"]["created_at"])
    assert created == START + timedelta(seconds=300)
    assert delivered_at == START + timedelta(seconds=1801)  # delivered at its time + the webhook's latency
    assert _iso(payload["comment"]["updated_at"]) == created
    # Reynolds' own answer is stamped when it wrote it: the offset is the actor's only.
    reynolds = [p for _, p in _deliveries(world, "issue_comment", "created")
                if p["sender"]["login"] == "reynolds[bot]"]
    assert _iso(reynolds[-1]["comment"]["created_at"]) > START + timedelta(seconds=1800)


def test_a_backdated_teams_message_has_an_earlier_created_date_time() -> None:
    spec = {"name": "teams backlog", "expect": "legit",
            "start": [{"at": 900, "actor": {"login": "ada", "type": "User"},
                       "action": {"platform": "teams", "kind": "message", "channel": "support",
                                  "body": "Is the importer down?", "created_at_offset_seconds": -600}}]}
    _result, world = _play(spec)
    (message,) = [m for m in world.graph.messages[("channel", "arena-team", "support")].values()
                  if not world.graph.is_poster(m)]
    assert _iso(message["createdDateTime"]) == START + timedelta(seconds=300)


def test_a_backdated_servicebus_message_has_an_earlier_enqueued_time_and_cloudevent_time() -> None:
    spec = {"name": "sb backlog", "expect": "legit",
            "start": [{"at": 900, "actor": {"login": "job", "type": "Bot"},
                       "action": {"platform": "servicebus", "kind": "message", "queue": "reynolds-events",
                                  "body": "The nightly export failed", "created_at_offset_seconds": -600}}]}
    captured: list[Any] = []
    original = World.deliver_servicebus

    async def spy(self: World, message: Any, **kwargs: Any) -> Any:
        captured.append((json.loads(b"".join(message.body)), kwargs.get("enqueued_time")))
        return await original(self, message, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(World, "deliver_servicebus", spy)
        _play(spec)
    (event, enqueued), = captured
    assert enqueued == START + timedelta(seconds=300)
    assert _iso(event["time"]) == enqueued


def test_offsets_are_never_positive() -> None:
    with pytest.raises(ValidationError, match="created_at_offset_seconds"):
        Scenario.model_validate({"name": "x", "expect": "legit",
                                 "start": [_issue(created_at_offset_seconds=5)]})


def test_a_github_reaction_is_stored_but_never_delivered() -> None:
    """GitHub has no webhook event for reactions: the reaction is on the comment, Reynolds hears nothing."""
    spec = {"name": "reactions", "expect": "loop", "max_reynolds_effects": 1,
            "start": [_issue()],
            "actors": [{"actor": {"login": "thumbs[bot]", "type": "Bot"},
                        "on": {"platform": "github", "kind": "comment", "by": "reynolds"},
                        "do": {"platform": "github", "kind": "reaction", "number": "same", "content": "+1"},
                        "delay_seconds": 3}]}
    result, world = _play(spec)
    (comment,) = world.github.comments("octo/app", 7)
    reactions = world.github.reactions("octo/app", comment_id=comment["id"])
    assert [(r["content"], r["user"]["login"]) for r in reactions] == [("+1", "thumbs[bot]")]
    assert result["events"] == len(delivery_log(world.github).items) == 2  # the issue and Reynolds' comment
    assert result["stopped"]
    assert result["reynolds_effects"] == 1


def test_github_refuses_a_reaction_it_does_not_have() -> None:
    with pytest.raises(ValidationError, match="GitHub reactions"):
        Scenario.model_validate({"name": "x", "expect": "legit",
                                 "start": [_issue(kind="reaction", content="party")]})


def test_a_label_is_delivered_as_issues_labeled_with_githubs_payload_shape() -> None:
    fixture = ROOT.parent / "shared" / "fixtures" / "github-webhooks" / "api.github.com" / "issues"
    upstream = json.loads((fixture / "labeled.payload.json").read_text(encoding="utf-8"))
    spec = {"name": "label bot", "expect": "loop", "max_reynolds_effects": 100, "until_seconds": 600,
            "start": [_issue()],
            "actors": [{"actor": {"login": "triage[bot]", "type": "Bot"},
                        "on": {"platform": "github", "kind": "comment", "by": "reynolds"},
                        "do": {"platform": "github", "kind": "label", "number": "same", "label": "seen-{n}"},
                        "delay_seconds": 3, "max_actions": 2}]}
    _result, world = _play(spec)
    labeled = [p for _, p in _deliveries(world, "issues", "labeled") if p["sender"]["login"] == "triage[bot]"]
    assert [p["label"]["name"] for p in labeled] == ["seen-1", "seen-2"][:len(labeled)]
    assert labeled
    for payload in labeled:
        assert set(upstream) <= set(payload)
        assert set(upstream["label"]) <= set(payload["label"])
    assert "seen-1" in world.github.labels("octo/app", 7)


def test_actors_can_answer_reactions_and_labels() -> None:
    spec = {"name": "chain of kinds", "expect": "legit",
            "start": [_issue()],
            "actors": [{"actor": {"login": "eyes-bot", "type": "User"},
                        "on": {"platform": "github", "kind": "comment", "by": "reynolds"},
                        "do": {"platform": "github", "kind": "reaction", "number": "same", "content": "eyes"},
                        "delay_seconds": 2, "max_actions": 1},
                       {"actor": {"login": "labeler", "type": "User"},
                        "on": {"platform": "github", "kind": "reaction", "by": "eyes-bot"},
                        "do": {"platform": "github", "kind": "label", "number": "same", "label": "watched"},
                        "delay_seconds": 2, "max_actions": 1}]}
    _result, world = _play(spec)
    assert "watched" in world.github.labels("octo/app", 7)


def test_a_teams_reaction_marks_the_message_and_reaches_only_updated_subscriptions() -> None:
    """Teams stores a chatMessageReaction on the message; Graph reports it as an ``updated`` change, and Reynolds'
    subscriptions (``created``) get nothing."""
    spec = {"name": "teams reactions", "expect": "legit",
            "start": [{"at": 0, "actor": {"login": "ada", "type": "User"},
                       "action": {"platform": "teams", "kind": "message", "channel": "support",
                                  "body": "The importer fails on large files"}}],
            "actors": [{"actor": {"login": "ada", "type": "User"},
                        "on": {"platform": "teams", "kind": "message", "by": "reynolds"},
                        "do": {"platform": "teams", "kind": "reaction", "channel": "same", "content": "+1",
                               "created_at_offset_seconds": -1},
                        "delay_seconds": 30}]}
    result, world = _play(spec)
    messages = world.graph.messages[("channel", "arena-team", "support")]
    (answer,) = [m for m in messages.values() if world.graph.is_poster(m)]
    (reaction,) = answer["reactions"]
    assert reaction["reactionType"] == "like"
    assert reaction["user"]["user"]["displayName"] == "ada"
    assert _iso(answer["lastModifiedDateTime"]) == _iso(reaction["createdDateTime"])
    assert {s["changeType"] for s in world.graph.subscriptions.values()} == {"created"}
    assert world.graph.notifications_for(answer, "updated")["value"] == []
    assert result["events"] == 2
    assert result["reynolds_effects"] == 1


def test_servicebus_has_no_reactions_or_labels() -> None:
    for kind in ("reaction", "label"):
        with pytest.raises(ValidationError, match="is not one of"):
            Scenario.model_validate({"name": "x", "expect": "legit", "start": [
                {"at": 0, "actor": {"login": "job"}, "action": {"platform": "servicebus", "kind": kind,
                                                               "queue": "q", "content": "+1", "label": "x"}}]})


def test_an_actor_can_notice_only_the_threads_it_takes_part_in() -> None:
    spec = {"name": "own threads", "expect": "legit", "until_seconds": 600,
            "start": [_issue(), _issue(at=1, number=8, body="Another report"),
                      {"at": 2, "actor": {"login": "watcher", "type": "User"},
                       "action": {"platform": "github", "kind": "comment", "number": 8, "body": "I own this one"}}],
            "actors": [{"actor": {"login": "watcher", "type": "User"},
                        "on": {"platform": "github", "kind": "comment", "by": "reynolds", "thread": "own"},
                        "do": {"platform": "github", "kind": "reaction", "number": "same", "content": "eyes"},
                        "delay_seconds": 1}]}
    _result, world = _play(spec)
    reacted = {n for n in (7, 8) for c in world.github.comments("octo/app", n)
               if world.github.reactions("octo/app", comment_id=c["id"])}
    assert reacted == {8}


def test_a_teams_reaction_is_delivered_as_an_updated_change_to_a_subscription_that_asks_for_it() -> None:
    """Were Reynolds subscribed to ``updated`` changes, Graph would notify it of the reaction: the arena does."""
    original = World.ensure_subscriptions

    async def with_updates(self: World) -> None:
        await original(self)
        for sub in self.graph.subscriptions.values():
            sub["changeType"] = "created,updated"

    spec = {"name": "teams reactions, updated subscribed", "expect": "legit",
            "start": [{"at": 0, "actor": {"login": "ada", "type": "User"},
                       "action": {"platform": "teams", "kind": "message", "channel": "support",
                                  "body": "The importer fails on large files"}}],
            "actors": [{"actor": {"login": "ada", "type": "User"},
                        "on": {"platform": "teams", "kind": "message", "by": "reynolds"},
                        "do": {"platform": "teams", "kind": "reaction", "channel": "same", "content": "heart"},
                        "delay_seconds": 30, "max_actions": 1}]}
    posted: list[dict[str, Any]] = []
    post = World.post_graph

    async def spy(self: World, body: bytes, params: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        if body:
            posted.append(json.loads(body))
        return await post(self, body, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(World, "ensure_subscriptions", with_updates)
        patch.setattr(World, "post_graph", spy)
        result, _world = _play(spec)
    changes = [item["changeType"] for payload in posted for item in payload["value"]]
    assert changes.count("updated") == 1
    assert result["events"] == 3  # ada's message, Reynolds' answer, and the reaction's update


def test_a_bot_on_a_user_account_held_among_people_is_not_a_person_held() -> None:
    spec = {"name": "bot among people", "expect": "loop", "max_reynolds_effects": 100, "humans_never_blocked": True,
            "until_seconds": 3600,
            "start": [_issue(), {"at": 30, "actor": {"login": "member-{n}", "type": "User"}, "repeat": 2,
                                 "interval_seconds": 60,
                                 "action": {"platform": "github", "kind": "comment", "number": 7,
                                            "body": ["I see it too on linux", "Same on my mac"]}}],
            "actors": [{"actor": {"login": "echo-user", "type": "User"},
                        "on": {"platform": "github", "kind": "comment", "by": "reynolds"},
                        "do": {"platform": "github", "kind": "comment", "number": "same", "body": "{text}"},
                        "delay_seconds": 2}]}
    result, _world = _play(spec)
    assert result["blocked_human_events"] >= 1  # the echoing user account was held: GitHub types it a user
    assert result["blocked_people_events"] == 0
    assert result["passed"]


def test_the_door_reads_the_backdated_time_as_the_events_own_timestamp() -> None:
    """The envelope's ``occurred_at`` (the guard's name for the event's own time) is the arena's backdated time."""
    from shared.platforms.github.events import read_delivery, signature_for, to_envelope
    from tools.world import SIMULATE_WEBHOOK_SECRET

    spec = {"name": "backlog", "expect": "legit", "until_seconds": 4000,
            "start": [_issue(created_at_offset_seconds=-60),
                      {"at": 1800, "actor": {"login": "bob", "type": "User"},
                       "action": {"platform": "github", "kind": "comment", "number": 7, "body": "Same here",
                                  "created_at_offset_seconds": -1500}}]}
    _result, world = _play(spec)
    stamped = {}
    for item in delivery_log(world.github).items:
        signed = item.headers | {"X-Hub-Signature-256": signature_for(SIMULATE_WEBHOOK_SECRET, item.body)}
        delivery = read_delivery(SIMULATE_WEBHOOK_SECRET, item.body, signed)
        envelope = to_envelope(delivery, received_at=item.delivered_at, bot_login="reynolds[bot]", bot_app_id=None)
        stamped[envelope.actor.login] = (envelope.occurred_at, item.delivered_at)
    assert stamped["bob"] == (START + timedelta(seconds=300), START + timedelta(seconds=1801))
    assert stamped["alice"] == (START - timedelta(seconds=60), START + timedelta(seconds=1))
