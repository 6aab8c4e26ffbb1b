"""How an event joins a chain: markers, the effect ledger, and causal evidence judged by behaviour.

``ChainJoiner.evidence`` turns an event into ``Evidence`` (the chain, parent and depth it continues, and the
exchange record of its actor) with at most one point read: the group's evidence document (none when an
automation carries a valid marker). ``ChainJoiner.remember`` files each of Reynolds' completed effects as
evidence, with the exchange of the event it answered (one point read of that event's decision, one
conditional write of the group's document), off the decision path.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from shared.errors import NotFound
from shared.loop.envelope import ActorKind, EventEnvelope, Platform
from shared.loop.evidence import ACTOR_MEMORY_SECONDS, SNIPPET_CHARS, EvidenceStore, GroupView, Trace
from shared.loop.ledger import EffectLedger, EffectRecord, doc_id
from shared.loop.marker import Marker, find_markers
from shared.loop.rules import REFLEX_SECONDS, Evidence, GuardConfig, normalise_text, repeat_key, repeats
from shared.loop.scopes import Scope, ScopeMap
from shared.store.base import DocumentStore

logger = logging.getLogger(__name__)

#: A copy of Reynolds' text with fewer characters than this of one's own ("Echo:", "FYI") is a relay.
MIN_OWN_CHARS = 24

def new_chain_id(event_id: str) -> str:
    """A chain id derived from the event that starts it (stable across retries of one decision)."""
    return "c-" + hashlib.sha256(event_id.encode()).hexdigest()[:20]

def actor_key(platform: str, login: str | None, ident: str | None = None) -> str | None:
    """How a counterpart is named in the evidence (``<platform>:<login>``), or None when it has no name."""
    name = login or ident
    return f"{platform}:{name.lower()}" if name else None


class ChainJoiner:
    """Finds the chain an event continues and judges whether its actor behaves as an automation."""

    def __init__(self, store: EvidenceStore, ledger: EffectLedger, events: DocumentStore, config: GuardConfig, *,
                 marker_key: str | None, scopes: ScopeMap, clock: Callable[[], float]) -> None:
        self.store = store
        self.ledger = ledger
        self.events = events
        self.config = config
        self.marker_key = marker_key
        self.scopes = scopes
        self.clock = clock

    def evidence(self, event: EventEnvelope) -> Evidence:
        """The evidence joining ``event`` to a chain (at most one point read)."""
        markers = find_markers(marker_text(event), self.marker_key)
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
        now = self.clock()
        view = self.store.read(scope.group, now) if scope is not None else GroupView(None, now)
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
        # What the actor could have seen: the evidence as of the event's OWN timestamp (a backlog decided in a
        # burst after an outage is judged as it would have been live), never the decision time.
        if event.occurred_at is not None:
            view = view.as_of(event.occurred_at.timestamp())
        now = view.now
        text = normalise_text(event.text)
        key = actor_key(event.platform.value, event.actor.login, event.actor.id)
        target = view.target(scope.target_key, cfg.causal_window_seconds) if scope else None
        # A declared automation meets its own history for a week (no hard one-day edge to wait out); a person's
        # history is the one-day window (a person coming back next week starts afresh).
        memory = max(ACTOR_MEMORY_SECONDS, cfg.scope_window_seconds) if event.actor.automated or machine \
            else cfg.scope_window_seconds
        history = view.actor(key, memory) if key and scope else None
        found = view.copied(text, cfg.causal_window_seconds)
        copied, original = found if found is not None else (None, "")
        # An exchange answers Reynolds' previous answer to the same counterpart: an automation's anywhere in
        # the group, a person's on the same target or within ``pace_seconds`` of it (a person's message on
        # another thread minutes later is unprompted).
        since_answer = max(0.0, now - history.at) if history is not None else None
        same_target = history is not None and scope is not None and history.target == scope.target_key
        paced = since_answer is not None and since_answer <= cfg.pace_seconds
        # Many people in one thread are many people: when Reynolds answered someone else on this thread after
        # its answer to this actor, the actor's message follows the conversation (that other person's words),
        # not Reynolds' answer to it. Reynolds' answers to others are never what a person reacts to.
        interleaved = (same_target and target is not None and history is not None and target.at > history.at
                       and target.to is not None and target.to != key)
        answering = history if history is not None and not machine and not (
            interleaved and not event.actor.automated) and (
            event.actor.automated or same_target or paced) else None
        # Machine pace: this actor answered Reynolds' answer TO IT (not anyone else's) within seconds of it,
        # measured between the effect and the event's own timestamp.
        quick = answering is not None and since_answer is not None and since_answer <= cfg.fast_reply_seconds
        exchanges = answering.exchanges + 1 if answering else 0
        fast = answering.fast + 1 if answering and paced else 0
        # A repeat is the same text sent to Reynolds' answers on one thread (or by a declared automation
        # anywhere); a person filing the same words on several threads is writing unprompted messages.
        reflex = since_answer is not None and since_answer <= REFLEX_SECONDS
        # Interleaved with other people or not: one template sent after each of Reynolds' answers to an actor
        # on a thread is that actor's shape (a bot hiding among people), not a conversation.
        repeat = history.repeats + 1 if history is not None and not machine and (
            same_target or (answering is not None and event.actor.automated)) and repeats(
            history.snippet, repeat_key(event.text)[:SNIPPET_CHARS], reflex=reflex, shape=copied is None) else 0
        # Relaying: Reynolds' words carried to another platform, or re-posted with nothing of one's own by
        # someone else than the one Reynolds answered (a person pasting back Reynolds' answer to them, or
        # quoting it with their own words, is not relaying). A relay stays one for its exchanges in the window.
        relay = copied is not None and (copied.platform != event.platform.value or (
            not _own_words(text, original) and copied.to != key))
        # A relay judgement stays with an actor only while it keeps relaying or answering at machine pace: a
        # person who shared an answer and then discusses it in their own words, at a person's pace, is a person.
        relay = relay or (answering is not None and answering.relay and (copied is not None or quick))
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
        latest = view.latest(cfg.fast_reply_seconds, scope.container_key) if scope is not None else None
        return Evidence(new_chain_id(event.id), None, 0, "new", linked_chain=linked.chain_id if linked else None,
                        notes=notes, prompted=latest is not None, **stats)

    def _scope_of(self, event: EventEnvelope) -> Scope | None:
        scope = self.scopes.of_event(event)
        if scope is None and event.platform is Platform.SERVICEBUS:
            return self.scopes.of_target(Platform.SERVICEBUS.value, "")
        return scope

    def _self_evidence(self, event: EventEnvelope, valid: list[Marker], notes: tuple[str, ...]) -> Evidence:
        if valid:
            marker = max(valid, key=lambda m: m.depth)
            return Evidence(marker.chain_id, marker.event_id, marker.depth, "marker", notes=notes)
        doc = self.ledger.own_effect(event.platform.value, event.resource_id)
        if doc is not None:
            return Evidence(doc["chain_id"], doc["event_id"], int(doc["depth"]), "ledger", notes=notes)
        return Evidence(new_chain_id(event.id), None, 1, "new", notes=notes)

    def remember(self, record: EffectRecord, text: str) -> None:
        """File a completed effect as evidence of its group, with the exchange of the event it answered."""
        answered: dict[str, Any] | None = None
        try:
            stored = self.events.read(doc_id("ev", record.event_id), doc_id("ev", record.event_id))
            if (stored.get("actor") or {}).get("kind") != ActorKind.SELF.value:
                answered = stored
        except NotFound:
            pass
        scope = self.scopes.of_target(record.platform, record.target)
        self.store.remember(scope, chain_id=record.chain_id, event_id=record.event_id, depth=record.depth,
                            now=self.clock(), text=normalise_text(text), answered=answered)


def marker_text(event: EventEnvelope) -> str:
    """Where an event's markers are: its text, plus markers the door found outside it.

    Teams HTML comments do not survive ``html_to_text`` and Service Bus carries the marker in an application
    property, so those doors put the marker strings in ``data["markers"]``; both count as evidence.
    """
    extra = event.data.get("markers") if isinstance(event.data, dict) else None
    if not isinstance(extra, list) or not extra:
        return event.text
    return "\n".join([event.text, *(m for m in extra if isinstance(m, str))])


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
