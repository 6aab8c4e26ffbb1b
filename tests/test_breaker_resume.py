"""An open breaker leaves one note, stops Reynolds on the thread, and a collaborator's resume reopens it."""

from __future__ import annotations

import pytest

from activities.reply import resumed
from shared.work.reply import ReplyInput
from shared.work.triage import TriagePlan
from tools.world import World, build_world

REPO = "octo/app"


async def _act(world: World, login: str, body: str, number: int = 7) -> dict[str, object]:
    world.clock.advance(5)
    _status, answer = await world.comment(REPO, number, body, login)
    return answer


def _bodies(world: World) -> list[str]:
    return [str(w.resource.get("body") or "") for w in world.reynolds_writes]


#: A breaker that opens on an automation's second counted exchange, and loop rules roomy enough to let it.
TIGHT = {"LOOP_COUNTERPART_MAX_WRITES": "1", "LOOP_CHAIN_BUDGET": "50", "LOOP_MAX_AUTOMATED_DEPTH": "50"}
BOT = "echo[bot]"
BREAKER = f"br:github:octo:actor:github:{BOT}"


async def _bot_hops_until_the_breaker_opens(world: World) -> None:
    world.ensure_issue(REPO, 7, "Crash on start", "alice")
    world.ensure_issue("octo/lib", 3, "Crash in the library", "alice")
    world.github.add_user(BOT, type="Bot")
    await _act(world, BOT, "Build report one")  # unprompted: answered, not an exchange
    world.clock.advance(5)
    _status, answer = await world.comment("octo/lib", 3, "Build report two", BOT)  # hops: exchange 1, counted
    assert answer["verdict"] == "accepted"
    await _act(world, BOT, "Build report three")  # exchange 2: the organisation breaker opens, one note
    bodies = _bodies(world)
    assert len(bodies) == 3
    assert "Reynolds · paused" in bodies[-1]


async def test_note_once_then_resume_by_a_collaborator_clears_every_hold_and_says_which() -> None:
    with build_world(profile="reply-all", extra_settings=TIGHT) as world:
        await _bot_hops_until_the_breaker_opens(world)
        world.github.add_user("maria")
        world.github.set_association(REPO, "maria", "COLLABORATOR")
        # The breaker first counted a write on octo/lib#3; resume on octo/app#7 (where the note is) finds it.
        await _act(world, "maria", "/reynolds resume")
        said = _bodies(world)[-1]
        assert "Resumed by maria" in said
        assert f"`{BREAKER}`" in said
        assert f"`github:{BOT}`" in said
        assert world.services.breakers.state(BREAKER).state == "closed"  # type: ignore[union-attr]

        await _act(world, BOT, "Build report four")
        assert "Reynolds · triage" in _bodies(world)[-1]


async def test_resume_clears_a_counterpart_the_loop_guard_judged_by_its_repeats() -> None:
    with build_world(profile="reply-all") as world:
        world.ensure_issue(REPO, 7, "Crash on start", "alice")
        for login in ("relay-user", "maria"):
            world.github.add_user(login)
        world.github.set_association(REPO, "maria", "COLLABORATOR")
        verdicts = [(await _act(world, "relay-user", "Echo: the same words again"))["verdict"] for _ in range(3)]
        # Answering Reynolds with one text again and again: the third is held, whatever the account type.
        assert verdicts == ["accepted", "accepted", "loop"]
        await _act(world, "maria", "/reynolds resume")
        assert "`github:relay-user`" in _bodies(world)[-1]
        world.clock.advance(600)
        assert (await _act(world, "relay-user", "Echo: the same words again"))["verdict"] == "accepted"


async def test_a_person_asking_again_at_a_persons_pace_is_answered() -> None:
    with build_world(profile="reply-all") as world:
        world.ensure_issue(REPO, 7, "Crash on start", "alice")
        world.github.add_user("bob")
        for pause in (1200, 4000, 1200):
            await _act(world, "bob", "Any update on this?")
            world.clock.advance(pause)  # a person's pace: twice an hour at most
        await _act(world, "bob", "Any update on this?")
        assert len(world.reynolds_writes) == 4
        assert not any("Reynolds · paused" in body for body in _bodies(world))


async def test_resume_by_someone_without_write_access_changes_nothing() -> None:
    with build_world(profile="reply-all", extra_settings=TIGHT) as world:
        await _bot_hops_until_the_breaker_opens(world)
        world.github.add_user("stranger")
        await _act(world, "stranger", "/reynolds resume")
        state = world.services.breakers.state(BREAKER)
        assert state is not None
        assert state.state == "open"


def _trip(world: World, platform: str, target: str, counterpart: str | None) -> str:
    """Open the target breaker of ``target`` with automations' exchanges; its key."""
    breakers = world.services.breakers
    for _ in range(breakers.config.target_max_writes + 1):
        world.clock.advance(1)
        breakers.permit(platform=platform, target=target, counterpart=counterpart, text_fp=None,
                        now=world.clock(), depth=2)
    key = f"br:{platform}:{target}"
    assert breakers.state(key).state == "open"  # type: ignore[union-attr]
    return key


@pytest.mark.parametrize(("platform", "target", "kind"), [
    ("teams", "teams:team-1/general", "human"), ("servicebus", "reynolds-out", "bot")])
def test_resume_in_teams_and_on_service_bus_closes_the_threads_breakers(platform: str, target: str,
                                                                       kind: str) -> None:
    with build_world(profile="reply-all") as world:
        key = _trip(world, platform, target, "relay-bot" if platform == "teams" else None)
        request = ReplyInput(event_id=f"{platform}:resume-1", event_type="t", chain_id="c-1", depth=0,
                             platform=platform, target=target, queue=target if platform == "servicebus" else None,
                             actor="ada", actor_kind=kind, text="/reynolds resume")
        plan = TriagePlan(kind="question", signals=[], labels=[], summary="s")
        answered = resumed(world.services, request, plan)
        assert answered.kind == "command"
        assert f"`{key}`" in answered.summary
        assert world.services.breakers.state(key).state == "closed"  # type: ignore[union-attr]
        # Said again (a re-run of the activity): nothing holds the thread any more, and it says so.
        assert "nothing was holding" in resumed(world.services, request, plan).summary


def test_a_teams_bot_cannot_resume() -> None:
    with build_world(profile="reply-all") as world:
        key = _trip(world, "teams", "teams:team-1/general", "relay-bot")
        request = ReplyInput(event_id="teams:resume-2", event_type="t", chain_id="c-1", depth=1, platform="teams",
                             target="teams:team-1/general", actor="relay-bot", actor_kind="bot",
                             text="/reynolds resume")
        plan = TriagePlan(kind="question", signals=[], labels=[], summary="s")
        assert resumed(world.services, request, plan) == plan
        assert world.services.breakers.state(key).state == "open"  # type: ignore[union-attr]
