"""The lineage service: joins events to chains and records every decision; the facade of the loop guard.

It composes three parts, each with its own documents (one container, partition key path ``/pk``):

* decisions (this module): ``ev:<event id>`` (own partition), the event and its decision, created if absent
  so a second delivery gets ``Conflict`` → ``duplicate`` (TTL ≥ 72 h: GitHub redelivers for 3 days); and
  ``head`` in partition ``<chain id>``, the chain's counters, replaced with an ETag precondition (a lost race
  re-reads, re-judges, tries again).
* the effect ledger (``shared.loop.ledger``): ``fx:``/``fr:`` documents, Reynolds' writes exactly once.
* causal evidence (``shared.loop.evidence``): one bounded, TTL-bound ``sc:<group>`` document per
  organisation, tenant, namespace or linked set (``shared.loop.scopes``), written after each effect.

A decision costs at most four requests whatever the chain's length or the load: one evidence read (none
when an automation carries a valid marker), the head read (none for a new chain), the event create and the
head write. No query runs on the hot path, and no decision writes a document another chain writes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.errors import Conflict, CorruptState, NotFound, PreconditionFailed
from shared.loop.envelope import ActorKind, EventEnvelope, Platform
from shared.loop.evidence import SNIPPET_CHARS, EvidenceStore, GroupView, Trace
from shared.loop.ledger import EffectLedger, EffectRecord, doc_id, public
from shared.loop.marker import Marker, find_markers
from shared.loop.rules import (
    ChainHead,
    Evidence,
    GuardConfig,
    Judgement,
    Verdict,
    apply,
    judge,
    normalise_text,
    repeat_key,
    repeats,
)
from shared.loop.scopes import Scope, ScopeMap, container_of
from shared.store.base import DocumentStore, Query

__all__ = ["Decision", "EffectRecord", "LineageService", "chain_mermaid", "instance_id_for", "new_chain_id",
           "scope_of"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_MAX_RETRIES = 50
#: The old name of ``container_of`` (the scope a target belongs to).
scope_of = container_of


@dataclass(frozen=True)
class Decision:
    """The loop guard's answer for one event."""

    verdict: Verdict
    reasons: tuple[str, ...]
    event_id: str
    chain_id: str | None = None
    parent_id: str | None = None
    depth: int = 0
    #: For ``duplicate``: the verdict the first delivery got.
    original_verdict: Verdict | None = None
    #: The rule that decided (see ``shared.loop.rules.Judgement.rule``).
    rule: str = ""

    @property
    def reason(self) -> str:
        """All reasons in one line."""
        return "; ".join(self.reasons)


def instance_id_for(event_id: str) -> str:
    """The orchestration instance id derived from an event id (no ``/ \\ ? #`` or control characters)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", event_id)
    if len(safe) > 100:
        safe = safe[:80] + "-" + hashlib.sha256(event_id.encode()).hexdigest()[:16]
    return safe


def new_chain_id(event_id: str) -> str:
    """A chain id derived from the event that starts it (stable across retries of one decision)."""
    return "c-" + hashlib.sha256(event_id.encode()).hexdigest()[:20]


def actor_key(platform: str, login: str | None, ident: str | None = None) -> str | None:
    """How a counterpart is named in the evidence (``<platform>:<login>``), or None when it has no name."""
    name = login or ident
    return f"{platform}:{name.lower()}" if name else None


class LineageService:
    """Decides events and records effects over a ``DocumentStore``."""

    def __init__(self, store: DocumentStore, config: GuardConfig, *, marker_key: str | None,
                 dedupe_ttl_seconds: int = 72 * 3600, lineage_ttl_seconds: int = 30 * 86400,
                 clock: Clock | None = None, scopes: ScopeMap | None = None) -> None:
        self.store = store
        self.config = config
        self.marker_key = marker_key
        self.event_ttl = max(dedupe_ttl_seconds, lineage_ttl_seconds)
        self.lineage_ttl = lineage_ttl_seconds
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.scopes = scopes or ScopeMap()
        window = max(config.causal_window_seconds, config.scope_window_seconds)
        self.evidence = EvidenceStore(store, window_seconds=window, ttl_seconds=window)
        self.ledger = EffectLedger(store, marker_key=marker_key, event_ttl=self.event_ttl,
                                   lineage_ttl=lineage_ttl_seconds, now=self._now, on_done=self._remember)

    # -- decisions ------------------------------------------------------------------------------------
    def decide(self, event: EventEnvelope, *, routed: bool) -> Decision:
        """Judge one event and record the decision; ``routed`` says whether any route would run it."""
        if event.actor.kind is not ActorKind.SELF and not routed:
            return self._record_unchained(event, Verdict.IGNORED, ("no route for this event",))
        try:
            evidence = self._evidence(event)
            fresh = evidence.via == "new"
            head, etag = (None, None) if fresh else self._read_head(evidence.chain_id, event)
            judgement = judge(event, evidence, head, self.config)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A stored document that does not have the shape this code wrote: never run on it, never drop.
            raise CorruptState(f"lineage state does not validate ({type(exc).__name__})") from None
        doc = self._event_doc(event, evidence, judgement)
        try:
            self.store.create(doc)
        except Conflict:
            return self._duplicate(event.id)
        for _ in range(_MAX_RETRIES):
            current = head or ChainHead(chain_id=evidence.chain_id, created_at=self._now(), root_event=event.id,
                                        linked_from=evidence.linked_chain, root_actor=evidence.actor,
                                        root_automated=evidence.automated(event))
            updated = apply(current, event, evidence, judgement, self._now(), self.config)
            body = {"id": "head", "pk": evidence.chain_id, "kind": "chain", "ttl": self.lineage_ttl,
                    **updated.to_doc()}
            try:
                if etag is None:
                    self.store.create(body)
                else:
                    self.store.replace(body, etag)
                break
            except (Conflict, PreconditionFailed):
                try:
                    head, etag = self._read_head(evidence.chain_id, event)
                except CorruptState as exc:
                    # A new chain's head that already exists and does not validate (the head read was
                    # skipped for a new chain): held as loop-suspect like any other corrupt state.
                    return self._held(event, str(exc))
                rejudged = judge(event, evidence, head, self.config)
                if rejudged.verdict is not judgement.verdict:
                    judgement = rejudged
                    self.store.replace(self._event_doc(event, evidence, judgement), None)
        else:  # pragma: no cover - 50 lost races in a row means the store is unhealthy
            raise CorruptState(f"chain {evidence.chain_id}: head update kept losing races")
        return Decision(judgement.verdict, judgement.reasons, event.id, evidence.chain_id, evidence.parent_id,
                        evidence.depth, rule=judgement.rule)

    def hold(self, event: EventEnvelope, problem: str) -> Decision:
        """Record an event as loop-suspect when its chain state cannot be trusted (fail safe, not silent)."""
        reasons = (f"loop-suspect: {problem}; held, not run",)
        decision = self._record_unchained(event, Verdict.LOOP, reasons)
        return replace(decision, rule="loop-suspect") if decision.verdict is Verdict.LOOP else decision

    def _held(self, event: EventEnvelope, problem: str) -> Decision:
        """Overwrite this event's just-created decision as loop-suspect (its chain state cannot be trusted)."""
        reasons = (f"loop-suspect: {problem}; held, not run",)
        self.store.upsert(self._unchained_doc(event, Verdict.LOOP, reasons))
        return Decision(Verdict.LOOP, reasons, event.id, rule="loop-suspect")

    def _unchained_doc(self, event: EventEnvelope, verdict: Verdict, reasons: tuple[str, ...]) -> dict[str, Any]:
        return {"id": doc_id("ev", event.id), "pk": doc_id("ev", event.id), "kind": "event", "event_id": event.id,
                "chain_id": None, "verdict": verdict.value, "reasons": list(reasons), "type": event.type,
                "actor": event.actor.model_dump(mode="json"), "time": self._now(), "ttl": self.event_ttl,
                "target": event.target.key if event.target else None}

    def _record_unchained(self, event: EventEnvelope, verdict: Verdict, reasons: tuple[str, ...]) -> Decision:
        try:
            self.store.create(self._unchained_doc(event, verdict, reasons))
        except Conflict:
            return self._duplicate(event.id)
        return Decision(verdict, reasons, event.id)

    def _duplicate(self, event_id: str) -> Decision:
        try:
            first = self.store.read(doc_id("ev", event_id), doc_id("ev", event_id))
            original = Verdict(first.get("verdict", Verdict.ACCEPTED.value))
        except (NotFound, ValueError):
            first, original = {}, None
        return Decision(Verdict.DUPLICATE, ("this event was already received",), event_id, first.get("chain_id"),
                        first.get("parent_id"), int(first.get("depth") or 0), original)

    def _event_doc(self, event: EventEnvelope, evidence: Evidence, judgement: Judgement) -> dict[str, Any]:
        return {"id": doc_id("ev", event.id), "pk": doc_id("ev", event.id), "kind": "event", "event_id": event.id,
                "chain_id": evidence.chain_id, "parent_id": evidence.parent_id, "depth": evidence.depth,
                "via": evidence.via, "verdict": judgement.verdict.value, "reasons": list(judgement.reasons),
                "rule": judgement.rule, "fingerprint": judgement.fingerprint, "type": event.type,
                "time": self._now(), "actor": event.actor.model_dump(mode="json"),
                "target": event.target.key if event.target else None, "linked_chain": evidence.linked_chain,
                "judged_automated": evidence.relay,
                # The exchange record an answer to this event carries into the evidence (see ``_remember``).
                "actor_key": actor_key(event.platform.value, event.actor.login, event.actor.id),
                "snippet": repeat_key(event.text)[:SNIPPET_CHARS], "exchanges": evidence.exchanges,
                "repeats": evidence.repeats, "fast": evidence.fast, "relayed": evidence.relayed,
                "ttl": self.event_ttl}

    def _read_head(self, chain_id: str, event: EventEnvelope) -> tuple[ChainHead | None, str | None]:
        try:
            doc = self.store.read(chain_id, "head")
        except NotFound:
            return None, None
        try:
            return ChainHead.from_doc(doc), doc["_etag"]
        except (TypeError, ValueError, KeyError) as exc:
            raise CorruptState(f"chain {chain_id} has a corrupt head ({type(exc).__name__})") from None

    # -- evidence -------------------------------------------------------------------------------------
    def _evidence(self, event: EventEnvelope) -> Evidence:
        markers = find_markers(_marker_text(event), self.marker_key)
        forged = tuple("a marker that does not verify was ignored" for m in markers[:1] if not m.valid)
        valid = [m for m in markers if m.valid]
        if forged:
            logger.warning("event %s carries a marker that does not verify; ignored as evidence", event.id)
        if event.actor.kind is ActorKind.SELF:
            return self._self_evidence(event, valid, forged)
        # A Service Bus producer is software by nature: a body field claiming a person is not evidence.
        machine = event.platform is Platform.SERVICEBUS
        declared = event.actor.automated or machine
        # The deepest valid marker: appending an older, shallower one cannot reset a bot's depth.
        marker = max(valid, key=lambda m: m.depth) if valid else None
        if marker is not None and declared:
            return Evidence(marker.chain_id, marker.event_id, marker.depth + 1, "marker", notes=forged,
                            relay=not event.actor.automated,
                            actor=actor_key(event.platform.value, event.actor.login, event.actor.id))
        scope = self._scope_of(event)
        now = self.clock().timestamp()
        view = self.evidence.read(scope.group, now) if scope is not None else GroupView(None, now)
        return self._causal(event, scope, view, marker, forged, machine)

    def _causal(self, event: EventEnvelope, scope: Scope | None, view: GroupView, marker: Marker | None,
                notes: tuple[str, ...], machine: bool) -> Evidence:
        """Join an event to the chain of Reynolds' effect it most plausibly answers, judging its actor.

        An automation (declared, or judged by behaviour) continues: the chain of a text it copied, else of
        Reynolds' latest answer to it anywhere in the group (its history follows it), else of Reynolds'
        latest effect on the target, else of Reynolds' latest effect in the container or the group (its
        first hop). A person starts a fresh chain at depth 0, linked to what it answers.
        """
        cfg = self.config
        now = view.now
        text = normalise_text(event.text)
        key = actor_key(event.platform.value, event.actor.login, event.actor.id)
        target = view.target(scope.target_key, cfg.causal_window_seconds) if scope else None
        history = view.actor(key, cfg.scope_window_seconds) if key and scope else None
        found = view.copied(text, cfg.causal_window_seconds)
        copied, original = found if found is not None else (None, "")
        # An exchange answers Reynolds' previous answer to the same counterpart: an automation's anywhere in
        # the group, a person's on the same target (a person's message on another thread is unprompted).
        since_answer = now - history.at if history is not None else None
        quick = (target is not None and now - target.at <= cfg.fast_reply_seconds) or (
            since_answer is not None and since_answer <= cfg.fast_reply_seconds)
        same_target = history is not None and scope is not None and history.target == scope.target_key
        answering = history if history is not None and not machine and (
            event.actor.automated or same_target or quick) else None
        exchanges = answering.exchanges + 1 if answering else 0
        fast = answering.fast + 1 if answering and since_answer is not None and since_answer <= cfg.pace_seconds \
            else 0
        repeat = answering.repeats + 1 if answering and repeats(answering.snippet,
                                                                 repeat_key(event.text)[:SNIPPET_CHARS]) else 0
        # Relaying: Reynolds' words carried to another platform, or re-posted with nothing of one's own by
        # someone else than the one Reynolds answered (a person pasting back Reynolds' answer to them, or
        # quoting it with their own words, is not relaying). A relay stays one for its exchanges in the window.
        relay = copied is not None and (copied.platform != event.platform.value or (
            not _own_words(text, original) and copied.to != key))
        relay = relay or (answering is not None and answering.relay)
        why = "a Service Bus producer" if machine else "answers at a machine's pace" if quick else \
            "relays Reynolds' words" if relay else ""
        judged = not event.actor.automated and bool(why)
        if judged:
            notes = (*notes, f"judged an automation by its behaviour: {why}")
        stats: dict[str, Any] = {"exchanges": exchanges, "repeats": repeat, "fast": fast, "actor": key,
                                 "relayed": relay and not event.actor.automated}
        if marker is not None:
            if judged:
                return Evidence(marker.chain_id, marker.event_id, marker.depth + 1, "marker", notes=notes,
                                relay=True, **stats)
            # A person quoting Reynolds: causality noted, but a human action starts a fresh chain at depth 0.
            return Evidence(new_chain_id(event.id), None, 0, "new", linked_chain=marker.chain_id, notes=notes,
                            **stats)
        if event.actor.automated or judged:
            source = _first(
                (copied, "causal-text"),
                (None if machine else history, "causal-actor"),
                (None if machine else target, "causal-target"),
                (None if machine or scope is None else view.latest(cfg.scope_window_seconds, scope.container_key),
                 "causal-scope"),
            )
            if source is None:
                return Evidence(new_chain_id(event.id), None, 1, "new", notes=notes, relay=judged, **stats)
            trace, via = source
            return Evidence(trace.chain_id, trace.event_id, trace.depth + 1, via, notes=notes, relay=judged,
                            **stats)
        linked = copied or target
        return Evidence(new_chain_id(event.id), None, 0, "new", linked_chain=linked.chain_id if linked else None,
                        notes=notes, **stats)

    def _scope_of(self, event: EventEnvelope) -> Scope | None:
        scope = self.scopes.of_event(event)
        if scope is None and event.platform is Platform.SERVICEBUS:
            return self.scopes.of_target(Platform.SERVICEBUS.value, "")
        return scope

    def _self_evidence(self, event: EventEnvelope, valid: list[Marker], notes: tuple[str, ...]) -> Evidence:
        if valid:
            marker = max(valid, key=lambda m: m.depth)
            return Evidence(marker.chain_id, marker.event_id, marker.depth, "marker", notes=notes)
        doc = self.own_effect(event.platform.value, event.resource_id)
        if doc is not None:
            return Evidence(doc["chain_id"], doc["event_id"], int(doc["depth"]), "ledger", notes=notes)
        return Evidence(new_chain_id(event.id), None, 1, "new", notes=notes)

    def _remember(self, record: EffectRecord, text: str) -> None:
        """File a completed effect as evidence of its group, with the exchange of the event it answered."""
        answered: dict[str, Any] | None = None
        try:
            stored = self.store.read(doc_id("ev", record.event_id), doc_id("ev", record.event_id))
            if (stored.get("actor") or {}).get("kind") != ActorKind.SELF.value:
                answered = stored
        except NotFound:
            pass
        scope = self.scopes.of_target(record.platform, record.target)
        self.evidence.remember(scope, chain_id=record.chain_id, event_id=record.event_id, depth=record.depth,
                               now=self.clock().timestamp(), text=normalise_text(text), answered=answered)

    def release(self, platform: str, target: str) -> list[str]:
        """Clear the exchange records of the counterparts Reynolds answered on a target (``/reynolds resume``)."""
        return self.evidence.release(self.scopes.of_target(platform, target))

    # -- effects (the ledger) -------------------------------------------------------------------------
    def begin_effect(self, record: EffectRecord, attempt: int | None = None,
                     run: str | None = None) -> tuple[EffectRecord, bool]:
        """Record an effect's intent before the external call (see ``EffectLedger.begin``)."""
        return self.ledger.begin(record, attempt, run)

    def complete_effect(self, record: EffectRecord, resource_id: str, text: str) -> EffectRecord:
        """Record the resource an effect produced, index it and file it as evidence."""
        return self.ledger.complete(record, resource_id, text)

    def suppress_effect(self, record: EffectRecord, reason: str) -> EffectRecord:
        """Record that an effect was not written because a breaker is open."""
        return self.ledger.suppress(record, reason)

    def own_effect(self, platform: str, resource_id: str | None) -> dict[str, Any] | None:
        """The effect index entry when ``resource_id`` on ``platform`` is something Reynolds wrote, else None."""
        return self.ledger.own_effect(platform, resource_id)

    def answering(self, event: EventEnvelope, key_of: Callable[[str], str]) -> EffectRecord | None:
        """Reynolds' own answer on ``event``'s target that ``event`` may *be*, found through its valid marker."""
        if event.target is None:
            return None
        return self.ledger.answering(event.platform.value, event.target.key, _marker_text(event), key_of)

    # -- reading --------------------------------------------------------------------------------------
    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The stored decision of one event, or None."""
        try:
            return public(self.store.read(doc_id("ev", event_id), doc_id("ev", event_id)))
        except NotFound:
            return None

    def explore(self, chain_id: str) -> dict[str, Any] | None:
        """A chain's head, events (with verdicts) and effects; None when the chain is unknown."""
        try:
            head = public(self.store.read(chain_id, "head"))
        except NotFound:
            return None
        events = [public(d) for d in self.store.query(Query(equals={"kind": "event", "chain_id": chain_id}))]
        effects = [public(d) for d in self.store.query(Query(equals={"kind": "effect", "chain_id": chain_id}))]
        events.sort(key=lambda d: (d.get("time") or "", d.get("event_id") or ""))
        return {"chain_id": chain_id, "head": head, "events": events, "effects": effects}

    def _now(self) -> str:
        return self.clock().isoformat()


def _marker_text(event: EventEnvelope) -> str:
    """Where an event's markers are: its text, plus markers the door found outside it.

    Teams HTML comments do not survive ``html_to_text`` and Service Bus carries the marker in an application
    property, so those doors put the marker strings in ``data["markers"]``; both count as evidence.
    """
    extra = event.data.get("markers") if isinstance(event.data, dict) else None
    if not isinstance(extra, list) or not extra:
        return event.text
    return "\n".join([event.text, *(m for m in extra if isinstance(m, str))])


def chain_mermaid(chain: dict[str, Any]) -> str:
    """A Mermaid flowchart of a chain: events (with verdicts) linked to their parents."""
    lines = ["flowchart TD"]
    ids: dict[str, str] = {}
    for n, event in enumerate(chain["events"]):
        node = f"e{n}"
        ids[event["event_id"]] = node
        actor = (event.get("actor") or {}).get("login") or "?"
        label = f"{event.get('type', '')}<br/>{actor} · {event.get('verdict')} · depth {event.get('depth', 0)}"
        lines.append(f'    {node}["{_mermaid_text(label)}"]')
    for n, effect in enumerate(chain["effects"]):
        node = f"x{n}"
        label = f"{effect.get('effect_kind')} → {effect.get('target')}<br/>{effect.get('state')}"
        lines.append(f'    {node}(["{_mermaid_text(label)}"])')
        if effect.get("event_id") in ids:
            lines.append(f"    {ids[effect['event_id']]} --> {node}")
    for event in chain["events"]:
        parent = event.get("parent_id")
        if parent in ids:
            lines.append(f"    {ids[parent]} -.-> {ids[event['event_id']]}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")


def _first(*candidates: tuple[Trace | None, str]) -> tuple[Trace, str] | None:
    """The first candidate that exists, with how it was found."""
    for trace, via in candidates:
        if trace is not None:
            return trace, via
    return None


def _own_words(text: str, copied: str) -> bool:
    """Whether ``text`` (normalised) says something of its own beside the Reynolds text it copies."""
    theirs = set(copied.split())
    own = [w for w in text.split() if w not in theirs]
    return len(" ".join(own)) >= MIN_OWN_CHARS


#: A copy of Reynolds' text with fewer characters than this of one's own ("Echo:", "FYI") is a relay.
MIN_OWN_CHARS = 24
