"""Loop guard v3, causality from what an actor could have seen (issue 19, item 1).

An event reacts to Reynolds only if one of Reynolds' effects addressed to its actor (or in a thread where no one
else was answered since) preceded the event's OWN timestamp (``EventEnvelope.occurred_at``), never the decision
time: a backlog decided in a burst after an outage gets the verdicts it would have got live, and Reynolds'
answers to someone else are never what a person reacts to.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from shared import names
from shared.admission import orchestration_input
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.loop.evidence import GroupView
from shared.loop.lineage import Decision, EffectRecord, LineageService, new_chain_id
from shared.loop.rules import GuardConfig, Verdict, repeat_key, repeats
from shared.store.memory import MemoryStore
from tools.world import SimClock

REPO = "octo/app"
KEY = "causality-test-key"


def comment(login: str, text: str, at: datetime, *, number: int = 7) -> EventEnvelope:
    """An ``issue_comment.created`` envelope stamped by GitHub at ``at`` (``comment.created_at``)."""
    return EventEnvelope(
        id=f"github:{uuid.uuid4()}", source=f"https://github.com/{REPO}", type="com.github.issue_comment.created",
        time=at, occurred_at=at, platform=Platform.GITHUB, event="issue_comment", action="created",
        actor=Actor(login=login, id=str(abs(hash(login)) % 10**8), kind=ActorKind.HUMAN, account_type="User"),
        target=Target(platform=Platform.GITHUB, key=f"{REPO}#{number}", repo=REPO, number=number),
        resource_id=f"comment:{uuid.uuid4().int % 10**9}", text=text)


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


def service(clock: SimClock) -> LineageService:
    return LineageService(MemoryStore(clock=clock), GuardConfig(), marker_key=KEY, clock=clock)


def answer(lineage: LineageService, decision: Decision, text: str, *, number: int = 7) -> None:
    """Reynolds answers a decided event on its thread (intent, write, completion: filed as evidence)."""
    record, fresh = lineage.begin_effect(EffectRecord(
        key=f"{decision.event_id}:report", platform="github", kind="comment", target=f"{REPO}#{number}",
        chain_id=decision.chain_id or "", event_id=decision.event_id, depth=decision.depth + 1))
    assert fresh
    lineage.complete_effect(record, f"comment:{uuid.uuid4().int % 10**9}", text)


SAME_HERE = [("shopper-1", "Same here since the outage began"), ("shopper-2", "Checkout fails for me as well"),
             ("shopper-3", "Seeing a blank page on payment"), ("shopper-4", "Our store is down too, any ETA?"),
             ("shopper-5", "Same problem in the EU region"), ("shopper-6", "Payments time out for us too")]


def test_a_backlog_decided_in_a_burst_gets_the_verdicts_it_would_have_got_live(clock: SimClock) -> None:
    def play(backlog: bool) -> list[tuple[str, str, int]]:
        clock.set(clock() + timedelta(days=3))  # each replay far from the other's evidence
        lineage = service(clock)
        base = clock()
        opening = comment("alice", "Checkout is down for everyone", base)
        first = lineage.decide(opening, routed=True)
        clock.advance(2)
        answer(lineage, first, "Reynolds triaged this as an outage (signals: down)")
        events = [comment(login, text, base + timedelta(seconds=60 * (n + 1)))
                  for n, (login, text) in enumerate(SAME_HERE)]
        verdicts = []
        for ev in events:
            if backlog:
                clock.set(base + timedelta(seconds=1860))  # the store came back: all decided in one burst
                clock.advance(0.2)
            else:
                clock.set(ev.when)
            decision = lineage.decide(ev, routed=True)
            verdicts.append((decision.verdict.value, decision.rule, decision.depth))
            clock.advance(2)
            answer(lineage, decision, f"Reynolds noted the report from {ev.actor.login}")
        return verdicts

    live, backlog = play(backlog=False), play(backlog=True)
    assert backlog == live
    assert live == [("accepted", "human", 0)] * len(SAME_HERE)


def test_many_people_in_one_thread_seconds_after_answers_to_others_are_people(clock: SimClock) -> None:
    lineage = service(clock)
    first = lineage.decide(comment("alice", "Search returns nothing since this morning", clock()), routed=True)
    answer(lineage, first, "Reynolds triaged this as a bug (signals: nothing returned)")
    for n in range(12):
        clock.advance(3)
        person = comment(f"fan-{n}", "+1, same here", clock())
        decision = lineage.decide(person, routed=True)
        assert (decision.verdict, decision.rule, decision.chain_id) == (Verdict.ACCEPTED, "human",
                                                                        new_chain_id(person.id))
        clock.advance(1)
        answer(lineage, decision, f"Reynolds counted report {n + 2}")


def test_two_people_chatting_around_reynolds_answers_are_a_conversation(clock: SimClock) -> None:
    lineage = service(clock)
    lines = ["Did the release go out?", "Yes, at nine.", "Any errors?", "I saw one error in the logs.", "Which one?",
             "It was the old worker, ignore it.", "OK, thanks.", "Lunch at noon?", "Sure.", "Great, see you."]
    for n, line in enumerate(lines):
        decision = lineage.decide(comment("ada" if n % 2 == 0 else "bo", line, clock()), routed=True)
        assert (decision.verdict, decision.rule, decision.depth) == (Verdict.ACCEPTED, "human", 0), (n, decision)
        clock.advance(1)
        answer(lineage, decision, f"Reynolds answered message {n}")
        clock.advance(9)


def test_machine_pace_is_measured_from_the_events_own_timestamp_not_the_decision(clock: SimClock) -> None:
    """A user account that answered Reynolds' answer to it 3 s after it (by GitHub's stamp) acts at a machine's
    pace, even when that comment is decided minutes later from a backlog."""
    lineage = service(clock)
    first = lineage.decide(comment("sync-user", "Ticket 41 opened by the sync", clock()), routed=True)
    clock.advance(1)
    answer(lineage, first, "Reynolds triaged ticket 41 as a task")
    reacted_at = clock() + timedelta(seconds=3)
    clock.advance(600)  # decided ten minutes later (an outage backlog)
    decision = lineage.decide(comment("sync-user", "Ticket 42 opened by the sync", reacted_at), routed=True)
    assert decision.chain_id == first.chain_id
    assert any("machine's pace" in r for r in decision.reasons)


def test_an_effect_filed_after_the_event_happened_was_not_seen_by_it(clock: SimClock) -> None:
    """An event stamped before Reynolds' answer to its actor was filed is not a reaction to that answer (a person's
    script opening issues half a second apart)."""
    lineage = service(clock)
    opened = clock()
    first = lineage.decide(comment("dana", "Task 1 of the migration checklist", opened, number=1), routed=True)
    clock.advance(1)
    answer(lineage, first, "Reynolds filed task 1 under the migration", number=1)
    second = comment("dana", "Task 2 of the migration checklist", opened, number=2)
    decision = lineage.decide(second, routed=True)
    assert (decision.verdict, decision.rule, decision.chain_id) == (Verdict.ACCEPTED, "human",
                                                                    new_chain_id(second.id))


def test_a_template_with_slots_filled_is_a_repeat_and_a_persons_sentences_are_not() -> None:
    assert repeats(repeat_key("Deploy of payments-api to staging: succeeded"),
                   repeat_key("Deploy of web to production: failed"))
    assert repeats(repeat_key("Deploy of search to canary: rolled back"),
                   repeat_key("Deploy of billing to staging: pending"))
    assert not repeats(repeat_key("The staging cluster still has 3.9."),
                       repeat_key("Should we upgrade staging first?"))
    assert not repeats(repeat_key("What happens to running jobs during the upgrade?"),
                       repeat_key("Can we pause the scheduler meanwhile?"))


def test_a_short_phrase_counts_as_a_repeat_only_as_a_reflex_to_reynolds() -> None:
    assert repeats(repeat_key("+1"), repeat_key("+1"), reflex=True)
    assert not repeats(repeat_key("+1"), repeat_key("+1"))  # "any update?" half an hour later: a follow-up
    assert not repeats(repeat_key("Any update?"), repeat_key("Any update?"))


def test_a_user_account_sending_plus_one_to_each_answer_is_held_at_its_third(clock: SimClock) -> None:
    lineage = service(clock)
    decision = lineage.decide(comment("alice", "The build fails after the upgrade", clock()), routed=True)
    verdicts = []
    for _ in range(4):
        clock.advance(1)
        answer(lineage, decision, f"Reynolds looked again at {clock().isoformat()}")
        clock.advance(50)  # slower than any pace rule
        decision = lineage.decide(comment("plus-user", "+1", clock()), routed=True)
        verdicts.append((decision.verdict.value, decision.rule))
    assert verdicts[:3] == [("accepted", "human"), ("accepted", "human"), ("loop", "repeat")]


def test_everything_after_the_decision_uses_the_judged_kind(clock: SimClock) -> None:
    """Breakers and the report activity read ``actor_kind`` from the orchestration input: a user account judged
    an automation by its behaviour is a ``bot`` there (issue 19: report_activity passed the declared kind)."""
    lineage = service(clock)
    first = lineage.decide(comment("sync-user", "Ticket 41 opened by the sync", clock()), routed=True)
    clock.advance(1)
    answer(lineage, first, "Reynolds triaged ticket 41 as a task")
    clock.advance(3)
    once = lineage.decide(comment("sync-user", "Ticket 42 opened by the sync", clock()), routed=True)
    assert not once.judged_automated  # one quick answer alone: a person may be that fast once
    clock.advance(1)
    answer(lineage, once, "Reynolds triaged ticket 42 as a task")
    clock.advance(3)
    fast = comment("sync-user", "Ticket 43 opened by the sync", clock())
    decision = lineage.decide(fast, routed=True)
    assert decision.judged_automated
    assert orchestration_input(names.TRIAGE, fast, decision)["actor_kind"] == "bot"
    person = comment("alice", "The importer fails on large files", clock())
    assert orchestration_input(names.TRIAGE, person, lineage.decide(person, routed=True))["actor_kind"] == "human"
    assert lineage.decide(fast, routed=True).judged_automated  # a redelivery keeps the judgement


def test_a_relay_judgement_does_not_stick_to_a_person_who_then_discusses_it(clock: SimClock) -> None:
    lineage = service(clock)
    said = "Reynolds triaged this as a bug in the importer (signals: crash, large file, timeout)"
    first = lineage.decide(comment("alice", "The importer crashes on large files", clock()), routed=True)
    clock.advance(1)
    answer(lineage, first, said)
    clock.advance(120)
    shared = lineage.decide(comment("bob", said, clock()), routed=True)  # bob re-posts the answer to alice
    assert shared.judged_automated
    clock.advance(1)
    answer(lineage, shared, "Reynolds noted the same triage for bob")
    clock.advance(240)
    own = lineage.decide(comment("bob", "I think the timeout is the real problem, we saw it last year", clock()),
                         routed=True)
    assert (own.verdict, own.rule, own.depth, own.judged_automated) == (Verdict.ACCEPTED, "human", 0, False)


def test_an_app_bot_answering_a_day_and_a_second_later_meets_its_own_history(clock: SimClock) -> None:
    """No hard one-day edge: a declared automation's record is kept for a week, so each answer a day and a
    second later continues its chain (and the chain's rules stop it) instead of starting afresh."""
    lineage = service(clock)
    first = lineage.decide(comment("alice", "The nightly build fails", clock()), routed=True)
    clock.advance(1)
    answer(lineage, first, "Reynolds triaged the nightly build failure as a bug")
    verdicts = []
    for day in range(4):
        clock.advance(86401)
        bot = comment("daily[bot]", f"Daily digest {day}: {3 + day} open items", clock()).model_copy(
            update={"actor": Actor(login="daily[bot]", id="99", kind=ActorKind.BOT, account_type="Bot")})
        decision = lineage.decide(bot, routed=True)
        verdicts.append(decision.verdict)
        if decision.verdict is Verdict.ACCEPTED:
            clock.advance(1)
            answer(lineage, decision, f"Reynolds read digest {day}")
    assert Verdict.LOOP in verdicts[:3]


def test_the_latest_effect_is_the_latest_one_the_event_could_have_seen() -> None:
    doc = {"last": [{"c": "c-early", "e": "ev-1", "d": 1, "t": 100.0, "k": "octo/app"},
                    {"c": "c-late", "e": "ev-2", "d": 1, "t": 110.0, "k": "octo/part-1"}]}
    seen = GroupView(doc, 200.0).as_of(105.0).latest(3600, "octo/part-2")
    assert seen is not None
    assert seen.chain_id == "c-early"
    live = GroupView(doc, 200.0).latest(3600, "octo/part-2")
    assert live is not None
    assert live.chain_id == "c-late"
