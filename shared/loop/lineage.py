"""The lineage service: joins events to chains and records every decision; the facade of the loop guard.

It composes three parts, each with its own documents (one container, partition key path ``/pk``):

* decisions (this module): ``ev:<event id>`` (own partition), the event and its decision, created if absent
  so a second delivery gets ``Conflict`` → ``duplicate`` (TTL ≥ 72 h: GitHub redelivers for 3 days); and
  ``head`` in partition ``<chain id>``, the chain's counters, replaced with an ETag precondition (a lost race
  re-reads, re-judges, tries again).
* the effect ledger (``shared.loop.ledger``): ``fx:``/``fr:`` documents, Reynolds' writes exactly once.
* causal evidence (``shared.loop.evidence``): one bounded, TTL-bound ``sc:<group>`` document per
  organisation, tenant, namespace or linked set (``shared.loop.scopes``), written after each effect; how an
  event joins a chain and whether its actor behaves as an automation is ``shared.loop.joining``.

A decision costs at most four requests whatever the chain's length or the load: one evidence read (none
when an automation carries a valid marker), the head read (none for a new chain), the event create and the
head write. No query runs on the hot path, and no decision writes a document another chain writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.errors import Conflict, CorruptState, NotFound, PreconditionFailed
from shared.loop.envelope import ActorKind, EventEnvelope, Platform
from shared.loop.evidence import SNIPPET_CHARS, EvidenceStore
from shared.loop.joining import ChainJoiner, actor_key, marker_text, new_chain_id
from shared.loop.ledger import EffectLedger, EffectRecord, doc_id, public
from shared.loop.rules import (
    ChainHead,
    Evidence,
    GuardConfig,
    Judgement,
    Verdict,
    apply,
    fingerprint,
    judge,
    repeat_key,
)
from shared.loop.scopes import ScopeMap, container_of
from shared.store.base import DocumentStore, Query, update_document

__all__ = ["Decision", "EffectRecord", "LineageService", "actor_key", "instance_id_for",
           "new_chain_id", "scope_of"]

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
    #: A person-declared actor judged an automation by its behaviour (machine pace, relaying, a Service Bus
    #: producer): every rule and breaker downstream uses the judged kind, never the declared one.
    judged_automated: bool = False

    def actor_kind(self, declared: ActorKind) -> str:
        """The kind everything after the decision uses: ``bot`` for a person-declared actor judged an automation."""
        return ActorKind.BOT.value if self.judged_automated and declared is ActorKind.HUMAN else declared.value

    @property
    def reason(self) -> str:
        """All reasons in one line."""
        return "; ".join(self.reasons)


#: Durable backends store instance ids in 100-character columns (the MSSQL provider's ``varchar(100)``).
MAX_INSTANCE_ID_CHARS = 100
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def instance_id_for(event_id: str) -> str:
    """The orchestration instance id derived from an event id: distinct event ids never share one.

    An id made only of ``[A-Za-z0-9_.-]`` and at most 100 characters is used as it is. Any other id (``:``, ``/``,
    control characters, too long) becomes a readable prefix, ``::`` and 36 hex digits of its SHA-256: a plain id
    never contains ``::``, a derived one always does, and subtask instance ids (``<parent>:<subtask>``, subtask ids
    without ``:``) never end in ``::<hex>`` alone, so ``order/1`` and ``order-1``, ``1:x`` and ``1-x`` stay apart.
    """
    if _PLAIN_ID.match(event_id):
        return event_id
    digest = hashlib.sha256(event_id.encode("utf-8", errors="surrogatepass")).hexdigest()[:36]
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", event_id)[: MAX_INSTANCE_ID_CHARS - 2 - len(digest)]
    return f"{prefix}::{digest}"


def _judged_for_breakers(event: EventEnvelope, evidence: Evidence) -> bool:
    """Whether the kind downstream (breakers, the report) is ``bot`` for a person-declared actor: judged an
    automation by evidence that outlasts one event — a Service Bus producer, a relay, or a second exchange in a
    row at a machine's pace. One quick answer alone (a person filing the same bug on a second repository
    seconds after Reynolds answered the first) is not enough to have Reynolds' answer to it suppressed."""
    if not evidence.relay:
        return False
    return event.platform is Platform.SERVICEBUS or evidence.relayed or evidence.exchanges >= 2


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
        self.joiner = ChainJoiner(self.evidence, self.ledger, store, config, marker_key=marker_key,
                                  scopes=self.scopes, clock=lambda: self.clock().timestamp())

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
                                        root_automated=evidence.automated(event),
                                        root_prompted=evidence.prompted)
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
                        evidence.depth, rule=judgement.rule, judged_automated=_judged_for_breakers(event, evidence))

    def open_chain(self, event: EventEnvelope, reason: str, rule: str) -> Decision:
        """Record ``event`` as the accepted first event of a chain of its own, without judging it.

        For work asked for where there is no lineage to join and no actor to judge (a task through the keyed
        HTTP API or an MCP tool, depth 0): its chain then exists for the explorer, and the task's effects join
        it. The head is written before the event, so a retry after a crash between the two writes completes
        the chain; a second call with the same event id answers ``duplicate`` with the first call's chain.
        """
        evidence = Evidence(new_chain_id(event.id), None, 0, "new")
        judgement = Judgement(Verdict.ACCEPTED, (reason,), fingerprint(event), rule)
        now = self._now()
        head = apply(ChainHead(chain_id=evidence.chain_id, created_at=now, root_event=event.id,
                               root_automated=False), event, evidence, judgement, now, self.config)
        with contextlib.suppress(Conflict):
            self.store.create({"id": "head", "pk": evidence.chain_id, "kind": "chain", "ttl": self.lineage_ttl,
                               **head.to_doc()})
        try:
            self.store.create(self._event_doc(event, evidence, judgement))
        except Conflict:
            return self._duplicate(event.id)
        return Decision(Verdict.ACCEPTED, judgement.reasons, event.id, evidence.chain_id, rule=rule)

    def hold(self, event: EventEnvelope, problem: str) -> Decision:
        """Record an event as loop-suspect when its chain state cannot be trusted (fail safe, not silent)."""
        reasons = (f"loop-suspect: {problem}; held, not run",)
        decision = self._record_unchained(event, Verdict.LOOP, reasons)
        return replace(decision, rule="loop-suspect") if decision.verdict is Verdict.LOOP else decision

    def refuse(self, decision: Decision, reason: str, rule: str) -> Decision:
        """Record that an accepted event is refused after all (a policy outside the loop rules, e.g. a task
        quota), so the stored decision says what the requester was told. Its chain keeps the event."""
        doc = doc_id("ev", decision.event_id)

        def change(body: dict[str, Any] | None) -> dict[str, Any] | None:
            if body is None or body.get("verdict") != Verdict.ACCEPTED.value:
                return None
            return {**body, "verdict": Verdict.REJECTED.value, "reasons": [reason], "rule": rule}

        update_document(self.store, doc, change)
        return replace(decision, verdict=Verdict.REJECTED, reasons=(reason,), rule=rule)

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
                        first.get("parent_id"), int(first.get("depth") or 0), original,
                        judged_automated=first.get("judged_automated") is True)

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
        return self.joiner.evidence(event)

    def _remember(self, record: EffectRecord, text: str) -> None:
        self.joiner.remember(record, text)

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
        return self.ledger.answering(event.platform.value, event.target.key, marker_text(event), key_of)

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
