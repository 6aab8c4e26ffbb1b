"""Pace every GitHub write and wait out GitHub's rate limits, with one state shared by every instance.

What GitHub documents ("Rate limits for the REST API", docs.github.com/en/rest/using-the-rest-api/
rate-limits-for-the-rest-api, sections "About secondary rate limits" and "Exceeding the rate limit"; and
"Best practices for using the REST API", section "Avoid concurrent requests" / "Pause between mutative
requests"):

* content-creating requests: at most 80 per minute and 500 per hour, and at least one second between writes;
* primary limit: a 403/429 with ``x-ratelimit-remaining: 0`` — do not retry before ``x-ratelimit-reset``
  (UTC epoch seconds);
* secondary limit: a 403/429 with ``retry-after`` — wait that many seconds; without it, wait at least one
  minute, and wait exponentially longer if the limit is hit again.

githubkit (``githubkit/core.py``, ``GitHubCore._check_rate_limit``) raises ``PrimaryRateLimitExceeded`` /
``SecondaryRateLimitExceeded`` only when ``retry-after`` is present or ``x-ratelimit-remaining`` is ``0``; a
secondary-limit 403 without either is a plain ``RequestFailed``, and its computed waits use the process's
wall clock. :func:`github_wait` therefore reads the response itself (status, headers, GitHub's error message)
and the pacer decides the wait on its own clock.

State (reserved write times of the last hour, ``blocked_until``, strikes) is one document per installation
in the store (``pacer:<installation>``, read-modify-write with ETags through ``update_document``), so every
Functions instance sees the writes and the penalties of all the others. Without a store (unit tests, tools)
the same logic runs on a process-local dict. :func:`get_pacer` is the one pacer every GitHub write uses; the
production service container installs a store-backed one (``shared.services.build_services``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shared.store.base import DocumentStore, safe_id, update_document

Clock = Callable[[], float]
Sleep = Callable[[float], None]

PER_MINUTE = 80
PER_HOUR = 500
MIN_INTERVAL_SECONDS = 1.0
DEFAULT_RETRY_AFTER_SECONDS = 60.0
MAX_PENALTY_SECONDS = 3600.0
#: A limit hit longer ago than this no longer counts towards exponential backoff.
STRIKE_MEMORY_SECONDS = 3600.0
#: GitHub's own words in a secondary-limit answer ("You have exceeded a secondary rate limit").
_SECONDARY_WORDS = ("secondary rate limit", "abuse detection")


class PacerWouldWait(Exception):  # noqa: N818 - a signal to the caller, not an error state
    """Raised by ``acquire(..., max_wait=...)`` when the write may not happen within ``max_wait`` seconds.

    The caller raises ``RetryLater`` with ``wait_seconds`` so the orchestration waits on a durable timer
    instead of holding a worker.
    """

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"GitHub write budget exhausted; retry in {wait_seconds:.1f} s")
        self.wait_seconds = wait_seconds


def _empty() -> dict[str, Any]:
    return {"writes": [], "blocked_until": 0.0, "strikes": 0, "last_strike": None}


class GitHubPacer:
    """Per-installation pacing of GitHub writes and rate-limit waits; clock and sleep are injectable.

    ``acquire`` waits (through ``sleep``) until a write is allowed and reserves it; ``penalize`` records a
    secondary-limit answer; ``block_until`` records a primary-limit answer; ``record_success`` forgets earlier
    strikes. With ``store`` the state is shared by every process using that store; the clock must then be a
    wall clock (epoch seconds), the same in every process.
    """

    def __init__(
        self,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        *,
        per_minute: int = PER_MINUTE,
        per_hour: int = PER_HOUR,
        min_interval: float = MIN_INTERVAL_SECONDS,
        default_retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
        max_penalty: float = MAX_PENALTY_SECONDS,
        store: DocumentStore | None = None,
    ) -> None:
        if per_minute < 1 or per_hour < 1:
            raise ValueError("limits must be positive")
        self._clock = clock
        self._sleep = sleep
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.min_interval = min_interval
        self.default_retry_after = default_retry_after
        self.max_penalty = max_penalty
        self.store = store
        self._lock = threading.Lock()
        self._local: dict[str, dict[str, Any]] = {}

    # -- state ------------------------------------------------------------------------------------------
    def _update(self, installation_id: int | str,
                change: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, Any]]) -> Any:
        """Apply ``change`` (state → (new state or None to keep it, result)) atomically; return the result."""
        key = str(installation_id)
        if self.store is None:
            with self._lock:
                state = self._local.get(key) or _empty()
                new, result = change({**state, "writes": list(state["writes"])})
                if new is not None:
                    self._local[key] = new
                return result
        results: list[Any] = []

        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            state = {**_empty(), **{k: v for k, v in (doc or {}).items() if k in _empty()}}
            new, result = change(state)
            results[:] = [result]  # a lost race re-applies: the last application is the one written
            if new is None:
                return None
            return {**new, "kind": "pacer", "installation": key, "ttl": 2 * 3600}

        update_document(self.store, safe_id(f"pacer:{key}"), apply)
        return results[0] if results else None

    def _earliest(self, state: dict[str, Any], now: float) -> float:
        """The first moment at or after ``now`` when one more write fits every limit."""
        writes = [t for t in state["writes"] if t > now - 3600.0]
        state["writes"] = writes
        at = max(now, float(state["blocked_until"]))
        if writes:
            at = max(at, writes[-1] + self.min_interval)
        # Writes are ascending, so "fewer than N in the window ending at t" means t >= the N-th latest + window.
        if len(writes) >= self.per_minute:
            at = max(at, writes[-self.per_minute] + 60.0)
        if len(writes) >= self.per_hour:
            at = max(at, writes[-self.per_hour] + 3600.0)
        return at

    # -- the interface ----------------------------------------------------------------------------------
    def next_slot(self, installation_id: int | str) -> float:
        """Seconds until a write would be allowed now (0 when one may go at once); reserves nothing."""
        now = self._clock()
        return float(self._update(installation_id, lambda s: (None, max(0.0, self._earliest(s, now) - now))))

    def acquire(self, installation_id: int | str, max_wait: float | None = None) -> float:
        """Wait until a write is allowed for the installation, reserve it, return seconds waited.

        Nothing is held while sleeping: waiters re-check after waking, so a penalty recorded meanwhile (by any
        instance) still holds them back. With ``max_wait``, raises :class:`PacerWouldWait` instead of waiting
        longer than that in total.
        """
        waited = 0.0
        while True:
            now = self._clock()

            def reserve(state: dict[str, Any], now: float = now) -> tuple[dict[str, Any] | None, float]:
                at = self._earliest(state, now)
                if at <= now:
                    state["writes"] = [*state["writes"], now]
                    return state, 0.0
                return None, at - now

            delay = float(self._update(installation_id, reserve))
            if delay <= 0:
                return waited
            if max_wait is not None and waited + delay > max_wait:
                raise PacerWouldWait(waited + delay)
            self._sleep(delay)
            waited += delay

    def penalize(self, installation_id: int | str, retry_after: float | None) -> float:
        """Record a secondary-limit 403/429; block the installation and return how long (seconds).

        The first hit waits ``retry_after`` (``default_retry_after``, 60 s, when absent); each further hit
        within :data:`STRIKE_MEMORY_SECONDS` doubles it, capped at ``max_penalty`` but never below
        ``retry_after``.
        """
        now = self._clock()

        def strike(state: dict[str, Any]) -> tuple[dict[str, Any], float]:
            last = state["last_strike"]
            strikes = 0 if last is None or now - float(last) > STRIKE_MEMORY_SECONDS else int(state["strikes"])
            strikes += 1
            base = retry_after if retry_after is not None and retry_after > 0 else self.default_retry_after
            wait = min(self.max_penalty, base * 2 ** min(strikes - 1, 20))
            wait = max(wait, retry_after or 0.0)
            state.update(strikes=strikes, last_strike=now,
                         blocked_until=max(float(state["blocked_until"]), now + wait))
            return state, wait

        return float(self._update(installation_id, strike))

    def block_until(self, installation_id: int | str, reset_at: float) -> float:
        """Record a primary-limit answer: no write before ``reset_at`` (epoch seconds); the wait in seconds."""
        now = self._clock()

        def block(state: dict[str, Any]) -> tuple[dict[str, Any], float]:
            state["blocked_until"] = max(float(state["blocked_until"]), reset_at)
            return state, max(0.0, float(state["blocked_until"]) - now)

        return float(self._update(installation_id, block))

    def record_success(self, installation_id: int | str) -> None:
        """A write went through: later limits start the backoff from scratch."""
        self._update(installation_id, lambda s: ((s | {"strikes": 0}) if s["strikes"] else None, None))

    def wait_for_answer(self, installation_id: int | str, status: int, headers: Any, message: str) -> float | None:
        """Apply GitHub's answer to a write: the seconds to wait before retrying, or None when it is not a
        rate limit. See :func:`github_wait` for the classification."""
        kind, value = github_wait(status, headers, message)
        if kind == "primary":
            return self.block_until(installation_id, value if value is not None else self._clock() + 60.0)
        if kind == "secondary":
            return self.penalize(installation_id, value)
        return None


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value)
    return None


def github_wait(status: int, headers: Any, message: str) -> tuple[str | None, float | None]:
    """Classify a GitHub answer: ``("primary", reset epoch)``, ``("secondary", retry-after seconds or None)``
    or ``(None, None)``.

    Per GitHub's "Exceeding the rate limit": a primary limit is a 403/429 with ``x-ratelimit-remaining: 0``
    (wait until ``x-ratelimit-reset``); a secondary limit is a 403/429 with ``retry-after``, or whose message
    says so, or any 429 (GitHub answers either code for both); ``retry-after`` wins over the primary reading,
    as in octokit/plugin-throttling.js and githubkit.
    """
    if status not in (403, 429):
        return None, None
    retry_after = _header(headers, "retry-after")
    if retry_after is not None:
        try:
            return "secondary", max(0.0, float(retry_after))
        except ValueError:
            return "secondary", None
    lowered = (message or "").lower()
    if _header(headers, "x-ratelimit-remaining") == "0" and not any(w in lowered for w in _SECONDARY_WORDS):
        reset = _header(headers, "x-ratelimit-reset")
        try:
            return "primary", float(reset) if reset is not None else None
        except ValueError:
            return "primary", None
    if any(w in lowered for w in _SECONDARY_WORDS) or status == 429:
        return "secondary", None
    return None, None


_default: GitHubPacer | None = None
_default_lock = threading.Lock()


def get_pacer() -> GitHubPacer:
    """The GitHub write pacer every GitHub write goes through (store-backed once services installed one)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = GitHubPacer()
        return _default


def set_pacer(pacer: GitHubPacer | None) -> None:
    """Install a pacer (services install the shared one; tools give it a simulated clock); ``None`` resets."""
    global _default
    with _default_lock:
        _default = pacer
