"""Triage end to end: webhook → loop guard → the real durable replay → one signed comment on the fake GitHub.

Also the activity's at-least-once contract: a re-run posts nothing new, and a crash between the write and its
ledger record is reconciled by finding the marker on GitHub.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import names
from shared.errors import RetryLater
from shared.loop.lineage import LineageService
from shared.loop.marker import find_markers, hidden_marker
from tools.fakes.github import WriteEvent
from tools.harness.app_index import user_function
from tools.simulate import raw_body
from tools.world import REYNOLDS_LOGIN, SIMULATE_MARKER_KEY, World, build_world

SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "samples" / "issues-opened.json").read_text())
REPO, NUMBER = "octo/app", 7


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as w:
        yield w


def sample_delivery() -> tuple[dict[str, str], bytes, dict[str, Any]]:
    """The sample ``issues.opened`` delivery under a fresh delivery id."""
    payload = json.loads(json.dumps(SAMPLE["body"]))
    headers = {**SAMPLE["headers"], "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": "auto"}
    return headers, raw_body(payload), payload


async def deliver_sample(world: World) -> dict[str, Any]:
    headers, body, payload = sample_delivery()
    world.seed_from_payload(payload)
    status, answer = await world.post_github(headers, body)
    assert (status, answer["verdict"]) == (202, "accepted"), answer
    return answer


def reynolds_comments(world: World, repo: str = REPO, number: int = NUMBER) -> list[dict[str, Any]]:
    return [c for c in world.github.comments(repo, number) if c["user"]["login"] == REYNOLDS_LOGIN]


def report_payload(world: World, instance_id: str, attempt: int | None = None) -> dict[str, Any]:
    """The input the orchestration gave the report activity (as recorded by the replay); ``attempt`` set, a
    later retry's input (the orchestration retries a failed report with the next attempt number)."""
    calls = [payload for name, payload in world.client.run_of(instance_id).activity_calls if name == names.REPORT]
    assert len(calls) == 1, calls
    payload = json.loads(json.dumps(calls[0]))
    return payload if attempt is None else {**payload, "attempt": attempt}


def ledger(world: World, event_id: str) -> dict[str, Any]:
    key = f"fx:{event_id}:report"
    return world.store.read(key, key)


# ------------------------------------------------------------------------------------------ end to end
async def test_issue_opened_is_triaged_with_one_signed_comment(world: World) -> None:
    answer = await deliver_sample(world)
    instance_id = answer["instance_id"]
    assert await world.runtime_status(instance_id) == "Completed"
    run = world.client.run_of(instance_id)
    assert [name for name, _ in run.activity_calls] == [names.PLAN, names.REPORT]
    assert run.output["event_id"] == answer["event_id"]
    assert run.output["plan"]["kind"] == "bug"

    comments = reynolds_comments(world)
    assert len(comments) == 1
    comment = comments[0]
    assert "Reynolds · triage" in comment["body"]
    assert "**bug**" in comment["body"]
    markers = find_markers(comment["body"], SIMULATE_MARKER_KEY)
    assert len(markers) == 1
    marker = markers[0]
    assert marker.valid
    assert (marker.event_id, marker.chain_id, marker.depth) == (answer["event_id"], answer["chain_id"], 1)
    assert not find_markers(comment["body"], "some-other-key")[0].valid

    effect = ledger(world, answer["event_id"])
    assert (effect["state"], effect["resource_id"]) == ("done", f"comment:{comment['id']}")
    assert effect["chain_id"] == answer["chain_id"]
    assert run.output["effects"] == [{"platform": "github", "kind": "comment", "target": f"{REPO}#{NUMBER}",
                                      "id": str(comment["id"])}]
    index = world.store.read(f"fr:github:comment:{comment['id']}", f"fr:github:comment:{comment['id']}")
    assert (index["chain_id"], index["event_id"]) == (answer["chain_id"], answer["event_id"])


async def test_issue_opened_on_the_fake_github_is_triaged(world: World) -> None:
    """The delivery is the one GitHub would send for a person's write (``FakeGitHub.webhook_for``)."""
    world.github.add_repo("octo/docs")
    world.github.add_user("bob")
    writes: list[WriteEvent] = []
    world.github.on_write.append(writes.append)
    world.github.create_issue("octo/docs", "Typo in the README", "The documentation has a typo.", login="bob")
    delivery = world.github.webhook_for(writes[-1])
    assert delivery is not None
    event, payload = delivery
    assert (event, payload["action"], payload["sender"]["login"]) == ("issues", "opened", "bob")
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": "auto",
               "Content-Type": "application/json"}
    status, answer = await world.post_github(headers, raw_body(payload))
    assert (status, answer["verdict"]) == (202, "accepted"), answer
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    number = payload["issue"]["number"]
    comments = reynolds_comments(world, "octo/docs", number)
    assert len(comments) == 1
    assert "**docs**" in comments[0]["body"]
    (marker,) = find_markers(comments[0]["body"], SIMULATE_MARKER_KEY)
    assert marker.valid
    assert marker.event_id == answer["event_id"]


# ------------------------------------------------------------------------------------------ idempotency
async def test_rerunning_the_report_activity_posts_nothing_new(world: World) -> None:
    answer = await deliver_sample(world)
    payload = report_payload(world, answer["instance_id"])
    (first,) = reynolds_comments(world)
    writes = len(world.github.writes())
    effect = user_function(names.REPORT)(payload)
    assert effect["id"] == str(first["id"])
    assert reynolds_comments(world) == [first]
    assert len(world.github.writes()) == writes


@pytest.fixture
def crashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The worker dies once right after the GitHub write, before the ledger records it (the resource id)."""
    real_complete = LineageService.complete_effect
    crashed: list[str] = []

    def crash_once(self: LineageService, record: Any, resource_id: str, text: str) -> Any:
        if not crashed:
            crashed.append(resource_id)
            raise RuntimeError("worker lost after the GitHub write")
        return real_complete(self, record, resource_id, text)

    monkeypatch.setattr(LineageService, "complete_effect", crash_once)
    return crashed


async def test_crash_after_the_comment_is_reconciled_by_its_marker(world: World, crashes: list[str]) -> None:
    answer = await deliver_sample(world)
    assert crashes, "the simulated crash did not happen"
    # The failed report waits on a durable backoff timer before its next attempt.
    assert await world.runtime_status(answer["instance_id"]) == "Running"
    (posted,) = reynolds_comments(world)
    assert crashes == [f"comment:{posted['id']}"]
    assert ledger(world, answer["event_id"])["state"] == "intent"
    with pytest.raises(RetryLater, match="being written by attempt 1"):
        # A concurrent duplicate of the same attempt never writes.
        user_function(names.REPORT)(report_payload(world, answer["instance_id"]))

    # The next attempt must find its own comment, not post a second.
    effect = user_function(names.REPORT)(report_payload(world, answer["instance_id"], attempt=2))
    assert effect["id"] == str(posted["id"])
    assert reynolds_comments(world) == [posted]
    stored = ledger(world, answer["event_id"])
    assert (stored["state"], stored["resource_id"]) == ("done", f"comment:{posted['id']}")


async def test_the_orchestration_retries_a_failed_report_by_itself(world: World, crashes: list[str]) -> None:
    answer = await deliver_sample(world)
    await world.client.advance(None)
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    run = world.client.run_of(answer["instance_id"])
    assert [p.get("attempt") for n, p in run.activity_calls if n == names.REPORT] == [1, 2]
    ((created, fires),) = run.timers  # the wait was one durable timer, backoff from 5 s
    assert (fires - created).total_seconds() >= 2.5  # equal jitter: half of the 5 s base at least
    (posted,) = reynolds_comments(world)
    assert ledger(world, answer["event_id"])["resource_id"] == f"comment:{posted['id']}"




async def test_crash_before_the_comment_posts_exactly_one_on_rerun(world: World) -> None:
    world.github.fail_next("POST", r"/issues/\d+/comments$", 422)
    answer = await deliver_sample(world)
    assert await world.runtime_status(answer["instance_id"]) == "Running"  # waiting to retry
    assert reynolds_comments(world) == []
    assert ledger(world, answer["event_id"])["state"] == "intent"

    effect = user_function(names.REPORT)(report_payload(world, answer["instance_id"], attempt=2))
    (posted,) = reynolds_comments(world)
    assert effect["id"] == str(posted["id"])
    (marker,) = find_markers(posted["body"], SIMULATE_MARKER_KEY)
    assert marker.valid
    assert marker.event_id == answer["event_id"]
    assert user_function(names.REPORT)(report_payload(world, answer["instance_id"], 3))["id"] == str(posted["id"])
    await world.client.advance(None)  # the orchestration's own retry finds the effect done
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    assert len(reynolds_comments(world)) == 1


async def test_a_person_quoting_the_marker_is_not_taken_for_reynolds_comment() -> None:
    """Reconciliation trusts only Reynolds' own comments: a copied marker elsewhere does not count as posted.

    """
    with build_world(extra_settings={"LOOP_COUNTERPART_MAX_REPEATS": "100"}) as world:
        await _quoted_marker_is_not_reconciled(world)


async def _quoted_marker_is_not_reconciled(world: World) -> None:
    world.github.fail_next("POST", r"/issues/\d+/comments$", 422)
    answer = await deliver_sample(world)
    assert reynolds_comments(world) == []
    world.github.add_user("mallory")

    forged_echo = f"I copied this: {hidden_marker(SIMULATE_MARKER_KEY, answer['chain_id'], answer['event_id'], 1)}"
    world.github.create_comment(REPO, NUMBER, forged_echo, login="mallory")
    user_function(names.REPORT)(report_payload(world, answer["instance_id"], attempt=2))
    (posted,) = reynolds_comments(world)
    assert ledger(world, answer["event_id"])["resource_id"] == f"comment:{posted['id']}"


async def test_five_failed_writes_no_longer_give_the_answer_up(world: World) -> None:
    """GitHub failing more often than the old 5-attempt cap: the answer waits on durable timers and is posted."""
    world.github.fail_next("POST", r"/issues/\d+/comments$", 502, times=8)
    answer = await deliver_sample(world)
    await world.client.advance(None)
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    assert len(reynolds_comments(world)) == 1
    assert len([c for c in world.github.calls if c.method == "POST" and c.status == 502]) == 8


async def test_an_orchestration_that_gave_up_runs_again_on_redelivery(world: World) -> None:
    """Every retry failed for more than a day (a permanent 422): the event is not lost, a redelivery runs it
    again."""
    world.github.fail_next("POST", r"/issues/\d+/comments$", 422, times=10_000)
    headers, body, payload = sample_delivery()
    world.seed_from_payload(payload)
    status, answer = await world.post_github(headers, body)
    assert status == 202
    await world.client.advance(None)
    assert await world.runtime_status(answer["instance_id"]) == "Failed"
    run = world.client.run_of(answer["instance_id"])
    assert (run.timers[-1][1] - run.timers[0][0]).total_seconds() >= 24 * 3600  # kept trying for over a day
    assert reynolds_comments(world) == []
    world.github.clear_faults()

    status, again = await world.post_github(headers, body)  # GitHub's "Redeliver" (same delivery id)
    assert (status, again["verdict"]) == (200, "duplicate")
    await world.client.advance(None)
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    assert len(reynolds_comments(world)) == 1
    status, third = await world.post_github(headers, body)
    assert third["verdict"] == "duplicate"
    assert world.client.starts == 2  # the first run and the one restart, nothing more
    assert len(reynolds_comments(world)) == 1


async def test_a_secondary_rate_limit_waits_retry_after_on_a_durable_timer(world: World) -> None:
    world.github.secondary_rate_limit(method="POST", path_regex=r"/issues/\d+/comments$", retry_after=90)
    answer = await deliver_sample(world)
    assert await world.runtime_status(answer["instance_id"]) == "Running"  # waiting, not sleeping in a worker
    await world.client.advance(None)
    run = world.client.run_of(answer["instance_id"])
    assert run.runtime_status == "Completed"
    ((created, fires),) = run.timers
    assert (fires - created).total_seconds() >= 90
    assert len(reynolds_comments(world)) == 1
