"""The pure decision of what runs, and the approval deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.act.approvals import BoundApproval
from shared.act.deadlines import MAX_TIMER, expires_at, is_expired, next_deadline, reminder_at, timer_legs
from shared.act.decide import decide, settled, to_execute
from shared.act.policy import ApprovalTimes, Policy, parse_policy
from shared.act.proposals import Proposal, build_proposals, idempotency_key
from shared.ai.specialists import ProposedWrite
from shared.work.tasks import Specialist

REPO = "octo/app"
ISSUE = "octo/app#7"


def proposals() -> list[Proposal]:
    writes = [
        ProposedWrite(tool="add_labels", arguments={"repo": REPO, "number": 7, "labels": ["ci"]}, call_id="a",
                      subtask_id="s1", specialist=Specialist.DEVOPS),
        ProposedWrite(tool="create_issue", arguments={"repo": REPO, "title": "CI red", "body": "why"}, call_id="b",
                      subtask_id="s1", specialist=Specialist.DEVOPS),
        ProposedWrite(tool="rerun_failed_jobs", arguments={"repo": REPO, "run_id": 42}, call_id="c",
                      subtask_id="s1", specialist=Specialist.DEVOPS),
    ]
    return build_proposals(writes, REPO)[0]


def approval(ident: str, digest: str, decision: str = "approve", actor: str = "mona",
             association: str | None = "MEMBER", channel: str = "github") -> BoundApproval:
    return BoundApproval(decision=decision, proposal_id=ident, hash=digest, actor=actor,
                         association=association, channel=channel)


def actions(verdicts: list) -> dict[str, str]:
    return {v.proposal_id: v.action for v in verdicts}


def test_defaults_run_only_labels_on_the_tasks_own_issue() -> None:
    verdicts = decide(proposals(), Policy(), [], {}, instance_id="i", task_issue=ISSUE)
    assert actions(verdicts) == {"w1": "execute", "w2": "wait", "w3": "wait"}
    elsewhere = decide(proposals(), Policy(), [], {}, instance_id="i", task_issue="octo/app#8")
    assert actions(elsewhere)["w1"] == "wait"


def test_approve_w1_w3_reject_w2_executes_exactly_those_two() -> None:
    w1, w2, w3 = proposals()
    policy = Policy(file=parse_policy("tools:\n  add_labels: approve\n", "x"), source="x")
    decisions = [approval("w1", w1.hash), approval("w3", w3.short_hash), approval("w2", w2.hash, "reject")]
    verdicts = decide([w1, w2, w3], policy, decisions, {}, instance_id="i", task_issue=ISSUE)
    assert actions(verdicts) == {"w1": "execute", "w2": "rejected", "w3": "execute"}
    assert to_execute(verdicts) == ["w1", "w3"]
    assert settled(verdicts)
    assert verdicts[0].by == ("mona",)
    assert verdicts[0].key == idempotency_key("i", w1)


def test_a_changed_proposal_is_stale_and_asks_again() -> None:
    w1, w2, w3 = proposals()
    changed = w2.model_copy(update={"hash": "f" * 64})
    verdicts = decide([changed], Policy(), [approval("w2", w2.hash)], {}, instance_id="i", task_issue=ISSUE)
    assert actions(verdicts) == {"w2": "stale"}
    assert not settled(verdicts)


def test_approvals_from_people_without_the_association_change_nothing() -> None:
    w1, w2, w3 = proposals()
    decisions = [approval(p.id, p.hash, actor="bot", association=a) for p in (w2, w3)
                 for a in ("NONE", "CONTRIBUTOR", None)] + [approval("w2", w2.hash, channel="teams")]
    verdicts = decide([w2, w3], Policy(), decisions, {}, instance_id="i", task_issue=ISSUE)
    assert actions(verdicts) == {"w2": "wait", "w3": "wait"}


def test_the_ledger_wins_and_reject_wins_over_approve() -> None:
    w1, w2, w3 = proposals()
    ledger = {idempotency_key("i", w1): "done", idempotency_key("i", w3): "suppressed"}
    decisions = [approval("w2", w2.hash), approval("w2", w2.hash, "reject", actor="hubot", association="OWNER")]
    verdicts = decide([w1, w2, w3], Policy(), decisions, ledger, instance_id="i", task_issue=ISSUE)
    assert actions(verdicts) == {"w1": "done", "w2": "rejected", "w3": "refused"}
    assert verdicts[1].by == ("hubot",)


def test_never_beats_approval_and_a_bad_file_makes_nothing_auto() -> None:
    w1, w2, w3 = proposals()
    never = Policy(file=parse_policy("tools:\n  rerun_failed_jobs: never\n  create_issue: auto\n", "x"), source="x")
    verdicts = decide([w1, w2, w3], never, [approval("w3", w3.hash)], {}, instance_id="i", task_issue=ISSUE)
    assert actions(verdicts) == {"w1": "execute", "w2": "execute", "w3": "never"}
    broken = Policy(source="x", error="bad")
    assert actions(decide([w1], broken, [], {}, instance_id="i", task_issue=ISSUE)) == {"w1": "wait"}


def test_expired_proposals_are_not_executed() -> None:
    w1, w2, w3 = proposals()
    verdicts = decide([w2], Policy(), [], {}, instance_id="i", task_issue=ISSUE, expired=["w2"])
    assert actions(verdicts) == {"w2": "expired"}
    assert settled(verdicts)


def test_deadlines_default_to_a_reminder_after_a_day_and_expiry_after_three() -> None:
    shown = datetime(2026, 12, 1, 9, tzinfo=UTC)
    times = ApprovalTimes()
    assert reminder_at(shown, times) == shown + timedelta(hours=24)
    assert expires_at(shown, times) == shown + timedelta(hours=72)
    assert next_deadline(shown, shown, times, reminded=False) == ("remind", shown + timedelta(hours=24))
    assert next_deadline(shown, shown, times, reminded=True) == ("expire", shown + timedelta(hours=72))
    short = ApprovalTimes(remind_after_hours=10, expire_after_hours=5)
    assert next_deadline(shown, shown, short, reminded=False)[0] == "expire"
    assert not is_expired(shown + timedelta(hours=71), shown, times)
    assert is_expired(shown + timedelta(hours=72), shown, times)


def test_long_waits_are_chains_of_timers_of_at_most_six_days() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    legs = timer_legs(now, now + timedelta(days=30))
    assert legs[-1] == now + timedelta(days=30)
    assert len(legs) == 5
    assert all(b - a <= MAX_TIMER for a, b in zip([now, *legs], legs, strict=False))
    assert timer_legs(now, now) == []


def test_the_engine_can_decide_on_small_references_alone() -> None:
    from shared.act.book import ProposalRef

    full = proposals()
    refs = [ProposalRef.of(p) for p in full]
    decisions = [approval("w3", full[2].hash)]
    by_proposal = decide(full, Policy(), decisions, {}, instance_id="i", task_issue=ISSUE)
    by_ref = decide(refs, Policy(), decisions, {}, instance_id="i", task_issue=ISSUE)
    assert by_ref == by_proposal
    assert actions(by_ref) == {"w1": "execute", "w2": "wait", "w3": "execute"}
