"""The lineage service: joins events to chains, records every decision and every effect.

Storage layout (one container, partition key path ``/pk``; see ``shared.store.base``):

* ``ev:<event id>`` (own partition): the event and its decision. Created if absent, so a second delivery
  of the same event gets ``Conflict`` → verdict ``duplicate``. TTL ≥ 72 h (GitHub redelivers for 3 days).
* ``head`` in partition ``<chain id>``: the chain's counters, fingerprints and fan-out counts. Replaced
  with an ETag precondition; a lost race (412) re-reads, re-judges and tries again.
* ``fx:<idempotency key>`` (own partition): an effect's intent, written before the external call, and its
  resource id after it. What makes a re-executed activity post nothing twice.
* ``fr:<platform>:<resource id>`` (own partition): effect index, resource → chain (Reynolds' own writes
  coming back as events join their chain).
* ``recent`` (own partition): Reynolds' latest effects per target and a short list of recent effect texts,
  the evidence for causal inference when an automation acts without a marker.

A decision costs at most four requests whatever the chain's length: one evidence read (none when a valid
marker is present), the head read, the event create and the head write. No query runs on the hot path.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.errors import Conflict, CorruptState, NotFound, PreconditionFailed, RetryLater
from shared.loop.envelope import ActorKind, EventEnvelope
from shared.loop.marker import Marker, find_markers
from shared.loop.rules import ChainHead, Evidence, GuardConfig, Judgement, Verdict, apply, judge, normalise_text
from shared.store.base import DocumentStore, Query, safe_id, update_document

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_MAX_RETRIES = 50
_RECENT_TARGETS = 512
_RECENT_TEXTS = 64
_SNIPPET_CHARS = 160
_MIN_SNIPPET_CHARS = 24


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


@dataclass(frozen=True)
class EffectRecord:
    """An effect in the ledger: its intent and, once written, the resource it produced."""

    key: str
    platform: str
    kind: str
    target: str
    chain_id: str
    event_id: str
    depth: int
    resource_id: str | None = None
    state: str = "intent"


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


def new_chain_id(event_id: str) -> str:
    """A chain id derived from the event that starts it (stable across retries of one decision)."""
    return "c-" + hashlib.sha256(event_id.encode()).hexdigest()[:20]


class LineageService:
    """Decides events and records effects over a ``DocumentStore``."""

    def __init__(self, store: DocumentStore, config: GuardConfig, *, marker_key: str | None,
                 dedupe_ttl_seconds: int = 72 * 3600, lineage_ttl_seconds: int = 30 * 86400,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.config = config
        self.marker_key = marker_key
        self.event_ttl = max(dedupe_ttl_seconds, lineage_ttl_seconds)
        self.lineage_ttl = lineage_ttl_seconds
        self.clock: Clock = clock or (lambda: datetime.now(UTC))

    # -- decisions ------------------------------------------------------------------------------------
    def decide(self, event: EventEnvelope, *, routed: bool) -> Decision:
        """Judge one event and record the decision; ``routed`` says whether any route would run it."""
        if event.actor.kind is not ActorKind.SELF and not routed:
            return self._record_unchained(event, Verdict.IGNORED, ("no route for this event",))
        try:
            evidence = self._evidence(event)
            head, etag = self._read_head(evidence.chain_id, event)
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
                                        linked_from=evidence.linked_chain)
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
                head, etag = self._read_head(evidence.chain_id, event)
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

    def _record_unchained(self, event: EventEnvelope, verdict: Verdict, reasons: tuple[str, ...]) -> Decision:
        doc = {"id": _doc_id("ev", event.id), "pk": _doc_id("ev", event.id), "kind": "event", "event_id": event.id,
               "chain_id": None, "verdict": verdict.value, "reasons": list(reasons), "type": event.type,
               "actor": event.actor.model_dump(mode="json"), "time": self._now(), "ttl": self.event_ttl,
               "target": event.target.key if event.target else None}
        try:
            self.store.create(doc)
        except Conflict:
            return self._duplicate(event.id)
        return Decision(verdict, reasons, event.id)

    def _duplicate(self, event_id: str) -> Decision:
        try:
            first = self.store.read(_doc_id("ev", event_id), _doc_id("ev", event_id))
            original = Verdict(first.get("verdict", Verdict.ACCEPTED.value))
        except (NotFound, ValueError):
            first, original = {}, None
        return Decision(Verdict.DUPLICATE, ("this event was already received",), event_id, first.get("chain_id"),
                        first.get("parent_id"), int(first.get("depth") or 0), original)

    def _event_doc(self, event: EventEnvelope, evidence: Evidence, judgement: Judgement) -> dict[str, Any]:
        return {"id": _doc_id("ev", event.id), "pk": _doc_id("ev", event.id), "kind": "event", "event_id": event.id,
                "chain_id": evidence.chain_id, "parent_id": evidence.parent_id, "depth": evidence.depth,
                "via": evidence.via, "verdict": judgement.verdict.value, "reasons": list(judgement.reasons),
                "fingerprint": judgement.fingerprint, "type": event.type, "time": self._now(),
                "actor": event.actor.model_dump(mode="json"), "target": event.target.key if event.target else None,
                "linked_chain": evidence.linked_chain, "ttl": self.event_ttl}

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
        if valid:
            # The deepest valid marker: appending an older, shallower one cannot reset a bot's depth.
            return self._from_marker(event, max(valid, key=lambda m: m.depth), forged)
        found = self._causal(event)
        if found is None:
            depth = 1 if event.actor.automated else 0
            return Evidence(new_chain_id(event.id), None, depth, "new", notes=forged)
        chain, parent, effect_depth, via = found
        if event.actor.automated:
            return Evidence(chain, parent, effect_depth + 1, via, notes=forged)
        if via == "causal-text":
            # A "person" re-posting Reynolds' own words unquoted is relaying them, as a bridge or a bot on a
            # user account does, at any pace: judged as an automated hop in Reynolds' chain. (People quote
            # with "> ", which is not a copy: quoted lines are folded away before the match.)
            relayed = ("relays Reynolds' own text: judged as an automated hop",)
            return Evidence(chain, parent, effect_depth + 1, via, notes=(*forged, *relayed), relay=True)
        return Evidence(new_chain_id(event.id), None, 0, "new", linked_chain=chain, notes=forged)

    def _self_evidence(self, event: EventEnvelope, valid: list[Marker], notes: tuple[str, ...]) -> Evidence:
        if valid:
            marker = max(valid, key=lambda m: m.depth)
            return Evidence(marker.chain_id, marker.event_id, marker.depth, "marker", notes=notes)
        doc = self.own_effect(event.platform.value, event.resource_id)
        if doc is not None:
            return Evidence(doc["chain_id"], doc["event_id"], int(doc["depth"]), "ledger", notes=notes)
        return Evidence(new_chain_id(event.id), None, 1, "new", notes=notes)

    def _from_marker(self, event: EventEnvelope, marker: Marker, notes: tuple[str, ...]) -> Evidence:
        if event.actor.automated:
            return Evidence(marker.chain_id, marker.event_id, marker.depth + 1, "marker", notes=notes)
        # A person quoting Reynolds: causality noted, but a human action starts a fresh chain at depth 0.
        return Evidence(new_chain_id(event.id), None, 0, "new", linked_chain=marker.chain_id, notes=notes)

    def _causal(self, event: EventEnvelope) -> tuple[str, str, int, str] | None:
        """Reynolds' effect this event most plausibly answers, newest evidence first.

        Copied text (anywhere), then the same target, then, for automations only, the same scope (a bot that
        answers Reynolds on a new issue of the same repository). Entries that do not validate are skipped.
        """
        try:
            recent = self.store.read("recent", "recent")
        except NotFound:
            return None
        now = self.clock().timestamp()
        window = self.config.causal_window_seconds
        text = normalise_text(event.text)
        texts = recent.get("texts")
        for entry in reversed(texts if isinstance(texts, list) else []):
            snippet = entry.get("snippet", "") if isinstance(entry, dict) else ""
            if isinstance(snippet, str) and len(snippet) >= _MIN_SNIPPET_CHARS and snippet in text:
                found = _entry(entry, now, window, "causal-text")
                if found:
                    return found
        if event.target is None:
            return None
        targets = recent.get("targets")
        found = _entry((targets if isinstance(targets, dict) else {}).get(_target_key(event)), now, window,
                       "causal-target")
        if found or not event.actor.automated:
            return found
        scopes = recent.get("scopes")
        return _entry((scopes if isinstance(scopes, dict) else {}).get(_scope_key(event)), now,
                      self.config.scope_window_seconds, "causal-scope")

    def answering(self, event: EventEnvelope, key_of: Callable[[str], str]) -> EffectRecord | None:
        """Reynolds' own answer on ``event``'s target that ``event`` may *be*, found through its valid marker.

        A door that cannot tell Reynolds' author identity (Graph) and sees the message before the ledger has
        its resource id (the write is in flight) still finds the effect by the answered event the marker
        names: ``key_of(answered event id)`` is the effect's ledger key. One point read per valid marker.
        """
        if event.target is None:
            return None
        for marker in find_markers(_marker_text(event), self.marker_key):
            if not marker.valid:
                continue
            doc_id = _doc_id("fx", key_of(marker.event_id))
            try:
                stored = self.store.read(doc_id, doc_id)
            except NotFound:
                continue
            if stored.get("platform") == event.platform.value and stored.get("target") == event.target.key:
                return _effect_from_doc(stored)
        return None

    def own_effect(self, platform: str, resource_id: str | None) -> dict[str, Any] | None:
        """The effect index entry when ``resource_id`` on ``platform`` is something Reynolds wrote, else None.

        For doors whose author identity cannot tell Reynolds from a person (Graph names the delegated account
        Reynolds posts with as a human author), the ingress asks this one point read before the decision.
        """
        if not resource_id:
            return None
        index_id = _doc_id("fr", f"{platform}:{resource_id}")
        try:
            return _public(self.store.read(index_id, index_id))
        except NotFound:
            return None

    # -- effects --------------------------------------------------------------------------------------
    def begin_effect(self, record: EffectRecord, attempt: int | None = None,
                     run: str | None = None) -> tuple[EffectRecord, bool]:
        """Record the intent before the external call, claimed by ``attempt`` when one is given.

        Returns the record and whether it is new. An existing record in state ``intent`` means an earlier
        attempt may have written the resource and crashed before recording it: a later attempt takes the
        claim over and the caller reconciles (looks for what was written). The same or an older attempt
        finding a claim raises ``RetryLater``: that is a concurrent duplicate execution (activities run at
        least once), and only one of two may write. A claim of another ``run`` (an earlier execution of a
        restarted orchestration, which gave up) is taken over. Without ``attempt`` (writes that are idempotent
        by nature, such as edits to a fixed body) there is no claim.
        """
        doc = self._effect_doc(record, attempt=attempt or 1, run=run)
        try:
            self.store.create(doc)
            return record, True
        except Conflict:
            stored = self.store.read(doc["pk"], doc["id"])
        existing = _effect_from_doc(stored)
        if existing.state == "intent" and attempt is not None:
            claimed = int(stored.get("attempt") or 1)
            if stored.get("run") == run and claimed >= attempt:
                raise RetryLater(None, f"effect {record.key} is being written by attempt {claimed}")
            try:
                self.store.replace(self._effect_doc(existing, attempt=attempt, run=run), stored["_etag"])
            except PreconditionFailed:
                raise RetryLater(None, f"effect {record.key} changed while attempt {attempt} took it over") from None
        return existing, False

    def _effect_doc(self, record: EffectRecord, **extra: Any) -> dict[str, Any]:
        body = {k: v for k, v in record.__dict__.items() if k != "kind"}
        doc_id = _doc_id("fx", record.key)
        return {"id": doc_id, "pk": doc_id, "kind": "effect", "effect_kind": record.kind,
                **body, **extra, "created_at": self._now(), "ttl": self.event_ttl}

    def complete_effect(self, record: EffectRecord, resource_id: str, text: str) -> EffectRecord:
        """Record the resource an effect produced and index it for causal inference."""
        done = EffectRecord(**{**record.__dict__, "resource_id": resource_id, "state": "done"})
        self.store.upsert(self._effect_doc(done))
        index_id = _doc_id("fr", f"{record.platform}:{resource_id}")
        self.store.upsert({"id": index_id, "pk": index_id, "kind": "effect-index", "chain_id": record.chain_id,
                           "event_id": record.event_id, "depth": record.depth, "effect": record.key,
                           "ttl": self.lineage_ttl})
        self._remember_recent(done, text)
        return done

    def suppress_effect(self, record: EffectRecord, reason: str) -> EffectRecord:
        """Record that an effect was not written because a breaker is open (a retry will not write it)."""
        suppressed = EffectRecord(**{**record.__dict__, "state": "suppressed"})
        self.store.upsert(self._effect_doc(suppressed, reason=reason))
        return suppressed

    def _remember_recent(self, record: EffectRecord, text: str) -> None:
        entry = {"chain_id": record.chain_id, "event_id": record.event_id, "depth": record.depth,
                 "at": self.clock().timestamp()}
        snippet = normalise_text(text)[:_SNIPPET_CHARS]
        target_key = f"{record.platform}:{record.target}"
        scope_key = f"{record.platform}:{scope_of(record.target)}"

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = doc or {"kind": "recent", "targets": {}, "texts": []}
            targets: dict[str, Any] = dict(doc.get("targets", {}))
            targets.pop(target_key, None)
            targets[target_key] = entry
            while len(targets) > _RECENT_TARGETS:
                targets.pop(next(iter(targets)))
            scopes: dict[str, Any] = dict(doc.get("scopes", {}))
            scopes.pop(scope_key, None)
            scopes[scope_key] = entry
            while len(scopes) > _RECENT_TARGETS:
                scopes.pop(next(iter(scopes)))
            texts: list[dict[str, Any]] = list(doc.get("texts", []))
            if len(snippet) >= _MIN_SNIPPET_CHARS:
                texts = [*texts, {**entry, "snippet": snippet}][-_RECENT_TEXTS:]
            return {**doc, "targets": targets, "scopes": scopes, "texts": texts}

        update_document(self.store, "recent", update)

    # -- reading --------------------------------------------------------------------------------------
    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The stored decision of one event, or None."""
        try:
            return _public(self.store.read(_doc_id("ev", event_id), _doc_id("ev", event_id)))
        except NotFound:
            return None

    def explore(self, chain_id: str) -> dict[str, Any] | None:
        """A chain's head, events (with verdicts) and effects; None when the chain is unknown."""
        try:
            head = _public(self.store.read(chain_id, "head"))
        except NotFound:
            return None
        events = [_public(d) for d in self.store.query(Query(equals={"kind": "event", "chain_id": chain_id}))]
        effects = [_public(d) for d in self.store.query(Query(equals={"kind": "effect", "chain_id": chain_id}))]
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


def scope_of(target: str) -> str:
    """The scope a target belongs to: ``owner/repo`` for ``owner/repo#7``, the team for a Teams channel."""
    if "#" in target:
        return target.split("#", 1)[0]
    if target.startswith("teams:") and "/" in target:
        return target.split("/", 1)[0]
    return target


def _target_key(event: EventEnvelope) -> str:
    return f"{event.platform.value}:{event.target.key}" if event.target else ""


def _scope_key(event: EventEnvelope) -> str:
    return f"{event.platform.value}:{scope_of(event.target.key)}" if event.target else ""


def _entry(entry: Any, now: float, window: float, via: str) -> tuple[str, str, int, str] | None:
    """A recent-effect entry as evidence, when it validates and is within ``window`` seconds."""
    if not isinstance(entry, dict):
        return None
    chain, event, depth, at = entry.get("chain_id"), entry.get("event_id"), entry.get("depth"), entry.get("at")
    if not (isinstance(chain, str) and isinstance(event, str) and isinstance(depth, int)
            and isinstance(at, int | float)):
        logger.warning("a recent-effect entry does not validate; skipped as evidence")
        return None
    return (chain, event, depth, via) if now - at <= window else None


def _effect_from_doc(stored: dict[str, Any]) -> EffectRecord:
    """The ledger record of a stored effect document (its own ``kind`` is stored as ``effect_kind``)."""
    values = {k: stored[k] for k in EffectRecord.__dataclass_fields__ if k in stored and k != "kind"}
    return EffectRecord(kind=stored.get("effect_kind", ""), **values)


def _doc_id(prefix: str, key: str) -> str:
    return safe_id(f"{prefix}:{key}")


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_etag", "pk", "ttl")}


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
