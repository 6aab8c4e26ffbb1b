"""Pure policy of the orchestrate_task engine: retry backoff, the retry policy model and DAG scheduling.

Everything here is deterministic (no clock, no random, no I/O), so the orchestrator may call it during replay.
Jitter comes from a stable hash of a seed (instance id + subtask id + attempt), never from ``random``: a replay
must compute the very same timer it scheduled the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.work.tasks import Plan, SubtaskState

#: Python Durable timers may last at most 6 days each.
MAX_TIMER_SECONDS = 6 * 24 * 3600
#: Error and summary texts are cut to these lengths before they enter orchestration payloads.
MAX_ERROR_CHARS = 500
MAX_SUMMARY_CHARS = 1000

_TERMINAL = frozenset({SubtaskState.SUCCEEDED, SubtaskState.FAILED, SubtaskState.SKIPPED})
_BROKEN = frozenset({SubtaskState.FAILED, SubtaskState.SKIPPED})


class RetryPolicy(BaseModel):
    """How a subtask is attempted: attempt cap, backoff shape, per-attempt and approval timeouts (seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(4, ge=1, le=20)
    base: float = Field(2.0, gt=0, le=3600)
    cap: float = Field(300.0, gt=0, le=MAX_TIMER_SECONDS)
    #: Half of host.json's ``functionTimeout`` (600 s), above the activity's own specialist deadline (240 s,
    #: ``shared.work.task_service.SPECIALIST_DEADLINE_SECONDS``): see the ordering there.
    attempt_timeout_seconds: float = Field(300.0, gt=0, le=MAX_TIMER_SECONDS)
    approval_timeout_seconds: float = Field(24 * 3600.0, gt=0, le=MAX_TIMER_SECONDS)
    jitter: Literal["equal", "full"] = "equal"

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.cap < self.base:
            raise ValueError("cap must be at least base")
        return self


def stable_fraction(seed: str) -> float:
    """Map ``seed`` to a float in [0, 1) that is the same in every process and on every replay."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / float(1 << 64)


def backoff_seconds(
    attempt: int,
    base: float = 2.0,
    cap: float = 300.0,
    *,
    seed: str,
    jitter: Literal["equal", "full"] = "equal",
) -> float:
    """Delay before retrying after failed attempt number ``attempt`` (1-based): capped exponential with jitter.

    The ceiling is ``min(cap, base * 2 ** (attempt - 1))``. ``equal`` jitter waits between half the ceiling and
    the ceiling (never a near-zero retry storm); ``full`` jitter waits anywhere in [0, ceiling). The jitter is
    derived from ``seed`` through a stable hash, so the same seed always yields the same delay.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    # Cap the exponent before exponentiating: 2 ** 10_000 is a valid int but a pointless float overflow risk.
    ceiling = min(cap, base * float(2 ** min(attempt - 1, 62)))
    fraction = stable_fraction(f"{seed}:{attempt}")
    if jitter == "full":
        return ceiling * fraction
    return ceiling / 2 + (ceiling / 2) * fraction


def retry_delay_seconds(policy: RetryPolicy, attempt: int, *, seed: str, retry_after: float | None = None) -> float:
    """The wait before the next attempt: the jittered backoff, but never less than the server's Retry-After.

    The result is clamped to one durable timer (6 days); a Retry-After longer than that is not worth waiting for
    inside one orchestration anyway.
    """
    delay = backoff_seconds(attempt, policy.base, policy.cap, seed=seed, jitter=policy.jitter)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, float(retry_after))
    return min(delay, float(MAX_TIMER_SECONDS))


def validate_plan(plan: Plan) -> None:
    """Raise ``ValueError`` unless the plan is a DAG: unique ids, known dependencies, no self-loops or cycles."""
    ids = [subtask.id for subtask in plan.subtasks]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate subtask ids: {', '.join(duplicates)}")
    known = set(ids)
    for subtask in plan.subtasks:
        unknown = [d for d in subtask.dependencies if d not in known]
        if unknown:
            raise ValueError(f"subtask {subtask.id} depends on unknown subtasks: {', '.join(unknown)}")
        if subtask.id in subtask.dependencies:
            raise ValueError(f"subtask {subtask.id} depends on itself")
    # Kahn's algorithm: whatever cannot be peeled off lies on a cycle.
    remaining = {s.id: set(s.dependencies) for s in plan.subtasks}
    while True:
        free = [sid for sid, deps in remaining.items() if not deps]
        if not free:
            break
        for sid in free:
            del remaining[sid]
        for deps in remaining.values():
            deps.difference_update(free)
    if remaining:
        raise ValueError(f"dependency cycle among subtasks: {', '.join(sorted(remaining))}")


def next_ready(plan: Plan, states: Mapping[str, SubtaskState | str]) -> list[str]:
    """Pending subtasks whose dependencies all succeeded, in plan order (the order the planner chose)."""
    ready: list[str] = []
    for subtask in plan.subtasks:
        if SubtaskState(states.get(subtask.id, SubtaskState.PENDING)) is not SubtaskState.PENDING:
            continue
        if all(
            SubtaskState(states.get(dep, SubtaskState.PENDING)) is SubtaskState.SUCCEEDED
            for dep in subtask.dependencies
        ):
            ready.append(subtask.id)
    return ready


def blocked_by_failure(plan: Plan, states: Mapping[str, SubtaskState | str]) -> dict[str, str]:
    """Pending subtasks that can never run, each with the dependency that broke it (transitively).

    A subtask is blocked when one of its dependencies failed or was skipped; its own dependants are blocked in
    turn, so the answer is the whole downstream cone of every failure.
    """
    current = {sid: SubtaskState(state) for sid, state in states.items()}
    blocked: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for subtask in plan.subtasks:
            if current.get(subtask.id, SubtaskState.PENDING) is not SubtaskState.PENDING:
                continue
            broken = next((d for d in subtask.dependencies if current.get(d) in _BROKEN), None)
            if broken is not None:
                blocked[subtask.id] = broken
                current[subtask.id] = SubtaskState.SKIPPED
                changed = True
    return blocked


def is_terminal(state: SubtaskState | str) -> bool:
    """Whether a subtask in ``state`` is finished (succeeded, failed or skipped)."""
    return SubtaskState(state) in _TERMINAL


def truncate(text: str | None, limit: int = MAX_ERROR_CHARS) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut; orchestration payloads must stay small."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    marker = "… [truncated]"
    return text[: max(0, limit - len(marker))] + marker


_FAILED_PREFIXES = ("Activity function '", "Orchestrator function '")


def failure_text(error: BaseException | str, limit: int = MAX_ERROR_CHARS) -> str:
    """A short, human text for a failed task: the SDK raises ``Exception(f"{Reason} \\n {Details}")`` where the
    extension's Reason reads ``Activity function '<name>' failed: <Type>: <msg>`` and Details is the .NET
    exception JSON with the Python stack. Keep ``<Type>: <msg>`` and drop the rest (status comments show it)."""
    text = str(error)
    reason = text.split(" \n ", 1)[0].strip()
    for prefix in _FAILED_PREFIXES:
        if reason.startswith(prefix):
            _, marker, rest = reason.partition("' failed: ")
            if marker:
                reason = rest
            break
    first_line = reason.splitlines()[0] if reason else type(error).__name__
    return truncate(first_line, limit)


def count_states(states: Iterable[SubtaskState | str]) -> dict[SubtaskState, int]:
    """How many subtasks are in each state (every state present, zero when unused)."""
    counts = dict.fromkeys(SubtaskState, 0)
    for state in states:
        counts[SubtaskState(state)] += 1
    return counts
