"""Pace content-creating GitHub writes per installation so Reynolds stays under the secondary rate limits.

GitHub's secondary limits for content-creating requests: at most 80 per minute and 500 per hour, at least one
second between writes, and after a secondary-limit 403/429 wait ``retry-after`` (60 s when absent) and back off
exponentially if it happens again. :class:`GitHubPacer` enforces all of that before each write.

State lives in memory, per process: with several Functions instances each one paces itself, so the true
aggregate rate can exceed one instance's view. A shared variant (Cosmos DB documents per installation with
conditional writes, or a Durable entity) is future work; the limits here are therefore conservative defaults.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], None]

PER_MINUTE = 80
PER_HOUR = 500
MIN_INTERVAL_SECONDS = 1.0
DEFAULT_RETRY_AFTER_SECONDS = 60.0
MAX_PENALTY_SECONDS = 3600.0
#: A limit hit longer ago than this no longer counts towards exponential backoff.
STRIKE_MEMORY_SECONDS = 3600.0


class PacerWouldWait(Exception):  # noqa: N818 - a signal to the caller, not an error state
    """Raised by ``acquire(..., max_wait=...)`` when the write may not happen within ``max_wait`` seconds.

    An activity turns it into ``{"ok": false, "retryable": true, "retry_after": wait_seconds}`` so the
    orchestration waits on a durable timer instead of holding a worker.
    """

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"GitHub write budget exhausted; retry in {wait_seconds:.1f} s")
        self.wait_seconds = wait_seconds


@dataclass
class _Installation:
    writes: deque[float] = field(default_factory=deque)  # reserved write times, ascending, last hour
    blocked_until: float = 0.0
    strikes: int = 0
    last_strike: float = float("-inf")


class GitHubPacer:
    """Per-installation pacing of content-creating writes; thread-safe; clock and sleep are injectable.

    ``acquire`` blocks (through ``sleep``) until a write is allowed and reserves it; ``penalize`` records a
    secondary-limit answer; ``record_success`` forgets earlier strikes.
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
        self._lock = threading.Lock()
        self._installations: dict[str, _Installation] = {}

    def _state(self, installation_id: int | str) -> _Installation:
        return self._installations.setdefault(str(installation_id), _Installation())

    def _earliest(self, state: _Installation, now: float) -> float:
        """The first moment at or after ``now`` when one more write fits every limit (lock held)."""
        writes = state.writes
        while writes and writes[0] <= now - 3600.0:
            writes.popleft()
        at = max(now, state.blocked_until)
        if writes:
            at = max(at, writes[-1] + self.min_interval)
        # Writes are ascending, so "fewer than N in the window ending at t" means t >= the N-th latest + window.
        if len(writes) >= self.per_minute:
            at = max(at, writes[-self.per_minute] + 60.0)
        if len(writes) >= self.per_hour:
            at = max(at, writes[-self.per_hour] + 3600.0)
        return at

    def next_slot(self, installation_id: int | str) -> float:
        """Seconds until a write would be allowed now (0 when one may go at once); reserves nothing."""
        with self._lock:
            now = self._clock()
            return max(0.0, self._earliest(self._state(installation_id), now) - now)

    def acquire(self, installation_id: int | str, max_wait: float | None = None) -> float:
        """Wait until a content-creating write is allowed for the installation, reserve it, return seconds waited.

        The lock is never held while sleeping: waiters re-check after waking, so a ``penalize`` that arrives
        meanwhile still holds them back. With ``max_wait``, raises :class:`PacerWouldWait` instead of waiting
        longer than that in total.
        """
        waited = 0.0
        while True:
            with self._lock:
                state = self._state(installation_id)
                now = self._clock()
                at = self._earliest(state, now)
                if at <= now:
                    state.writes.append(now)
                    return waited
                delay = at - now
            if max_wait is not None and waited + delay > max_wait:
                raise PacerWouldWait(waited + delay)
            self._sleep(delay)
            waited += delay

    def penalize(self, installation_id: int | str, retry_after: float | None) -> float:
        """Record a secondary-limit 403/429; block the installation and return how long (seconds).

        The first hit waits ``retry_after`` (``default_retry_after`` when absent); each further hit within
        :data:`STRIKE_MEMORY_SECONDS` doubles it, capped at ``max_penalty`` but never below ``retry_after``.
        """
        with self._lock:
            state = self._state(installation_id)
            now = self._clock()
            if now - state.last_strike > STRIKE_MEMORY_SECONDS:
                state.strikes = 0
            state.strikes += 1
            state.last_strike = now
            base = retry_after if retry_after is not None and retry_after > 0 else self.default_retry_after
            wait = min(self.max_penalty, base * 2 ** min(state.strikes - 1, 20))
            wait = max(wait, retry_after or 0.0)
            state.blocked_until = max(state.blocked_until, now + wait)
            return wait

    def record_success(self, installation_id: int | str) -> None:
        """A write went through: later limits start the backoff from scratch."""
        with self._lock:
            self._state(installation_id).strikes = 0


_default: GitHubPacer | None = None
_default_lock = threading.Lock()


def get_pacer() -> GitHubPacer:
    """The per-process GitHub write pacer every GitHub write goes through (see the module docstring)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = GitHubPacer()
        return _default


def set_pacer(pacer: GitHubPacer | None) -> None:
    """Install a pacer (tools and tests give it a simulated clock); ``None`` rebuilds the default."""
    global _default
    with _default_lock:
        _default = pacer
