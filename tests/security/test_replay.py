"""Finding 2: signed GitHub deliveries cannot be replayed; commands are bound to their comment and run once.

The signature covers the body, not ``X-GitHub-Delivery``: a captured body resent under fresh delivery ids must
be the same event (identity from the payload), and a captured ``/reynolds`` command must not act later, twice,
or on an orchestration that started after it was written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.loop.breakers import BreakerService
from shared.work.task_report import TaskReporter
from tests.test_github_commands import TASK, ParentWaiting
from tools.simulate_tasks import TRACKING_REPO, post_task, prepare
from tools.world import REYNOLDS_LOGIN, World, build_world

REPO = "octo/app"


def _headers(event: str, delivery: str) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": "auto",
            "Content-Type": "application/json"}


def _captured_comment(world: World, repo: str, number: int, body: str, login: str) -> tuple[str, bytes]:
    """A person comments; the webhook body GitHub signs for it (captured, not yet delivered)."""
    event, raw, _write = world.capture_comment(repo, number, body, login)
    return event, raw


def _reynolds_comments(world: World, repo: str, number: int) -> int:
    return sum(1 for c in world.github.comments(repo, number) if c["user"]["login"] == REYNOLDS_LOGIN)


async def test_the_same_body_under_new_delivery_ids_runs_once() -> None:
    with build_world() as world:
        world.ensure_issue(REPO, 7, "App crashes")
        world.github.add_user("alice")
        event, body = _captured_comment(world, REPO, 7, "It crashes on start, please look", "alice")
        answers = [await world.post_github(_headers(event, f"replay-{n}"), body) for n in range(3)]
        assert [a["verdict"] for _, a in answers] == ["accepted", "duplicate", "duplicate"]
        assert world.client.starts == 1
        assert _reynolds_comments(world, REPO, 7) == 1
        # Four days later (past GitHub's 3-day redelivery window) the same body is still the same event.
        world.clock.advance(4 * 86400)
        status, late = await world.post_github(_headers(event, "replay-late"), body)
        assert (status, late["verdict"]) == (200, "duplicate")
        assert world.client.starts == 1
        assert _reynolds_comments(world, REPO, 7) == 1


def test_identity_comes_from_the_payload() -> None:
    from shared.platforms.github.events import event_identity

    comment = {"action": "created", "comment": {"id": 9, "updated_at": "2026-01-01T09:00:00Z"}}
    edited = {"action": "edited", "comment": {"id": 9, "updated_at": "2026-01-01T09:05:00Z"}}
    assert event_identity("issue_comment", comment) == "issue_comment.created:9:2026-01-01T09:00:00Z"
    assert event_identity("issue_comment", edited) != event_identity("issue_comment", comment)
    two_labels = [{"action": "labeled", "issue": {"id": 1, "updated_at": "t"}, "label": {"name": name}}
                  for name in ("bug", "p1")]
    assert event_identity("issues", two_labels[0]) != event_identity("issues", two_labels[1])
    other = {"action": "completed", "workflow_run": {"id": 5}}
    assert event_identity("workflow_run", other) == event_identity("workflow_run", json.loads(json.dumps(other)))


async def _waiting(world: World) -> tuple[str, int, ParentWaiting]:
    prepare(world)
    status, answer = await post_task(world, TASK)
    assert status == 202
    issue = next(w for w in world.reynolds_writes if w.kind == "issue")
    stub = ParentWaiting(world.client, answer["instance_id"], "s2")
    world.client = stub  # type: ignore[assignment]
    world.github.add_user("maria")
    world.github.set_association(TRACKING_REPO, "maria", "COLLABORATOR")
    return answer["instance_id"], issue.number, stub


def _last_reply(world: World) -> str:
    return str(world.reynolds_writes[-1].resource.get("body") or "")


async def test_a_captured_approve_replayed_days_later_approves_nothing() -> None:
    with build_world() as world:
        instance, number, stub = await _waiting(world)
        event, body = _captured_comment(world, TRACKING_REPO, number, "/reynolds approve", "maria")
        status, first = await world.post_github(_headers(event, "approve-1"), body)
        assert (status, first["verdict"]) == (202, "accepted")
        assert stub.raised == [(f"{instance}:s2", "approval", {"approved": True, "by": "maria"})]
        world.clock.advance(3 * 86400)
        for n in range(3):
            status, again = await world.post_github(_headers(event, f"approve-replay-{n}"), body)
            assert again["verdict"] == "duplicate", again
        assert len(stub.raised) == 1


async def test_a_command_delivered_late_is_refused_with_a_reply() -> None:
    with build_world() as world:
        _instance, number, stub = await _waiting(world)
        event, body = _captured_comment(world, TRACKING_REPO, number, "/reynolds approve", "maria")
        world.clock.advance(3 * 86400)  # first seen three days after it was written
        status, answer = await world.post_github(_headers(event, "late-approve"), body)
        assert (status, answer["verdict"]) == (202, "accepted")
        assert stub.raised == []
        assert "only on commands written in the last 15 minutes" in _last_reply(world)


async def test_a_command_never_reaches_an_orchestration_started_after_it() -> None:
    with build_world() as world:
        _instance, number, stub = await _waiting(world)
        event, body = _captured_comment(world, TRACKING_REPO, number, "/reynolds cancel", "maria")
        # A newer orchestration now reports on the issue; the old comment is delivered afterwards.
        world.clock.advance(60)
        newer = "task-newer-run"
        TaskReporter(world.services).track(f"{TRACKING_REPO}#{number}", newer)
        stub.instance = newer
        stub_status = stub.get_status

        async def started_later(instance_id: str, *args: Any, **kwargs: Any) -> Any:
            found = await stub_status(instance_id, *args, **kwargs)
            if instance_id == newer:
                found.created_time = world.clock()
            return found

        stub.get_status = started_later  # type: ignore[method-assign]
        world.clock.advance(60)
        status, answer = await world.post_github(_headers(event, "cancel-after"), body)
        assert (status, answer["verdict"]) == (202, "accepted")
        assert stub.raised == []
        assert "started after this comment was written" in _last_reply(world)


async def test_a_replayed_or_stale_resume_does_not_reset_breakers(monkeypatch: pytest.MonkeyPatch) -> None:
    with build_world() as world:
        world.ensure_issue(REPO, 9, "Loop")
        world.github.add_user("maria")
        world.github.set_association(REPO, "maria", "MEMBER")
        resets: list[tuple[str, str]] = []
        original = BreakerService.reset

        def recording_reset(self: BreakerService, *, platform: str, target: str) -> list[str]:
            resets.append((platform, target))
            return original(self, platform=platform, target=target)

        monkeypatch.setattr(BreakerService, "reset", recording_reset)
        event, body = _captured_comment(world, REPO, 9, "/reynolds resume", "maria")
        await world.post_github(_headers(event, "resume-1"), body)
        assert resets == [("github", f"{REPO}#9")]
        for n in range(2):
            await world.post_github(_headers(event, f"resume-replay-{n}"), body)
        assert len(resets) == 1
        stale_event, stale = _captured_comment(world, REPO, 9, "/reynolds resume", "maria")
        world.clock.advance(3600)
        status, answer = await world.post_github(_headers(stale_event, "resume-stale"), stale)
        assert (status, answer["verdict"]) == (202, "accepted")
        assert len(resets) == 1
