"""Rate breakers on Reynolds' writes: a second line of defence behind the loop guard's rules.

Breakers count **exchanges** with automations: writes answering an automation's event that itself answered
one of Reynolds' writes (depth ≥ 2). A person's messages are never counted and a write answering a person
is never suppressed (people are judged by the loop guard's exchange rules, which only ever look at how they
answer Reynolds); an automation's unprompted events (depth 1: a fan-out of tasks, a CI bot's reports) are
not exchanges either. Two breakers: the target's (an issue, a channel, a queue), and the counterpart's
across its whole group (organisation, tenant, namespace: a bot that hops to another repository meets the
same breaker). Past a threshold the breaker opens: Reynolds stops writing, records why, and leaves one
visible note. After a cooldown it goes half-open and lets one write through; another trip re-opens it with a
doubled cooldown. ``/reynolds resume`` on a thread closes every breaker that counted a write there.

State lives in the document store (``br:<key>`` documents, own partition), updated with ETag preconditions
so concurrent Function instances agree; the state machine itself is the pure ``step`` function.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import NotFound
from shared.loop.scopes import ScopeMap
from shared.store.base import DocumentStore, Query, safe_id, update_document
from shared.telemetry import record_breaker_transition


class BreakerConfig(BaseModel):
    """Thresholds (app settings, documented in the README)."""

    model_config = ConfigDict(frozen=True)

    window_seconds: int = Field(3600, ge=60)
    target_max_writes: int = Field(20, ge=1)
    counterpart_max_writes: int = Field(11, ge=1)
    #: The same (normalised) text from one counterpart this many times in the window opens its breaker.
    counterpart_max_repeats: int = Field(2, ge=2)
    cooldown_seconds: int = Field(3600, ge=60)
    #: A counterpart answering Reynolds within this many seconds answers at a machine's pace.
    fast_reply_seconds: int = Field(60, ge=1)
    #: The counterpart-on-a-target breaker counts over this longer window: a bot on a user account that
    #: answers slowly, with new text each time, still meets its limit within a day.
    counterpart_window_seconds: int = Field(86400, ge=60)


@dataclass
class BreakerState:
    """One breaker's state (a bounded document)."""

    key: str
    target: str = ""
    state: str = "closed"  # closed | open | half_open
    writes: list[float] = field(default_factory=list)
    texts: dict[str, list[float]] = field(default_factory=dict)
    opened_at: float | None = None
    probe_at: float | None = None
    last_write: float | None = None
    trips: int = 0
    reason: str = ""
    #: The targets this breaker counted writes on (newest last, bounded): what ``/reynolds resume`` looks for.
    targets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Permit:
    """Whether a write may go ahead; ``opened`` is True only for the write that tripped the breaker."""

    allowed: bool
    opened: bool = False
    reason: str = ""
    key: str = ""


def text_fingerprint(normalised_text: str) -> str:
    """A short hash of a normalised text."""
    return hashlib.sha256(normalised_text.encode()).hexdigest()[:12]


def step(state: BreakerState, now: float, limit: int, config: BreakerConfig, text_fp: str | None,
         automated: bool = True, window: int | None = None) -> Permit:
    """Decide one write against ``state`` (mutated in place): the breaker's state machine.

    Repeated text trips at ``counterpart_max_repeats`` when the counterpart is an automation or answers at a
    machine's pace (within ``fast_reply_seconds`` of Reynolds' previous answer to it); from a person at a
    person's pace it takes one repeat more (people say "any update?" twice, not on and on).
    """
    fast = state.last_write is not None and now - state.last_write <= config.fast_reply_seconds
    max_repeats = config.counterpart_max_repeats + (0 if automated or fast else 1)
    window = window or config.window_seconds
    horizon = now - window
    state.writes = [t for t in state.writes if t > horizon]
    # Repeats count over the short window whatever the breaker's own: "any update?" once a day is a person.
    text_horizon = now - config.window_seconds
    state.texts = {fp: kept for fp, times in state.texts.items()
                   if (kept := [t for t in times if t > text_horizon])}
    # A breaker cools down at least as long as it counts, doubling on every re-trip.
    cooldown = max(config.cooldown_seconds, window) * (2 ** max(state.trips - 1, 0))
    if state.state == "open":
        if state.opened_at is None or now - state.opened_at < cooldown:
            return Permit(False, reason=state.reason, key=state.key)
        # Cooled down: half-open, let this one write through as a probe. What it counted stays counted, so
        # a loop that resumes at once, or keeps its pace inside the window, trips again at the next write.
        state.state, state.probe_at = "half_open", now
        _count(state, now, text_fp)
        return Permit(True, key=state.key)
    tripped = ""
    repeats = len(state.texts.get(text_fp, [])) + 1 if text_fp else 0
    if state.state == "half_open" and state.probe_at is not None and now - state.probe_at < cooldown:
        tripped = "answers resumed at loop pace after the cooldown"
    elif len(state.writes) >= limit:
        tripped = f"{len(state.writes)} answers within {window} s (limit {limit})"
    elif text_fp and repeats >= max_repeats:
        tripped = f"the same text arrived {repeats} times within {config.window_seconds} s"
    if tripped:
        state.state, state.opened_at, state.trips, state.reason = "open", now, state.trips + 1, tripped
        return Permit(False, opened=True, reason=tripped, key=state.key)
    state.state = "closed"
    _count(state, now, text_fp)
    return Permit(True, key=state.key)


def _count(state: BreakerState, now: float, text_fp: str | None) -> None:
    state.last_write = now
    state.writes.append(now)
    if text_fp:
        state.texts.setdefault(text_fp, []).append(now)


class BreakerService:
    """Store-backed breakers (conditional writes; safe under concurrent instances)."""

    def __init__(self, store: DocumentStore, config: BreakerConfig, scopes: ScopeMap | None = None) -> None:
        self.store = store
        self.config = config
        self.scopes = scopes or ScopeMap()

    def permit(self, *, platform: str, target: str, counterpart: str | None, text_fp: str | None,
               now: datetime, automated: bool = True, depth: int | None = None) -> Permit:
        """Check (and count) one write to ``target`` answering ``counterpart``: the first breaker to trip wins.

        ``depth`` is the answered event's automated depth when known: below 2 it answered no write of
        Reynolds (an unprompted event), which is not an exchange and is neither counted nor stopped. A write
        answering a person (``automated=False``) is never counted nor stopped.
        """
        if not automated or (depth is not None and depth < 2):
            return Permit(True)
        ts = now.timestamp()
        where = f"{platform}:{target}"
        group = self.scopes.of_target(platform, target).group
        config = self.config
        checks: list[tuple[str, int, str | None, int]] = [
            (f"br:{where}", config.target_max_writes, None, config.window_seconds)]
        if counterpart:
            checks.append((f"br:{group}:actor:{platform}:{counterpart}", config.counterpart_max_writes, text_fp,
                           config.window_seconds))
        for key, limit, fp, window in checks:
            step_now = functools.partial(_step_at, now=ts, limit=limit, config=config, text_fp=fp,
                                         automated=automated, window=window)
            permit = self._apply(key, where, step_now)
            if not permit.allowed:
                return permit
        return Permit(True)

    def reset(self, *, platform: str, target: str) -> list[str]:
        """Close every breaker that counted a write on a target: ``/reynolds resume`` (cold path).

        The target's own breaker, and every counterpart breaker (across its group) that counted a write
        there, whichever target it first counted. Returns the keys of the breakers it closed.
        """
        where = f"{platform}:{target}"
        found = self.store.query(Query(equals={"kind": "breaker"}))
        keys = {str(doc["key"]) for doc in found
                if doc.get("target") == where or where in (doc.get("targets") or [])}
        held = sorted(k for k in keys if (self.state(k) or BreakerState(k)).state != "closed")
        for key in sorted(keys | {f"br:{where}"}):
            self._apply(key, where, _close)
        return held

    def state(self, key: str) -> BreakerState | None:
        """A breaker's current state, or None."""
        try:
            return _from_doc(self.store.read(safe_id(key), safe_id(key)))
        except NotFound:
            return None

    def _apply(self, key: str, where: str, change: Callable[[BreakerState], Permit]) -> Permit:
        outcome: list[Permit] = []

        states: list[str] = []

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            state = _from_doc(doc) if doc is not None else BreakerState(key=key, target=where)
            states[:] = [state.state]
            outcome[:] = [change(state)]
            states.append(state.state)
            if where not in state.targets:
                state.targets = [*state.targets, where][-_MAX_TARGETS:]
            return {"kind": "breaker", **state.__dict__, "ttl": 30 * 86400}

        update_document(self.store, safe_id(key), update)
        if states[0] != states[-1]:
            record_breaker_transition(_key_kind(key), states[-1])
        return outcome[0]


_MAX_TARGETS = 32


def _key_kind(key: str) -> str:
    """``target`` or ``actor``: which of the two breakers a key names."""
    return "actor" if ":actor:" in key else "target"


def _step_at(state: BreakerState, *, now: float, limit: int, config: BreakerConfig, text_fp: str | None,
             automated: bool, window: int) -> Permit:
    return step(state, now, limit, config, text_fp, automated, window)


def _close(state: BreakerState) -> Permit:
    state.state, state.writes, state.texts, state.opened_at, state.reason = "closed", [], {}, None, ""
    state.probe_at, state.trips = None, 0
    return Permit(True, key=state.key)


def _from_doc(doc: dict[str, Any]) -> BreakerState:
    names = BreakerState.__dataclass_fields__
    return BreakerState(**{k: v for k, v in doc.items() if k in names})


def resume_note(closed: list[str], released: list[str]) -> str:
    """What ``/reynolds resume`` cleared on a thread, in words (every breaker and every held counterpart)."""
    parts = []
    if closed:
        parts.append("closed breaker" + ("s " if len(closed) > 1 else " ") + ", ".join(f"`{k}`" for k in closed))
    if released:
        parts.append("cleared the exchange count of " + ", ".join(f"`{k}`" for k in released))
    return ("Resume " + "; ".join(parts) + ".") if parts else "Resume: nothing was holding this thread."
