"""Typed writers against the fake GitHub through githubkit: once per proposal, marked, paced, refusals reported.

Crash-after-write is exercised at every writer two ways: GitHub stores the write and the client sees a 502
(the fake's ``fail_after_write``), and the write succeeds but the worker dies before the ledger records it
(``complete_effect`` raising once). Either way the retry writes nothing more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import githubkit
import pytest

from shared.act.proposals import Proposal, build_proposals, idempotency_key
from shared.act.writers import LATE_COMMIT_GRACE_SECONDS, Outcome, ProposalWriter, proposal_tag
from shared.ai.specialists import ProposedWrite
from shared.errors import NotFound, RetryLater
from shared.loop.ledger import EffectRecord, doc_id
from shared.loop.lineage import GuardConfig, LineageService
from shared.loop.marker import find_markers
from shared.platforms.github.pacer import GitHubPacer
from shared.store.memory import MemoryStore
from shared.work.tasks import Specialist
from tools.fakes.github import FakeGitHub
from tools.fakes.github.actions_api import add_workflow_run, complete_attempt, state
from tools.fakes.github.issue_lists_api import disable_issues
from tools.fakes.github.writes_log import record_writes

BOT = "reynolds[bot]"
KEY = "marker-key"
REPO = "octo/app"
INSTANCE = "task-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class World:
    def __init__(self, fake: FakeGitHub, clock: Clock) -> None:
        self.fake = fake
        self.clock = clock
        self.store = MemoryStore()
        self.lineage = LineageService(self.store, GuardConfig(), marker_key=KEY,
                                      clock=lambda: datetime.fromtimestamp(self.clock(), UTC))
        self.pacer = GitHubPacer(clock=self.clock, sleep=self.clock.advance)
        self.github = githubkit.GitHub(githubkit.TokenAuthStrategy("tok"), base_url=fake.base_url,
                                       auto_retry=False, http_cache=False, timeout=5)
        self.writer = ProposalWriter(self.lineage, lambda repo: self.github, marker_key=KEY, bot_login=BOT,
                                     pacer=self.pacer)
        self.writes = record_writes(fake, BOT)

    def execute(self, proposal: Proposal, approved: str | None = "", **extra: Any) -> Outcome:
        return self.writer.execute(proposal, approved_hash=proposal.hash if approved == "" else approved,
                                   instance_id=INSTANCE, chain_id="c-1", event_id="issue_comment.created:77",
                                   depth=1, **extra)


@pytest.fixture
def world() -> Iterator[World]:
    clock = Clock()
    with FakeGitHub(clock=lambda: datetime.fromtimestamp(clock(), UTC)) as fake:
        fake.add_user(BOT, type="Bot", token="tok")
        fake.add_repo(REPO)
        fake.add_issue(REPO, number=7, title="CI is red")
        add_workflow_run(fake, REPO, 42, conclusion="failure")
        yield World(fake, clock)
        fake.assert_no_unexpected()


def proposals(*extra: ProposedWrite) -> list[Proposal]:
    def w(tool: str, **arguments: Any) -> ProposedWrite:
        return ProposedWrite(tool=tool, arguments=arguments, call_id=tool, subtask_id="s1",
                             specialist=Specialist.DEVOPS)

    return build_proposals([
        w("add_labels", repo=REPO, number=7, labels=["ci", "flaky"]),
        w("create_issue", repo=REPO, title="Flaky test_login", body="It failed 3 times this week."),
        w("rerun_failed_jobs", repo=REPO, run_id=42),
        w("create_review_comment", repo=REPO, number=7, body="Re-running the failed jobs."),
        *extra,
    ], REPO)[0]


def test_approve_w1_w3_writes_exactly_those_two_once(world: World) -> None:
    w1, w2, w3, w4 = proposals()
    for proposal in (w1, w3, w1, w3):  # the second round is a redelivered approval
        assert world.execute(proposal).status == "done"
    assert [(w["kind"], w["target"]) for w in world.writes] == [("label", "octo/app#7"),
                                                                 ("rerun", "octo/app/actions/runs/42")]
    assert world.fake.labels(REPO, 7) == ["ci", "flaky"]
    assert len(state(world.fake).runs[42].attempts) == 2
    with pytest.raises(KeyError):  # w2 was never executed: there is no issue #8
        world.fake.issue(REPO, 8)


def test_texts_carry_the_signed_marker_and_the_proposal_tag(world: World) -> None:
    _, w2, _, w4 = proposals()
    issue = world.execute(w2)
    comment = world.execute(w4)
    assert issue.resource == "issue:octo/app#8"
    assert comment.resource is not None
    body = world.fake.issue(REPO, 8)["body"]
    assert body.startswith("It failed 3 times this week.")
    assert proposal_tag(issue.key) in body
    markers = find_markers(body, KEY)
    assert [(m.chain_id, m.event_id, m.depth, m.valid) for m in markers] == [("c-1", "issue_comment.created:77",
                                                                              1, True)]
    posted = world.fake.comments(REPO, 7)[0]["body"]
    assert proposal_tag(comment.key) in posted
    assert find_markers(posted, KEY)[0].valid
    # The ledger knows both as Reynolds' own effects (the loop guard's self-recognition).
    assert world.lineage.own_effect("github", "issue:octo/app#8") is not None
    assert world.lineage.own_effect("github", comment.resource) is not None


def test_the_request_bodies_hash_as_recorded(world: World) -> None:
    _, _, _, w4 = proposals()
    raw: list[bytes] = []
    world.fake.on_request.append(lambda method, target, body, login, status: raw.append(body))
    world.execute(w4)
    entry = world.writes[0]
    assert entry["method"] == "POST"
    assert entry["path"] == "/repos/octo/app/issues/7/comments"
    assert (entry["platform"], entry["kind"], entry["target"], entry["status"]) == ("github", "comment",
                                                                                     "octo/app#7", 201)
    assert entry["sha256"] == hashlib.sha256(raw[-1]).hexdigest()
    assert b"Re-running the failed jobs." in raw[-1]


@pytest.mark.parametrize(("index", "method", "path"), [
    (0, "POST", r"/issues/7/labels$"),
    (1, "POST", r"/issues$"),
    (2, "POST", r"/rerun-failed-jobs$"),
    (3, "POST", r"/issues/7/comments$"),
])
def test_github_stored_it_but_answered_502_then_the_retry_writes_nothing_more(world: World, index: int,
                                                                               method: str, path: str) -> None:
    proposal = proposals()[index]
    world.fake.fail_after_write(method, path, 502)
    with pytest.raises(RetryLater):
        world.execute(proposal, attempt=1)
    outcome = world.execute(proposal, attempt=2)
    assert outcome.status == "done"
    assert outcome.reconciled
    assert len([w for w in world.writes if w["method"] == method]) == 1
    assert world.execute(proposal, attempt=3).status == "done"
    assert len(world.writes) == 1


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_the_worker_died_after_the_write_before_the_ledger_heard_of_it(world: World, index: int) -> None:
    proposal = proposals()[index]
    real = world.lineage.complete_effect
    calls = {"n": 0}

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker died")
        return real(*args, **kwargs)

    world.lineage.complete_effect = crash_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.execute(proposal, attempt=1)
    outcome = world.execute(proposal, attempt=2)
    assert outcome.status == "done"
    assert outcome.reconciled
    assert len(world.writes) == 1


def test_a_concurrent_attempt_holding_the_claim_waits_and_writes_nothing(world: World) -> None:
    _, w2, _, _ = proposals()
    world.lineage.begin_effect(EffectRecord(key=idempotency_key(INSTANCE, w2), platform="github", kind="issue",
                                     target=REPO, chain_id="c-1", event_id="e", depth=1), 2, "run-a")
    with pytest.raises(RetryLater):
        world.execute(w2, attempt=1, run="run-a")
    assert world.writes == []


def test_a_changed_proposal_is_stale_and_nothing_is_written_or_recorded(world: World) -> None:
    w1, *_ = proposals()
    outcome = world.execute(w1, approved="0" * 8)
    assert outcome.status == "stale"
    assert "approve it again" in (outcome.reason or "")
    tampered = w1.model_copy(update={"content": {**w1.content, "labels": ["wontfix"]}})
    assert world.execute(tampered, approved=w1.hash).status == "stale"
    assert world.writes == []
    ident = doc_id("fx", idempotency_key(INSTANCE, w1))
    with pytest.raises(NotFound):
        world.store.read(ident, ident)


def test_issues_disabled_is_refused_with_githubs_reason_and_never_retried(world: World) -> None:
    _, w2, _, w4 = proposals()
    disable_issues(world.fake, REPO)
    outcome = world.execute(w2)
    assert outcome.status == "refused"
    assert outcome.http_status == 410
    assert outcome.reason == "GitHub answered 410: Issues are disabled for this repo"
    again = world.execute(w2, attempt=2)
    assert again.status == "refused"
    assert again.reason == outcome.reason
    assert world.execute(w4).http_status == 410
    assert [w["status"] for w in world.writes] == [410, 410]


def test_validation_and_missing_targets_are_refused(world: World) -> None:
    (missing,) = build_proposals([ProposedWrite(tool="add_labels", arguments={"repo": REPO, "number": 99,
                                                                               "labels": ["x"]},
                                                call_id="c", subtask_id="s9", specialist=Specialist.DEVOPS)],
                                 REPO)[0]
    outcome = world.execute(missing)
    assert outcome.status == "refused"
    assert outcome.http_status == 404
    _, w2, _, _ = proposals()
    world.fake.fail_next("POST", r"/issues$", 422, {"message": "Validation Failed", "errors": [
        {"resource": "Issue", "field": "title", "code": "custom", "message": "title is too long"}],
        "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "422"})
    refused = world.execute(w2)
    assert refused.http_status == 422
    assert refused.reason == "GitHub answered 422: Validation Failed (title is too long)"


def test_a_run_still_in_progress_is_refused(world: World) -> None:
    _, _, w3, _ = proposals()
    state(world.fake).runs[42].attempts[-1].status = "in_progress"
    outcome = world.execute(w3)
    assert outcome.status == "refused"
    assert outcome.http_status == 403
    complete_attempt(world.fake, 42, {})
    assert world.execute(w3).status == "refused"  # refused is final for this proposal: decided again, not retried


def test_rate_limits_become_a_durable_wait_and_writes_are_paced(world: World) -> None:
    w1, w2, _, w4 = proposals()
    world.fake.secondary_rate_limit("POST", r"/issues$", retry_after=30)
    with pytest.raises(RetryLater) as caught:
        world.execute(w2, attempt=1)
    assert caught.value.retry_after_seconds is not None
    assert caught.value.retry_after_seconds >= 30
    world.clock.advance(31)
    assert world.execute(w2, attempt=2).status == "done"
    start = world.clock()
    world.execute(w4)
    world.execute(w1)
    times = world.pacer._local["default"]["writes"]
    assert len(times) == 4  # every write request reserved a slot (the limited one included)
    assert all(b - a >= 1.0 for a, b in zip(times, times[1:], strict=False))
    assert world.clock() >= start


def test_graph_writes_are_refused_until_the_teams_writer_exists(world: World) -> None:
    (message,) = build_proposals([ProposedWrite(
        tool="post_channel_message", arguments={"team_id": "t1", "channel_id": "19:a@thread.tacv2", "text": "hi"},
        call_id="c", subtask_id="s2", specialist=Specialist.PLATFORM)], REPO)[0]
    outcome = world.execute(message)
    assert outcome.status == "refused"
    assert "Teams" in (outcome.reason or "")
    assert world.writes == []


@pytest.mark.parametrize(("index", "path"), [(1, r"/issues$"), (3, r"/issues/7/comments$"),
                                             (0, r"/issues/7/labels$"), (2, r"/rerun-failed-jobs$")])
def test_a_write_github_stores_late_is_waited_for_not_written_twice(world: World, index: int, path: str) -> None:
    proposal = proposals()[index]
    world.fake.commit_late("POST", path, delay_seconds=15.0, status=504)
    with pytest.raises(RetryLater):
        world.execute(proposal, attempt=1)  # 504: unknown outcome
    with pytest.raises(RetryLater) as waiting:
        world.execute(proposal, attempt=2)  # nothing there yet: look again later, do not write
    assert waiting.value.retry_after_seconds is not None
    assert waiting.value.retry_after_seconds > 60
    world.clock.advance(waiting.value.retry_after_seconds)  # GitHub committed it meanwhile (after 15 s)
    outcome = world.execute(proposal, attempt=3)
    assert outcome.status == "done"
    assert outcome.reconciled
    assert len(world.writes) == 1


def test_a_refused_write_does_not_make_its_retry_wait(world: World) -> None:
    _, w2, _, _ = proposals()
    world.fake.fail_next("POST", r"/issues$", 502)  # answered 502 without storing: unknown to Reynolds
    with pytest.raises(RetryLater):
        world.execute(w2, attempt=1)
    with pytest.raises(RetryLater):
        world.execute(w2, attempt=2)  # it cannot know nothing was stored: it waits the grace period
    world.clock.advance(LATE_COMMIT_GRACE_SECONDS)
    assert world.execute(w2, attempt=3).status == "done"
    assert [w["status"] for w in world.writes] == [502, 201]
