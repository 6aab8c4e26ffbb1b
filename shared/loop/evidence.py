"""Causal evidence: what Reynolds wrote recently, per group (organisation, tenant, namespace or linked set).

One document per group (``sc:<group>``, its own partition, TTL-bound) replaces the single ``recent``
document every installation shared: unrelated organisations never share a document, never evict each
other's evidence and never join each other's chains. A decision reads it with one point read; an effect
updates it (after the write, off the decision path) with one conditional write. Each part is bounded by
count and by age, so the document stays small whatever the load:

* ``targets``: per target, Reynolds' latest effect there and whom it answered (same-target evidence, and
  the pace of an answer to it).
* ``actors``: per counterpart, Reynolds' latest answer to it anywhere in the group, with the counterpart's
  **exchange** record: how many times in a row it answered Reynolds, how many of those answers repeated the
  previous one (modulo numbers, ids and tokens), how many came at a machine's pace. This is how an
  automation's history follows it from issue to issue, repository to repository, team to team.
* ``last``: Reynolds' latest effects in the group (an automation's first hop after Reynolds wrote).
* ``texts``: snippets of Reynolds' recent texts (a relay or copying bot that drops the marker).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.errors import NotFound
from shared.loop.scopes import Scope
from shared.store.base import DocumentStore, safe_id, update_document

logger = logging.getLogger(__name__)

MAX_TARGETS = 512
MAX_ACTORS = 256
MAX_LAST = 16
MAX_TEXTS = 64
SNIPPET_CHARS = 160
#: How much of each of Reynolds' texts is kept for copy detection (enough to tell a copy from a quote).
TEXT_CHARS = 400
MIN_SNIPPET_CHARS = 24
#: How long an automation's own record (Reynolds' last answer to it, its exchanges) is kept: well past any
#: one-day window, so an automation answering every 24 h + 1 s still meets its history (no hard window edge).
ACTOR_MEMORY_SECONDS = 7 * 86400
#: Platform stamps have whole-second resolution (GitHub ``created_at``): an event stamped at second S happened
#: in [S, S + 1), so an effect filed before S + 1 may have been seen by it; one filed at or after S + 1 was not.
CLOCK_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class Trace:
    """One of Reynolds' effects as evidence (and, for an actor entry, the exchange record behind it)."""

    chain_id: str
    event_id: str
    depth: int
    at: float
    platform: str = ""
    target: str = ""
    container: str = ""
    #: The counterpart the effect answered (``<platform>:<login>``), when it answered someone.
    to: str | None = None
    #: The answered counterpart's own (normalised) text, for repeat detection.
    snippet: str = ""
    exchanges: int = 0
    repeats: int = 0
    fast: int = 0
    #: The answered counterpart had relayed Reynolds' words (a judgement that stays with it in the window).
    relay: bool = False


def evidence_id(group: str) -> str:
    """The evidence document id (and partition key) of a group."""
    return safe_id(f"sc:{group}")


def _trace(raw: Any) -> Trace | None:
    """An entry as a trace; None (and a warning) when it does not validate: skipped as evidence."""
    if not isinstance(raw, dict):
        return None
    chain, event, depth, at = raw.get("c"), raw.get("e"), raw.get("d"), raw.get("t")
    counters = [raw.get(k, 0) for k in ("n", "r", "f")]
    if not (isinstance(chain, str) and isinstance(event, str) and isinstance(depth, int)
            and not isinstance(depth, bool) and isinstance(at, int | float)
            and all(isinstance(n, int) and n >= 0 for n in counters)):
        logger.warning("an evidence entry does not validate; skipped as evidence")
        return None
    text = raw.get("s")
    return Trace(chain, event, depth, float(at), str(raw.get("p") or ""), str(raw.get("g") or ""),
                 str(raw.get("k") or ""), raw.get("to") if isinstance(raw.get("to"), str) else None,
                 text if isinstance(text, str) else "", exchanges=counters[0], repeats=counters[1],
                 fast=counters[2], relay=raw.get("j") is True)


class GroupView:
    """The evidence of one group as read by one decision (pure over the document and ``now``)."""

    def __init__(self, doc: dict[str, Any] | None, now: float) -> None:
        self.doc = doc or {}
        self.now = now

    def _map(self, name: str) -> dict[str, Any]:
        value = self.doc.get(name)
        return value if isinstance(value, dict) else {}

    def _list(self, name: str) -> list[Any]:
        value = self.doc.get(name)
        return value if isinstance(value, list) else []

    def _fresh(self, trace: Trace | None, window: float) -> Trace | None:
        """``trace`` when it is within ``window`` before ``now`` and not after it (an effect filed after the
        event happened, beyond the clock slack, is one its actor could not have seen)."""
        if trace is None or self.now - trace.at > window or trace.at >= self.now + CLOCK_SLACK_SECONDS:
            return None
        return trace

    def as_of(self, when: float) -> GroupView:
        """The same evidence as an actor could have seen it at ``when`` (its event's own timestamp)."""
        return GroupView(self.doc, min(self.now, when))

    def target(self, target_key: str, window: float) -> Trace | None:
        """Reynolds' latest effect on this target, within ``window`` seconds."""
        return self._fresh(_trace(self._map("targets").get(target_key)), window)

    def actor(self, actor_key: str, window: float) -> Trace | None:
        """Reynolds' latest answer to this counterpart anywhere in the group, within ``window`` seconds."""
        return self._fresh(_trace(self._map("actors").get(actor_key)), window)

    def latest(self, window: float, container: str | None = None) -> Trace | None:
        """Reynolds' latest effect in the group (in ``container`` first), within ``window`` seconds."""
        # Only the effects the event could have seen (filed before its own timestamp) compete for "latest".
        traces = [t for t in (_trace(raw) for raw in reversed(self._list("last")))
                  if t is not None and t.at < self.now + CLOCK_SLACK_SECONDS]
        for trace in traces:
            if container is not None and trace.container == container:
                return self._fresh(trace, window)
        return self._fresh(traces[0], window) if traces else None

    def copied(self, normalised: str, window: float) -> tuple[Trace, str] | None:
        """The newest of Reynolds' recent texts that ``normalised`` copies, within ``window`` seconds, with it.

        A copy holds the text's first ``SNIPPET_CHARS`` characters (normalised), or all of a shorter one.
        """
        for raw in reversed(self._list("texts")):
            kept = raw.get("x", "") if isinstance(raw, dict) else ""
            if not isinstance(kept, str) or len(kept) < MIN_SNIPPET_CHARS or kept[:SNIPPET_CHARS] not in normalised:
                continue
            found = self._fresh(_trace(raw), window)
            if found is not None:
                return found, kept
        return None


class EvidenceStore:
    """Reads and updates the group evidence documents."""

    def __init__(self, store: DocumentStore, *, window_seconds: int, ttl_seconds: int) -> None:
        self.store = store
        self.window = window_seconds
        self.ttl = ttl_seconds

    def read(self, group: str, now: float) -> GroupView:
        """The group's evidence (one point read; an absent document is empty evidence)."""
        try:
            return GroupView(self.store.read(evidence_id(group), evidence_id(group)), now)
        except NotFound:
            return GroupView(None, now)

    def remember(self, scope: Scope, *, chain_id: str, event_id: str, depth: int, now: float, text: str,
                 answered: dict[str, Any] | None) -> None:
        """File one of Reynolds' effects (and the exchange it answered) as evidence of its group."""
        base = {"c": chain_id, "e": event_id, "d": depth, "t": now}
        to = answered.get("actor_key") if answered else None
        target_entry = {**base, "to": to} if isinstance(to, str) else dict(base)
        last_entry = {**base, "k": scope.container_key}
        actor_entry: dict[str, Any] | None = None
        if answered and isinstance(to, str):
            actor_entry = {**base, "p": scope.platform, "g": scope.target_key,
                           "s": str(answered.get("snippet") or "")[:SNIPPET_CHARS]}
            for field, name in (("n", "exchanges"), ("r", "repeats"), ("f", "fast")):
                value = answered.get(name)
                actor_entry[field] = value if isinstance(value, int) and value >= 0 else 0
            actor_entry["j"] = answered.get("relayed") is True
        horizon = now - self.window

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = doc or {}
            targets = _bounded_map(doc.get("targets"), scope.target_key, target_entry, MAX_TARGETS, horizon)
            remembered = now - max(self.window, ACTOR_MEMORY_SECONDS)
            actors = _bounded_map(doc.get("actors"), to, actor_entry, MAX_ACTORS, remembered) \
                if actor_entry is not None and isinstance(to, str) else _pruned(doc.get("actors"), remembered)
            last = [e for e in _as_list(doc.get("last")) if _at(e) > horizon][-(MAX_LAST - 1):] + [last_entry]
            texts = [e for e in _as_list(doc.get("texts")) if _at(e) > horizon]
            if len(text) >= MIN_SNIPPET_CHARS:
                texts = [*texts, {**target_entry, "p": scope.platform, "x": text[:TEXT_CHARS]}]
            return {"kind": "evidence", "group": scope.group, "targets": targets, "actors": actors,
                    "last": last, "texts": texts[-MAX_TEXTS:], "ttl": max(self.ttl, ACTOR_MEMORY_SECONDS)}

        update_document(self.store, evidence_id(scope.group), update)

    def release(self, scope: Scope) -> list[str]:
        """Clear the exchange record of every counterpart Reynolds last answered on this target (resume)."""
        released: list[str] = []

        def update(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            actors = dict(doc.get("actors") or {}) if isinstance(doc.get("actors"), dict) else {}
            released[:] = sorted(k for k, v in actors.items() if isinstance(v, dict) and v.get("g") == scope.target_key
                                 and any(v.get(f) for f in ("n", "r", "f")))
            if not released:
                return None
            for key in released:
                actors[key] = {**actors[key], "n": 0, "r": 0, "f": 0}
            return {**doc, "actors": actors}

        update_document(self.store, evidence_id(scope.group), update)
        return released


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _at(entry: Any) -> float:
    at = entry.get("t") if isinstance(entry, dict) else None
    return float(at) if isinstance(at, int | float) else 0.0


def _pruned(value: Any, horizon: float) -> dict[str, Any]:
    return {k: v for k, v in value.items() if _at(v) > horizon} if isinstance(value, dict) else {}


def _bounded_map(value: Any, key: str | None, entry: dict[str, Any] | None, cap: int,
                 horizon: float) -> dict[str, Any]:
    """``value`` with ``key`` set to ``entry`` (moved to the end), entries older than ``horizon`` dropped,
    the oldest dropped beyond ``cap``."""
    kept = _pruned(value, horizon)
    if key is not None and entry is not None:
        kept.pop(key, None)
        kept[key] = entry
    while len(kept) > cap:
        kept.pop(next(iter(kept)))
    return kept
