"""``LineageService``: joining events to chains, the loop rules over stored state, the effect ledger.

Unit tests run on ``MemoryStore`` with a simulated clock; the concurrency tests run on both stores (the local
Cosmos DB server for the real ETag semantics). The last tests go through the registered HTTP trigger.
"""

from __future__ import annotations

import json
import string
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.errors import CorruptState, NotFound, RetryLater
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.loop.lineage import Decision, EffectRecord, LineageService, new_chain_id
from shared.loop.marker import hidden_marker
from shared.loop.rules import ChainHead, GuardConfig, Verdict, normalise_text
from shared.platforms.github.events import event_identity
from shared.store.base import DocumentStore
from shared.store.memory import MemoryStore
from tools.simulate import raw_body
from tools.world import SimClock, World, build_world

KEY = "lineage-test-marker-key"
REPO = "octo/app"
# Explicit thresholds: the tests must not depend on the defaults, which are tuned elsewhere.
CONFIG = GuardConfig(max_automated_depth=4, causal_window_seconds=3600, chain_budget=100, max_children=100)
ROOMY = GuardConfig(max_automated_depth=1000, causal_window_seconds=3600, chain_budget=1000, max_children=1000)


# ----------------------------------------------------------------------------------------------- helpers
def word(n: int) -> str:
    """A letters-only token for ``n`` (digits would be folded by ``normalise_text``)."""
    letters = string.ascii_lowercase
    out = ""
    while True:
        out = letters[n % 26] + out
        n //= 26
        if n == 0:
            return out


def event(*, kind: ActorKind = ActorKind.HUMAN, login: str | None = None, text: str = "", number: int = 7,
          repo: str = REPO, resource_id: str | None = None, event_id: str | None = None) -> EventEnvelope:
    """An ``issue_comment.created`` envelope as ``to_envelope`` would build it."""
    logins = {ActorKind.HUMAN: "alice", ActorKind.BOT: "ci-helper[bot]", ActorKind.SELF: "reynolds[bot]",
              ActorKind.SYSTEM: "octo-org"}
    return EventEnvelope(
        id=event_id or f"github:{uuid.uuid4()}", source=f"https://github.com/{repo}",
        type="com.github.issue_comment.created", subject=f"{repo}#{number}", time=datetime(2026, 1, 1, tzinfo=UTC),
        platform=Platform.GITHUB, event="issue_comment", action="created",
        actor=Actor(login=login or logins[kind], kind=kind,
                    account_type="Bot" if kind in (ActorKind.BOT, ActorKind.SELF) else "User"),
        target=Target(platform=Platform.GITHUB, key=f"{repo}#{number}", repo=repo, number=number),
        resource_id=resource_id or f"comment:{uuid.uuid4().int % 10**9}", text=text,
    )


def marked(text: str, chain: str, parent: str, depth: int, key: str = KEY) -> str:
    return f"{text}\n\n{hidden_marker(key, chain, parent, depth)}"


def head_of(store: DocumentStore, chain: str) -> ChainHead:
    return ChainHead.from_doc(store.read(chain, "head"))


def event_doc(store: DocumentStore, event_id: str) -> dict[str, Any]:
    return store.read(f"ev:{event_id}", f"ev:{event_id}")


def record(chain: str, event_id: str, depth: int, *, target: str = f"{REPO}#7", key: str | None = None) -> EffectRecord:
    return EffectRecord(key=key or f"{event_id}:report", platform="github", kind="comment", target=target,
                        chain_id=chain, event_id=event_id, depth=depth)


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def store(clock: SimClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def lineage(store: MemoryStore, clock: SimClock) -> LineageService:
    return LineageService(store, CONFIG, marker_key=KEY, clock=clock)


@pytest.fixture
def chain(lineage: LineageService) -> Decision:
    """A chain started by a person opening a conversation (depth 0)."""
    decision = lineage.decide(event(text="The app crashes on start"), routed=True)
    assert decision.verdict is Verdict.ACCEPTED
    return decision


def reynolds_wrote(lineage: LineageService, chain: Decision, text: str, *, target: str = f"{REPO}#7",
                   resource: str = "comment:4242") -> EffectRecord:
    """Reynolds answered ``chain``'s root event with ``text`` on ``target`` (intent, write, completion)."""
    intent, fresh = lineage.begin_effect(record(chain.chain_id or "", chain.event_id, chain.depth + 1, target=target))
    assert fresh
    return lineage.complete_effect(intent, resource, text)


# --------------------------------------------------------------------------------------------- verdicts
def test_duplicate_keeps_the_original_verdict(lineage: LineageService, store: MemoryStore) -> None:
    first = event(text="please look at this")
    original = lineage.decide(first, routed=True)
    head = head_of(store, original.chain_id or "")
    again = lineage.decide(first, routed=True)
    assert again.verdict is Verdict.DUPLICATE
    assert again.original_verdict is Verdict.ACCEPTED
    assert (again.chain_id, again.depth) == (original.chain_id, original.depth)
    assert event_doc(store, first.id)["verdict"] == "accepted"
    assert head_of(store, original.chain_id or "").events == head.events == 1


def test_duplicate_of_a_loop_stays_a_loop(lineage: LineageService, chain: Decision) -> None:
    too_deep = event(kind=ActorKind.BOT, text=marked("again", chain.chain_id or "", chain.event_id, 4))
    assert lineage.decide(too_deep, routed=True).verdict is Verdict.LOOP
    again = lineage.decide(too_deep, routed=True)
    assert (again.verdict, again.original_verdict) == (Verdict.DUPLICATE, Verdict.LOOP)


def test_unrouted_event_is_ignored_without_a_chain(lineage: LineageService, store: MemoryStore) -> None:
    decision = lineage.decide(event(kind=ActorKind.BOT, text="label added"), routed=False)
    assert (decision.verdict, decision.chain_id) == (Verdict.IGNORED, None)
    assert event_doc(store, decision.event_id)["verdict"] == "ignored"


def test_own_identity_is_self(lineage: LineageService) -> None:
    decision = lineage.decide(event(kind=ActorKind.SELF, text="### Reynolds · triage"), routed=False)
    assert decision.verdict is Verdict.SELF
    assert "Reynolds' own identity" in decision.reason


def test_self_event_joins_its_chain_through_the_ledger(lineage: LineageService, store: MemoryStore,
                                                       chain: Decision) -> None:
    done = reynolds_wrote(lineage, chain, "Reynolds triaged this as bug", resource="comment:777")
    assert (done.state, done.resource_id) == ("done", "comment:777")
    echo = event(kind=ActorKind.SELF, text="Reynolds triaged this as bug (marker stripped by an edit)",
                 resource_id="comment:777")
    decision = lineage.decide(echo, routed=False)
    assert decision.verdict is Verdict.SELF
    assert (decision.chain_id, decision.parent_id, decision.depth) == (chain.chain_id, chain.event_id, 1)
    assert event_doc(store, echo.id)["via"] == "ledger"
    assert head_of(store, chain.chain_id or "").verdicts == {"accepted": 1, "self": 1}


def test_self_event_joins_its_chain_through_a_valid_marker(lineage: LineageService, store: MemoryStore,
                                                          chain: Decision) -> None:
    echo = event(kind=ActorKind.SELF, text=marked("Reynolds says hi", chain.chain_id or "", chain.event_id, 1),
                 resource_id="comment:not-in-the-ledger")
    decision = lineage.decide(echo, routed=False)
    assert decision.verdict is Verdict.SELF
    assert (decision.chain_id, decision.parent_id, decision.depth) == (chain.chain_id, chain.event_id, 1)
    assert event_doc(store, echo.id)["via"] == "marker"


@pytest.mark.parametrize("forgery", ["wrong-key", "depth-reset"])
def test_forged_marker_is_ignored_as_evidence(lineage: LineageService, store: MemoryStore, chain: Decision,
                                              forgery: str) -> None:
    chain_id = chain.chain_id or ""
    if forgery == "wrong-key":
        text = marked("trust me", chain_id, chain.event_id, 0, key="somebody-elses-key")
    else:  # a valid depth-3 marker with the depth edited to 0 (an automation hiding how deep it is)
        text = marked("trust me", chain_id, chain.event_id, 3).replace("depth=3", "depth=0")
    bot = event(kind=ActorKind.BOT, text=text)
    decision = lineage.decide(bot, routed=True)
    assert decision.chain_id == new_chain_id(bot.id) != chain_id
    assert (decision.parent_id, decision.depth) == (None, 1)
    assert "a marker that does not verify was ignored" in decision.reasons
    doc = event_doc(store, bot.id)
    assert doc["via"] == "new"
    assert "a marker that does not verify was ignored" in doc["reasons"]
    assert head_of(store, chain_id).events == 1  # the forged chain was not touched


def test_person_quoting_a_marker_starts_a_linked_chain_at_depth_zero(lineage: LineageService, store: MemoryStore,
                                                                    chain: Decision) -> None:
    quote = event(text=marked("> Reynolds triaged this as bug\n\nNo, it is a feature", chain.chain_id or "",
                              chain.event_id, 3))
    decision = lineage.decide(quote, routed=True)
    assert decision.verdict is Verdict.ACCEPTED
    assert (decision.chain_id, decision.parent_id, decision.depth) == (new_chain_id(quote.id), None, 0)
    assert event_doc(store, quote.id)["linked_chain"] == chain.chain_id
    assert head_of(store, new_chain_id(quote.id)).linked_from == chain.chain_id


def test_automation_on_a_target_reynolds_just_wrote_joins_that_chain(lineage: LineageService, store: MemoryStore,
                                                                     chain: Decision, clock: SimClock) -> None:
    reynolds_wrote(lineage, chain, "Reynolds triaged this as bug (signals: crash)")
    clock.advance(30)
    bot = event(kind=ActorKind.BOT, text="Thanks for the report, a maintainer will look soon.")
    decision = lineage.decide(bot, routed=True)
    assert decision.verdict is Verdict.ACCEPTED
    assert (decision.chain_id, decision.parent_id, decision.depth) == (chain.chain_id, chain.event_id, 2)
    assert event_doc(store, bot.id)["via"] == "causal-target"


def test_automation_long_after_reynolds_wrote_starts_a_new_chain(lineage: LineageService, chain: Decision,
                                                                  clock: SimClock) -> None:
    reynolds_wrote(lineage, chain, "Reynolds triaged this as bug (signals: crash)")
    clock.advance(max(CONFIG.causal_window_seconds, CONFIG.scope_window_seconds) + 1)
    bot = event(kind=ActorKind.BOT, text="Stale issue reminder.")
    decision = lineage.decide(bot, routed=True)
    assert (decision.chain_id, decision.depth) == (new_chain_id(bot.id), 1)


def test_person_on_a_target_reynolds_wrote_starts_a_linked_chain(lineage: LineageService, store: MemoryStore,
                                                                 chain: Decision) -> None:
    reynolds_wrote(lineage, chain, "Reynolds triaged this as bug (signals: crash)")
    person = event(text="Thanks Reynolds, it is indeed a bug")
    decision = lineage.decide(person, routed=True)
    assert (decision.chain_id, decision.depth) == (new_chain_id(person.id), 0)
    assert event_doc(store, person.id)["linked_chain"] == chain.chain_id


def test_automation_copying_reynolds_text_elsewhere_joins_that_chain(lineage: LineageService, store: MemoryStore,
                                                                     chain: Decision) -> None:
    said = "Reynolds triaged this as **bug** (signals: error, crash, fail)."
    reynolds_wrote(lineage, chain, said)
    copier = event(kind=ActorKind.BOT, repo="octo/mirror", number=3,
                   text=f"Mirrored from octo/app#7 at 2026-01-01T10:00:00Z:\n{said}\n-- sync bot")
    decision = lineage.decide(copier, routed=True)
    assert (decision.chain_id, decision.parent_id, decision.depth) == (chain.chain_id, chain.event_id, 2)
    assert event_doc(store, copier.id)["via"] == "causal-text"


def test_automated_depth_cap_is_a_loop(lineage: LineageService, chain: Decision) -> None:
    chain_id = chain.chain_id or ""
    at_cap = lineage.decide(event(kind=ActorKind.BOT, text=marked("step alpha", chain_id, "github:p3", 3)),
                            routed=True)
    assert (at_cap.verdict, at_cap.depth) == (Verdict.ACCEPTED, CONFIG.max_automated_depth)
    over = lineage.decide(event(kind=ActorKind.BOT, text=marked("step beta", chain_id, "github:p4", 4)), routed=True)
    assert (over.verdict, over.depth) == (Verdict.LOOP, 5)
    assert "exceeds the cap of 4" in over.reason


def test_same_bot_text_twice_in_a_chain_is_a_cycle(lineage: LineageService, store: MemoryStore,
                                                   chain: Decision) -> None:
    chain_id = chain.chain_id or ""
    first = ("CI run 1234 failed at 2026-01-01T10:00:00Z on commit 9f8e7d6c5b4a "
             "(job 3f2504e0-4f89-11d3-9a0c-0305e82c3301), see https://ci.example/runs/1234")
    second = ("CI run 98765 failed at 2026-03-04T11:22:33+02:00 on commit 0a1b2c3d4e5f6 "
              "(job 6ba7b810-9dad-11d1-80b4-00c04fd430c8), see https://ci.example/runs/98765")
    assert normalise_text(first) == normalise_text(second)
    one = lineage.decide(event(kind=ActorKind.BOT, text=marked(first, chain_id, chain.event_id, 1)), routed=True)
    other = lineage.decide(event(kind=ActorKind.BOT, text=marked("CI run 7 passed", chain_id, one.event_id, 2)),
                           routed=True)
    two = lineage.decide(event(kind=ActorKind.BOT, text=marked(second, chain_id, other.event_id, 3)), routed=True)
    assert (one.verdict, other.verdict) == (Verdict.ACCEPTED, Verdict.ACCEPTED)
    assert two.verdict is Verdict.LOOP
    assert "cycle" in two.reason
    assert head_of(store, chain_id).verdicts == {"accepted": 3, "loop": 1}


# ------------------------------------------------------------------------------------------------ costs
def _chain_of(length: int, lineage: LineageService) -> tuple[str, str]:
    """A chain holding ``length`` automated events, each answering the previous one; (chain id, last event)."""
    chain_id, parent = "c-cost", "github:root"
    for n in range(length):
        step = lineage.decide(event(kind=ActorKind.BOT, text=marked(f"note {word(n)}", chain_id, parent, n)),
                              routed=True)
        assert (step.chain_id, step.depth) == (chain_id, n + 1)
        parent = step.event_id
    return chain_id, parent


@pytest.mark.parametrize("via", ["marker", "causal-target", "ledger"])
def test_a_decision_costs_the_same_few_requests_at_any_chain_depth(via: str, clock: SimClock) -> None:
    costs = {}
    for depth in (1, 10, 100):
        store = MemoryStore(clock=clock)
        lineage = LineageService(store, ROOMY, marker_key=KEY, clock=clock)
        chain_id, last = _chain_of(depth - 1, lineage) if depth > 1 else ("c-cost", "github:root")
        if via == "marker":
            probe = event(kind=ActorKind.BOT, text=marked("measured", chain_id, last, depth - 1))
        elif via == "causal-target":
            done = lineage.begin_effect(record(chain_id, last, depth - 1))[0]
            lineage.complete_effect(done, "comment:1", "Reynolds answered")
            probe = event(kind=ActorKind.BOT, text="measured without a marker")
        else:
            done = lineage.begin_effect(record(chain_id, last, depth))[0]
            lineage.complete_effect(done, "comment:2", "Reynolds answered")
            probe = event(kind=ActorKind.SELF, text="measured", resource_id="comment:2")
        before = store.requests
        decision = lineage.decide(probe, routed=via != "ledger")
        costs[depth] = store.requests - before
        assert decision.chain_id == chain_id
        assert decision.depth == depth
        assert event_doc(store, probe.id)["via"] == via
    assert max(costs.values()) <= 4, costs
    assert len(set(costs.values())) == 1, f"cost grows with the chain: {costs}"


# ---------------------------------------------------------------------------------------------- racing
@pytest.fixture(params=["memory", pytest.param("cosmos", marks=pytest.mark.integration)])
def any_store(request: pytest.FixtureRequest, clock: SimClock) -> DocumentStore:
    if request.param == "cosmos":
        cosmos: DocumentStore = request.getfixturevalue("cosmos_store")
        return cosmos
    return MemoryStore(clock=clock)


def test_fifty_concurrent_automated_events_in_one_chain_keep_exact_counters(any_store: DocumentStore,
                                                                            clock: SimClock) -> None:
    config = GuardConfig(max_automated_depth=4, causal_window_seconds=3600, chain_budget=100, max_children=3)
    lineage = LineageService(any_store, config, marker_key=KEY, clock=clock)
    chain_id, root = "c-race", "github:race-root"
    events = [event(kind=ActorKind.BOT, text=marked(f"bot reply {word(n)}", chain_id, root, 0)) for n in range(50)]
    barrier = threading.Barrier(len(events))

    def decide(e: EventEnvelope) -> Decision:
        barrier.wait(timeout=30)
        return lineage.decide(e, routed=True)

    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        decisions = list(pool.map(decide, events))

    head = head_of(any_store, chain_id)
    assert head.events == 50
    assert sum(head.verdicts.values()) == 50
    # The amplification cap holds under the race: exactly max_children answers to the root run.
    assert head.verdicts == {"accepted": 3, "loop": 47}
    assert head.automated_accepted == 3
    assert head.children == {root: 50}
    assert Counter(d.verdict.value for d in decisions) == Counter(head.verdicts)
    docs = [event_doc(any_store, e.id) for e in events]  # NotFound here would be a lost event doc
    assert all(doc["chain_id"] == chain_id for doc in docs)
    assert {doc["event_id"]: doc["verdict"] for doc in docs} == {d.event_id: d.verdict.value for d in decisions}


# ------------------------------------------------------------------------------------------- corruption
@pytest.mark.parametrize("garbage", [
    pytest.param({"events": "many", "verdicts": {}}, id="counter-of-wrong-type"),
    pytest.param({"verdicts": ["accepted"]}, id="missing-fields"),
    pytest.param({"chain_id": "c", "created_at": "x", "root_event": "r", "fingerprints": "abc"}, id="bad-memory"),
])
def test_corrupt_chain_head_raises_corrupt_state(lineage: LineageService, store: MemoryStore, chain: Decision,
                                                 garbage: dict[str, Any]) -> None:
    chain_id = chain.chain_id or ""
    store.upsert({"id": "head", "pk": chain_id, "kind": "chain", **garbage})
    bot = event(kind=ActorKind.BOT, text=marked("next step", chain_id, chain.event_id, 0))
    with pytest.raises(CorruptState, match=chain_id):
        lineage.decide(bot, routed=True)
    with pytest.raises(NotFound):
        event_doc(store, bot.id)


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as w:
        yield w


SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "samples" / "issues-opened.json").read_text())


async def test_trigger_holds_an_event_on_a_corrupt_chain_as_loop(world: World) -> None:
    sample = json.loads(json.dumps(SAMPLE))
    payload = sample["body"]
    payload["issue"]["number"] = 301
    world.seed_from_payload(payload)
    delivery = str(uuid.uuid4())
    headers = {**sample["headers"], "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": "auto"}
    event_id = "github:" + event_identity("issues", payload)  # identity from the payload, not the delivery header
    chain_id = new_chain_id(event_id)
    world.store.upsert({"id": "head", "pk": chain_id, "kind": "chain", "events": "garbage"})
    status, answer = await world.post_github(headers, raw_body(payload))
    assert (status, answer["verdict"], answer["instance_id"]) == (200, "loop", None), answer
    assert "loop-suspect" in answer["reason"]
    assert world.client.starts == 0
    assert world.github.comments(REPO, 301) == []
    assert world.services.lineage.get_event(event_id)["verdict"] == "loop"  # type: ignore[index]
    status, again = await world.post_github(headers, raw_body(payload))
    assert (status, again["verdict"], again["instance_id"]) == (200, "duplicate", None)
    assert world.client.starts == 0


# ------------------------------------------------------------------------------------------------ ledger
def test_effect_ledger_records_intent_then_done(lineage: LineageService, store: MemoryStore,
                                                chain: Decision) -> None:
    intent, fresh = lineage.begin_effect(record(chain.chain_id or "", chain.event_id, 1), attempt=1)
    assert fresh
    assert intent.state == "intent"
    with pytest.raises(RetryLater, match="being written by attempt 1"):
        # The same attempt again is a concurrent duplicate execution: only one of the two may write.
        lineage.begin_effect(record(chain.chain_id or "", chain.event_id, 1), attempt=1)
    again, fresh_again = lineage.begin_effect(record(chain.chain_id or "", chain.event_id, 1), attempt=2)
    assert (fresh_again, again.state, again.resource_id) == (False, "intent", None)  # a retry takes over
    lineage.complete_effect(intent, "comment:55", "Reynolds triaged this as a question")
    stored, fresh_after = lineage.begin_effect(record(chain.chain_id or "", chain.event_id, 1), attempt=3)
    assert (fresh_after, stored.state, stored.resource_id) == (False, "done", "comment:55")
    index = store.read("fr:github:comment:55", "fr:github:comment:55")
    assert (index["chain_id"], index["event_id"], index["depth"]) == (chain.chain_id, chain.event_id, 1)


def test_explore_lists_the_chains_effects(lineage: LineageService, chain: Decision) -> None:
    reynolds_wrote(lineage, chain, "Reynolds triaged this as bug", resource="comment:88")
    explored = lineage.explore(chain.chain_id or "")
    assert explored is not None
    assert [e["event_id"] for e in explored["events"]] == [chain.event_id]
    assert [(e["resource_id"], e["state"]) for e in explored["effects"]] == [("comment:88", "done")]
    assert all(e["chain_id"] == chain.chain_id for e in explored["effects"])
