"""Loop guard v2: scopes, per-group evidence, behaviour over declaration, exchange rules (``MemoryStore``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.loop.evidence import MAX_TARGETS, evidence_id
from shared.loop.lineage import EffectRecord, LineageService, new_chain_id
from shared.loop.rules import GuardConfig, Verdict, repeat_key, repeats
from shared.loop.scopes import ScopeMap, parse_links
from shared.store.memory import MemoryStore
from tools.world import SimClock

KEY = "scopes-test-key"
CONFIG = GuardConfig()


def gh(text: str, *, repo: str = "octo/app", number: int = 7, login: str = "alice",
       kind: ActorKind = ActorKind.HUMAN) -> EventEnvelope:
    return EventEnvelope(
        id=f"github:{uuid.uuid4()}", source=f"https://github.com/{repo}", type="com.github.issue_comment.created",
        time=datetime(2026, 1, 1, tzinfo=UTC), platform=Platform.GITHUB, event="issue_comment", action="created",
        actor=Actor(login=login, kind=kind, account_type="Bot" if kind is ActorKind.BOT else "User"),
        target=Target(platform=Platform.GITHUB, key=f"{repo}#{number}", repo=repo, number=number),
        resource_id=f"comment:{uuid.uuid4().int % 10**9}", text=text)


def servicebus(text: str, *, claimed: ActorKind = ActorKind.HUMAN, login: str = "ops-lead") -> EventEnvelope:
    return EventEnvelope(
        id=f"servicebus:{uuid.uuid4()}", source="/ops", type="com.contoso.task", time=datetime(2026, 1, 1, tzinfo=UTC),
        platform=Platform.SERVICEBUS, event="com.contoso.task", actor=Actor(login=login, kind=claimed), text=text)


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def store(clock: SimClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def service(store: MemoryStore, clock: SimClock, links: str = "", config: GuardConfig = CONFIG) -> LineageService:
    return LineageService(store, config, marker_key=KEY, clock=clock, scopes=ScopeMap(links=parse_links(links)))


def answer(lineage: LineageService, decision_event: EventEnvelope, text: str, *, platform: str = "github",
           target: str | None = None) -> EffectRecord:
    """Reynolds decides ``decision_event`` and answers it with ``text`` (the effect completes)."""
    decision = lineage.decide(decision_event, routed=True)
    assert decision.verdict is Verdict.ACCEPTED, decision
    where = target or (decision_event.target.key if decision_event.target else "reynolds-out")
    record, fresh = lineage.begin_effect(EffectRecord(
        key=f"{decision.event_id}:report", platform=platform, kind="comment", target=where,
        chain_id=decision.chain_id or "", event_id=decision.event_id, depth=decision.depth + 1))
    assert fresh
    return lineage.complete_effect(record, f"comment:{uuid.uuid4().int % 10**9}", text)


# ------------------------------------------------------------------------------------------------- scopes
def test_scopes_map_targets_to_organisation_tenant_namespace_and_linked_groups() -> None:
    scopes = ScopeMap(links=parse_links("github:Octo=teams:t-1; github:acme=servicebus:ns"), teams_tenant="t-1",
                      servicebus_namespace="ns")
    repo = scopes.of_target("github", "Octo/app#7")
    assert (repo.container, repo.org, repo.group) == ("Octo/app", "github:octo", "link:github:octo+teams:t-1")
    assert scopes.of_target("teams", "teams:team-1/general").group == "link:github:octo+teams:t-1"
    assert scopes.of_target("servicebus", "reynolds-out").group == "link:github:acme+servicebus:ns"
    assert scopes.of_target("github", "other/app#1").group == "github:other"
    foreign = EventEnvelope(id="teams:1", source="teams/t-2", type="t", time=datetime(2026, 1, 1, tzinfo=UTC),
                            platform=Platform.TEAMS, event="teams_message", actor=Actor(login="ada"),
                            target=Target(platform=Platform.TEAMS, key="teams:team-1/general"),
                            data={"tenant_id": "t-2"})
    assert scopes.of_event(foreign).group == "teams:t-2"  # type: ignore[union-attr]


def test_evidence_never_crosses_an_organisation_unless_linked(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    answer(lineage, gh("The importer fails"), "Reynolds triaged this as a bug in the importer")
    clock.advance(5)
    elsewhere = lineage.decide(gh("Ticket opened", repo="acme/app", number=1, login="hop[bot]",
                                  kind=ActorKind.BOT), routed=True)
    assert (elsewhere.depth, elsewhere.parent_id) == (1, None)  # a chain of its own: octo is not acme

    linked = service(MemoryStore(clock=clock), clock, links="github:octo=github:acme")
    first = answer(linked, gh("The importer fails"), "Reynolds triaged this as a bug in the importer")
    clock.advance(5)
    hop = linked.decide(gh("Ticket opened", repo="acme/app", number=1, login="hop[bot]", kind=ActorKind.BOT),
                        routed=True)
    assert (hop.chain_id, hop.depth) == (first.chain_id, 2)


def test_the_window_does_not_shrink_a_copying_bot_after_1000_unrelated_effects(store: MemoryStore,
                                                                               clock: SimClock) -> None:
    lineage = service(store, clock)
    first = answer(lineage, gh("The importer fails on large files"),
                   "Reynolds triaged this as a bug: the importer times out on files above 2 GB")
    for n in range(1000):  # people in other repositories, of this organisation and of others, answered
        clock.advance(1)
        repo = f"octo/bg-{n}" if n % 2 else f"org-{n}/app"
        answer(lineage, gh(f"Question {n} about the exporter", repo=repo, number=1, login=f"p{n}"),
               f"Reynolds answered question {n} about the exporter settings")
    size = len(json.dumps(store.read(evidence_id("github:octo"), evidence_id("github:octo"))))
    assert size < 200_000  # bounded: per organisation, by count and age
    clock.advance(30)
    before = store.requests
    copy = lineage.decide(gh("Copied: reynolds triaged this as a bug: the importer times out on files above 2 gb",
                             login="copycat[bot]", kind=ActorKind.BOT), routed=True)
    assert store.requests - before <= 4
    assert (copy.chain_id, copy.depth) == (first.chain_id, 2)


def test_target_evidence_is_bounded_per_organisation(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    for n in range(MAX_TARGETS + 50):
        answer(lineage, gh(f"Question {n}", repo=f"octo/r{n}", number=1, login=f"p{n}"), f"Answer {n}")
    doc = store.read(evidence_id("github:octo"), evidence_id("github:octo"))
    assert len(doc["targets"]) == MAX_TARGETS
    assert "github:octo/r0#1" not in doc["targets"]


# ------------------------------------------------------------------------------- behaviour, not declaration
def test_a_servicebus_producer_claiming_human_is_an_automation(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    task = servicebus("Please check the tenant import for errors")
    done = answer(lineage, task, "Reynolds checked the tenant import: three rows failed validation",
                  platform="servicebus", target="reynolds-out")
    clock.advance(600)
    republished = lineage.decide(servicebus("Reynolds checked the tenant import: three rows failed validation",
                                            login="republisher"), routed=True)
    assert (republished.chain_id, republished.depth) == (done.chain_id, 3)


def test_unprompted_servicebus_tasks_from_one_person_never_join_a_chain(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    depths = []
    for n in range(30):
        clock.advance(2)
        done = answer(lineage, servicebus(f"Task {n}: check tenant {n}"), f"Reynolds checked tenant {n}: all fine",
                      platform="servicebus", target="reynolds-out")
        depths.append(done.depth)
    assert set(depths) == {2}  # each task its own chain at depth 1, each answered


def test_a_user_account_answering_at_a_machines_pace_continues_the_chain(store: MemoryStore,
                                                                         clock: SimClock) -> None:
    lineage = service(store, clock)
    answer(lineage, gh("Deploy is broken", login="deploy-user"), "Reynolds triaged the deploy failure as a bug")
    clock.advance(5)
    fast = lineage.decide(gh("Deploy blocked, see the lint", login="deploy-user"), routed=True)
    assert fast.depth == 2
    assert any("machine's pace" in r for r in fast.reasons)


def test_a_person_writing_seconds_after_reynolds_answered_someone_else_is_a_person(store: MemoryStore,
                                                                                   clock: SimClock) -> None:
    """v3: pace is measured against Reynolds' answer TO the actor; an answer to someone else is not what a
    person reacts to (60 people on an outage issue, a support rota, a stand-up)."""
    lineage = service(store, clock)
    answer(lineage, gh("Deploy is broken"), "Reynolds triaged the deploy failure as a bug")
    clock.advance(5)
    other = gh("Deploy blocked for us too", login="deploy-user")
    fast = lineage.decide(other, routed=True)
    assert (fast.verdict, fast.chain_id, fast.depth, fast.rule) == (Verdict.ACCEPTED, new_chain_id(other.id), 0,
                                                                    "human")


# ------------------------------------------------------------------------------------------ exchange rules
def test_repeats_modulo_numbers_ids_and_tokens() -> None:
    assert repeats(repeat_key("Status check: still failing (ref qzkvbt)"),
                   repeat_key("Status check: still failing (ref wcfqix)"))
    assert repeats(repeat_key("Status check: build 12 still failing"),
                   repeat_key("Status check: build 13 still failing"))
    assert not repeats(repeat_key("Any update on this issue, please?"),
                       repeat_key("Any update on this issue, please?"))  # a person following up
    assert not repeats(repeat_key("Any update on this?"), repeat_key("Any update on this?"))  # short: people do
    assert not repeats(repeat_key("It is a 2 GB CSV exported from billing."),
                       repeat_key("Yes, the error mentions a timeout after ten minutes."))


def test_a_counterpart_answering_reynolds_with_one_template_is_held_on_the_third(store: MemoryStore,
                                                                                clock: SimClock) -> None:
    lineage = service(store, clock)
    answer(lineage, gh("help, the export fails"), "Reynolds triaged the export failure")
    verdicts = []
    for token in ("qzkvbt", "wcfqix", "mwrplx"):
        clock.advance(1200)  # a person's pace: only the repetition gives it away
        event = gh(f"Status check: the export is still failing (ref {token})", login="poller")
        decision = lineage.decide(event, routed=True)
        verdicts.append((decision.verdict, decision.rule))
        if decision.verdict is Verdict.ACCEPTED:
            record, _ = lineage.begin_effect(EffectRecord(
                key=f"{event.id}:r", platform="github", kind="comment", target="octo/app#7",
                chain_id=decision.chain_id or "", event_id=event.id, depth=decision.depth + 1))
            lineage.complete_effect(record, f"comment:{token}", "Reynolds: still investigating the export")
    assert verdicts[:2] == [(Verdict.ACCEPTED, "human"), (Verdict.ACCEPTED, "human")]
    assert verdicts[2] == (Verdict.LOOP, "repeat")


def test_a_persons_own_messages_on_many_threads_are_never_exchanges(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    saved = "Thanks for the report! Could you attach the full log and the version you run?"
    for n in range(15):
        clock.advance(240)
        event = gh(saved, number=n + 1, login="maria")
        decision = lineage.decide(event, routed=True)
        assert decision.verdict is Verdict.ACCEPTED
        assert decision.depth == 0
        record, _ = lineage.begin_effect(EffectRecord(
            key=f"{event.id}:r", platform="github", kind="comment", target=f"octo/app#{n + 1}",
            chain_id=decision.chain_id or "", event_id=event.id, depth=1))
        lineage.complete_effect(record, f"comment:{n}", "Reynolds triaged this as needing information")


def test_an_app_bot_hopping_repositories_is_stopped_by_its_own_history(store: MemoryStore,
                                                                       clock: SimClock) -> None:
    lineage = service(store, clock)
    answer(lineage, gh("The build fails"), "Reynolds triaged the build failure")
    verdicts = []
    for n in range(4):
        clock.advance(5)
        event = gh(f"Follow-up ticket from the pipeline, part {n}", repo=f"octo/repo-{n}", number=1,
                   login="hopper[bot]", kind=ActorKind.BOT)
        decision = lineage.decide(event, routed=True)
        verdicts.append(decision.verdict)
        if decision.verdict is Verdict.ACCEPTED:
            record, _ = lineage.begin_effect(EffectRecord(
                key=f"{event.id}:r", platform="github", kind="comment", target=f"octo/repo-{n}#1",
                chain_id=decision.chain_id or "", event_id=event.id, depth=decision.depth + 1))
            lineage.complete_effect(record, f"comment:{n}", "Reynolds triaged the follow-up")
    assert verdicts == [Verdict.ACCEPTED, Verdict.ACCEPTED, Verdict.LOOP, Verdict.LOOP]


def test_resume_releases_the_counterparts_answered_on_the_thread(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    answer(lineage, gh("help"), "Reynolds triaged it")
    clock.advance(5)
    answer(lineage, gh("Status check: the export is still failing (ref qzkvbt)", login="poller"), "Reynolds again")
    clock.advance(1200)
    answer(lineage, gh("Status check: the export is still failing (ref wcfqix)", login="poller"), "Reynolds again")
    assert lineage.release("github", "octo/app#7") == ["github:poller"]
    assert lineage.release("github", "octo/app#7") == []  # nothing holds it any more


def test_malformed_evidence_entries_are_skipped_not_fatal(store: MemoryStore, clock: SimClock) -> None:
    lineage = service(store, clock)
    store.upsert({"id": evidence_id("github:octo"), "pk": evidence_id("github:octo"), "kind": "evidence",
                  "targets": {"github:octo/app#7": {"c": 3, "e": None}}, "actors": "garbage",
                  "last": [None, {"c": "x"}], "texts": [{"x": 5}]})
    decision = lineage.decide(gh("a bot acts", login="ci[bot]", kind=ActorKind.BOT), routed=True)
    assert (decision.verdict, decision.depth, decision.parent_id) == (Verdict.ACCEPTED, 1, None)


def test_a_third_party_reposting_reynolds_bare_is_a_relay_the_person_answered_is_not(store: MemoryStore,
                                                                                    clock: SimClock) -> None:
    lineage = service(store, clock)
    words = "Reynolds triaged this as a bug: the importer times out on files above 2 GB"
    first = answer(lineage, gh("The importer fails on large files"), words)
    clock.advance(600)
    pasted = lineage.decide(gh(words), routed=True)  # alice pastes back Reynolds' answer to her: quoting
    assert (pasted.depth, pasted.rule) == (0, "human")
    clock.advance(600)
    relayed = lineage.decide(gh(f"Echo: {words}", login="relay-user"), routed=True)
    assert (relayed.chain_id, relayed.depth) == (first.chain_id, 2)
    assert any("relays Reynolds' words" in r for r in relayed.reasons)
