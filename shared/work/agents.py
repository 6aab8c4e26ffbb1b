"""What Reynolds learns about its specialists: calls, outcomes, durations and a circuit breaker per specialist.

One ``agent:<specialist>`` document each, updated with an ETag-guarded read-modify-write; an attempt is counted
once per attempt key, so a re-run activity is not counted twice. ``GET /api/agents`` and the analyzer read them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from shared.errors import NotFound
from shared.services import Services
from shared.store.base import update_document
from shared.work.tasks import Specialist

#: Consecutive failures that open a specialist's circuit breaker, and how long it stays open.
BREAKER_FAILURES = 5
BREAKER_COOLDOWN_SECONDS = 300.0
#: Durations kept per specialist (p50/p95 and the analyzer's learned durations).
DURATION_SAMPLES = 200
#: Attempt keys remembered per specialist so that a re-run activity is not counted twice.
SEEN_KEYS = 256


class AgentStats(BaseModel):
    """Learned statistics of one specialist (``GET /api/agents``)."""

    specialist: Specialist
    calls: int = 0
    successes: int = 0
    failures: int = 0
    success_rate: float | None = None
    p50_seconds: float | None = None
    p95_seconds: float | None = None
    breaker: str = "closed"
    consecutive_failures: int = 0


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return round(ordered[rank - 1], 4)


class AgentRegistry:
    """Every specialist's statistics and breaker over one ``Services`` container."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store

    def record_call(self, specialist: Specialist, attempt_key: str, *, ok: bool, seconds: float) -> None:
        """Count one attempt (once per attempt key, so a re-run activity is not counted twice)."""
        doc_id = f"agent:{specialist.value}"
        now = self.services.clock().timestamp()

        def update(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            body = doc or {"kind": "agent", "specialist": specialist.value}
            seen: list[str] = list(body.get("seen", []))
            if attempt_key in seen:
                return None
            body = dict(body)
            body["seen"] = [*seen, attempt_key][-SEEN_KEYS:]
            body["calls"] = int(body.get("calls", 0)) + 1
            body["successes"] = int(body.get("successes", 0)) + (1 if ok else 0)
            body["failures"] = int(body.get("failures", 0)) + (0 if ok else 1)
            body["durations"] = [*body.get("durations", []), round(max(0.0, seconds), 6)][-DURATION_SAMPLES:]
            body["consecutive_failures"] = 0 if ok else int(body.get("consecutive_failures", 0)) + 1
            if not ok:
                body["last_failure_at"] = now
            return body

        update_document(self.store, doc_id, update)

    def _agent_doc(self, specialist: Specialist) -> dict[str, Any]:
        doc_id = f"agent:{specialist.value}"
        try:
            return self.store.read(doc_id, doc_id)
        except NotFound:
            return {}

    def _breaker(self, doc: Mapping[str, Any]) -> tuple[str, float]:
        failures = int(doc.get("consecutive_failures", 0))
        if failures < BREAKER_FAILURES:
            return "closed", 0.0
        elapsed = self.services.clock().timestamp() - float(doc.get("last_failure_at") or 0.0)
        if elapsed < BREAKER_COOLDOWN_SECONDS:
            return "open", BREAKER_COOLDOWN_SECONDS - elapsed
        return "half_open", 0.0

    def breaker_wait(self, specialist: Specialist) -> float:
        """Seconds until the specialist's breaker lets an attempt through (0 when closed or half-open)."""
        return self._breaker(self._agent_doc(specialist))[1]

    def agent_stats(self) -> list[AgentStats]:
        """Every specialist's learned statistics."""
        stats: list[AgentStats] = []
        for specialist in Specialist:
            doc = self._agent_doc(specialist)
            calls = int(doc.get("calls", 0))
            durations = [float(x) for x in doc.get("durations", [])]
            stats.append(AgentStats(
                specialist=specialist, calls=calls, successes=int(doc.get("successes", 0)),
                failures=int(doc.get("failures", 0)),
                success_rate=round(int(doc.get("successes", 0)) / calls, 4) if calls else None,
                p50_seconds=percentile(durations, 0.5), p95_seconds=percentile(durations, 0.95),
                breaker=self._breaker(doc)[0], consecutive_failures=int(doc.get("consecutive_failures", 0)),
            ))
        return stats

    def learned_durations(self, default: float = 1.0) -> dict[Specialist, float]:
        """Median duration per specialist from the statistics (``default`` where nothing was learned)."""
        durations: dict[Specialist, float] = {}
        for stats in self.agent_stats():
            durations[stats.specialist] = stats.p50_seconds if stats.p50_seconds else default
        return durations
