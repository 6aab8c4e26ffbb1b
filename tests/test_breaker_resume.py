"""An open breaker leaves one note, stops Reynolds on the thread, and a collaborator's resume reopens it."""

from __future__ import annotations

from tools.world import World, build_world

REPO = "octo/app"


async def _act(world: World, login: str, body: str, number: int = 7) -> dict[str, object]:
    world.clock.advance(5)
    _status, answer = await world.comment(REPO, number, body, login)
    return answer


def _bodies(world: World) -> list[str]:
    return [str(w.resource.get("body") or "") for w in world.reynolds_writes]


async def test_note_once_then_resume_by_a_collaborator() -> None:
    with build_world(profile="reply-all") as world:
        world.ensure_issue(REPO, 7, "Crash on start", "alice")
        for login in ("relay-user", "maria"):
            world.github.add_user(login)
        world.github.set_association(REPO, "maria", "COLLABORATOR")

        await _act(world, "relay-user", "Echo: the same words again")
        assert len(world.reynolds_writes) == 1  # answered
        await _act(world, "relay-user", "Echo: the same words again")
        bodies = _bodies(world)
        assert len(bodies) == 2
        # Repeated within seconds of Reynolds' answer (a machine's pace): the counterpart breaker opens, one note.
        assert "Reynolds · paused" in bodies[1]
        await _act(world, "relay-user", "Echo: the same words again")
        assert len(world.reynolds_writes) == 2  # open: no answer, no second note

        await _act(world, "maria", "/reynolds resume")
        assert "Resumed by maria" in _bodies(world)[-1]
        assert world.services.breakers.state("br:github:octo/app#7:relay-user").state == "closed"  # type: ignore[union-attr]

        await _act(world, "relay-user", "Echo: something new after the resume")
        assert "Reynolds · triage" in _bodies(world)[-1]


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
    with build_world(profile="reply-all") as world:
        world.ensure_issue(REPO, 7, "Crash on start", "alice")
        world.github.add_user("relay-user")
        world.github.add_user("stranger")
        for _ in range(2):
            await _act(world, "relay-user", "Echo: loop text")
        await _act(world, "stranger", "/reynolds resume")
        state = world.services.breakers.state("br:github:octo/app#7:relay-user")
        assert state is not None
        assert state.state == "open"
