"""Occurrences and the improvement rule: one issue per signature, exactly once, reopened, flaky, muted, measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.learning import improvements as imp
from shared.learning import occurrences as occ
from shared.learning.signatures import signature
from shared.loop.envelope import ActorKind
from shared.loop.lineage import EffectRecord, LineageService
from shared.loop.rules import GuardConfig, Verdict
from shared.store.memory import MemoryStore

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def failing_run(n: int, test: str = "test_health") -> tuple[str, str]:
    """The log of run ``n`` of one pytest failure (other ids, times, temp dirs each run) and its run id."""
    run_id = str(7_000_000_000 + n * 7919)
    log = (f"2026-12-0{1 + n // 3}T0{n}:14:09.00{n}Z FAILED tests/test_api.py::{test} - AssertionError: took "
           f"{n}.2{n}s in /tmp/tmp{n}x{n}y/app.log (job https://github.com/octo/app/actions/runs/{run_id}/job/{n})\n")
    return log, run_id


@dataclass
class FakeIssues:
    """What the improvements step wrote to GitHub (a stand-in recording writes; the ledger decides)."""

    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)


def current(store: MemoryStore, key: str) -> dict[str, Any]:
    doc = occ.read(store, key)
    assert doc is not None
    return doc


class Crash(Exception):
    pass


def advance(store: MemoryStore, lineage: LineageService, gh: FakeIssues, key: str, now: datetime,
            *, crash_after_write: bool = False, issue_labels: frozenset[str] = frozenset(),
            settings: imp.ImprovementSettings | None = None) -> imp.Verdict:
    """The improvements step as an activity would run it: decide, then each step through the effect ledger."""
    doc = occ.read(store, key)
    assert doc is not None
    verdict = imp.decide(doc, settings or imp.ImprovementSettings(), now=now, issue_labels=issue_labels)
    for step in verdict.steps:
        record = EffectRecord(key=step.key, platform="github", kind=step.action, target=doc["repo"],
                              chain_id="improvements", event_id=key, depth=0)
        existing, new = lineage.begin_effect(record)
        number: int = int(doc.get("issue_number") or 0)
        comment_id: int = int(doc.get("comment_id") or 0)
        if new or existing.state != "done":
            if step.action == "open":
                number = len(gh.issues) + 1
                gh.issues[number] = {"state": "open", "labels": set()}
            elif step.action == "comment":
                comment_id = comment_id or 1000 + int(number)
                gh.comments[comment_id] = imp.render_comment(doc)
            elif step.action == "reopen":
                gh.issues[number]["state"] = "open"
            elif step.action == "label_flaky":
                gh.issues[number]["labels"].add(imp.FLAKY_LABEL)
            gh.writes.append(step.action)
            if crash_after_write:
                raise Crash(step.key)
            lineage.complete_effect(record, f"{step.action}:{number}", step.reason)
        elif step.action == "comment":
            gh.comments[comment_id] = imp.render_comment(doc)  # an edit in place: idempotent by nature
        def change(d: dict[str, Any], s: imp.Step = step, n: int = number, c: int = comment_id) -> dict[str, Any]:
            return imp.applied(d, s, now=now, issue_number=n or None, comment_id=c or None)

        doc = occ.update_state(store, key, change) or doc
    return verdict


@pytest.fixture
def world() -> tuple[MemoryStore, LineageService, FakeIssues]:
    store = MemoryStore(clock=lambda: T0)
    return store, LineageService(store, GuardConfig(), marker_key=None, clock=lambda: T0), FakeIssues()


def test_five_runs_over_two_days_make_one_issue_and_one_comment_a_sixth_after_close_reopens(world: Any) -> None:
    store, lineage, gh = world
    keys = set()
    for n in range(5):
        log, run_id = failing_run(n)
        sig = signature("workflow-run", log, where="ci / test")
        keys.add(sig.key)
        at = T0 + timedelta(hours=10 * n)  # 0 … 40 h: two days
        occ.record_failure(store, sig, failure_id=f"run:{run_id}:1", at=at, repo="octo/app",
                           link=f"https://github.com/octo/app/actions/runs/{run_id}")
        occ.record_failure(store, sig, failure_id=f"run:{run_id}:1", at=at, repo="octo/app")  # redelivered
        advance(store, lineage, gh, sig.key, at)
    assert len(keys) == 1
    key = keys.pop()
    assert len(gh.issues) == 1
    assert len(gh.comments) == 1
    assert "**Occurrences: 5**" in next(iter(gh.comments.values()))
    assert gh.writes == ["open", "comment"]  # filed and commented once at the 3rd; the 4th and 5th edit it
    doc = current(store, key)
    assert doc["count"] == 5
    assert doc["state"] == "open"
    assert doc["issue_number"] == 1

    closed_at = T0 + timedelta(days=3)
    occ.update_state(store, key, lambda d: imp.closed(d, at=closed_at, as_="completed"))
    gh.issues[1]["state"] = "closed"
    assert imp.effectiveness(current(store, key), now=closed_at + timedelta(days=1))["verdict"] == "watching"
    log, run_id = failing_run(6)
    sixth = closed_at + timedelta(days=2)
    occ.record_failure(store, signature("workflow-run", log, where="ci / test"), failure_id=f"run:{run_id}:1",
                       at=sixth, repo="octo/app")
    advance(store, lineage, gh, key, sixth)
    assert gh.issues[1]["state"] == "open"
    assert len(gh.issues) == 1
    assert gh.writes == ["open", "comment", "reopen"]  # the comment is edited, not posted again
    assert "**Occurrences: 6**" in gh.comments[1001]
    report = imp.effectiveness({**current(store, key), "closed_at": closed_at.isoformat()},
                               now=sixth, days=14)
    assert report["verdict"] == "recurred"
    assert report["recurrences"] == 1


def test_a_different_failure_gets_its_own_issue(world: Any) -> None:
    store, lineage, gh = world
    for test in ("test_health", "test_ready"):
        for n in range(3):
            log, run_id = failing_run(n, test)
            sig = signature("workflow-run", log)
            occ.record_failure(store, sig, failure_id=f"{test}:{run_id}", at=T0 + timedelta(hours=n),
                               repo="octo/app")
            advance(store, lineage, gh, sig.key, T0 + timedelta(hours=n))
    assert len(gh.issues) == 2


def test_a_crash_after_the_write_and_a_retry_write_nothing_twice(world: Any) -> None:
    store, lineage, gh = world
    sig = signature("subtask", "Activity function 'run_specialist' failed: ModelError: invalid plan")
    for n in range(3):
        occ.record_failure(store, sig, failure_id=f"orch-{n}", at=T0, repo="octo/tracking")
    with pytest.raises(Crash):
        advance(store, lineage, gh, sig.key, T0, crash_after_write=True)
    # The retry finds the intent in the ledger (state "intent": the earlier attempt may have written): this
    # stand-in reconciles by finding the issue it wrote; what matters is the key stayed the same.
    assert lineage.begin_effect(EffectRecord(key=f"improvement:octo/tracking:{sig.key}:issue", platform="github",
                                             kind="open", target="octo/tracking", chain_id="improvements",
                                             event_id=sig.key, depth=0))[1] is False
    assert gh.writes == ["open"]


def test_below_threshold_or_outside_the_window_files_nothing(world: Any) -> None:
    store, lineage, gh = world
    sig = signature("subtask", "Activity function 'post_report' failed: RequestFailed: 502")
    for n in range(3):
        occ.record_failure(store, sig, failure_id=f"f{n}", at=T0 + timedelta(days=4 * n), repo="octo/app")
    verdict = advance(store, lineage, gh, sig.key, T0 + timedelta(days=8))
    assert verdict.steps == ()
    assert "2 of 3 occurrences within 7 days" in verdict.reason
    strict = imp.ImprovementSettings.from_policy({"threshold": 2, "window_days": 10})
    assert [s.action for s in advance(store, lineage, gh, sig.key, T0 + timedelta(days=8), settings=strict).steps] \
        == ["open", "comment"]


def test_flaky_muted_off_and_not_planned() -> None:
    doc = {"signature": "subtask:abc", "repo": "octo/app", "state": "open", "count": 4, "rendered_count": 4,
           "times": [], "passed_on_retry": 1}
    now = T0
    assert [s.action for s in imp.decide(doc, imp.ImprovementSettings(), now=now).steps] == ["label_flaky"]
    assert imp.decide(doc, imp.ImprovementSettings(), now=now, issue_labels=frozenset({imp.MUTE_LABEL})).steps == ()
    assert imp.decide(doc, imp.ImprovementSettings(enabled=False), now=now).reason.startswith("off by policy")
    assert imp.decide(doc, imp.ImprovementSettings(), now=now,
                      repo_labels=frozenset({imp.OFF_LABEL})).reason.startswith("off")
    wont_fix = {**imp.closed(doc, at=now, as_="not_planned"), "since_close": 3}
    assert imp.decide(wont_fix, imp.ImprovementSettings(), now=now).steps == ()
    fixed = imp.closed({**doc, "passed_on_retry": 0}, at=now, as_="completed")
    later = now + timedelta(days=15)
    assert imp.effectiveness(fixed, now=later)["verdict"] == "fixed"
    assert [s.action for s in imp.decide(fixed, imp.ImprovementSettings(), now=later).steps] == \
        ["report_effectiveness"]


def test_policy_values_are_validated() -> None:
    assert imp.ImprovementSettings.from_policy(None) == imp.ImprovementSettings(True, 3, 7, 14)
    with pytest.raises(ValueError, match="threshold"):
        imp.ImprovementSettings.from_policy({"threshold": 0})
    with pytest.raises(ValueError, match="unknown key"):
        imp.ImprovementSettings.from_policy({"thresold": 3})
    with pytest.raises(ValueError, match="enabled"):
        imp.ImprovementSettings.from_policy({"enabled": "yes"})


def test_an_improvement_issue_never_starts_work() -> None:
    """Reynolds' improvement issue (and its comment, reopen, labels) come back as events that start nothing."""
    from shared.loop.rules import Evidence, judge
    from shared.platforms.github.events import Delivery, to_envelope
    from shared.work.routing import ROUTES, route

    bot = "reynolds[bot]"
    issue = {"id": 99, "number": 12, "title": "[workflow-run] FAILED …", "body": "…",
             "user": {"login": bot, "type": "Bot"}, "performed_via_github_app": {"id": 4242}}
    payload = {"action": "opened", "issue": issue, "sender": {"login": bot, "type": "Bot"},
               "repository": {"full_name": "octo/app", "name": "app", "owner": {"login": "octo"}},
               "installation": {"id": 1}}
    for name, action in (("issues", "opened"), ("issues", "reopened"), ("issues", "labeled"),
                         ("issue_comment", "created")):
        body = {**payload, "action": action}
        if name == "issue_comment":
            body["comment"] = {"id": 5, "body": "**Occurrences: 5**", "user": {"login": bot, "type": "Bot"}}
        event = to_envelope(Delivery(event=name, delivery_id=f"d-{name}-{action}", payload=body),
                            received_at=T0, bot_login=bot, bot_app_id="4242")
        assert event.actor.kind is ActorKind.SELF
        for profile in ("default", "reply-all"):
            assert route(event, profile) is None
        assert judge(event, Evidence("c", None, 0, "new"), None, GuardConfig()).verdict is Verdict.SELF
    assert all(k[1] not in ("issues.reopened", "issues.labeled", "issues.closed") for k in ROUTES)
