"""Learned scheduling: durations per specialist, and ready subtasks started longest critical path first (pure).

**Durations.** An exponentially-weighted mean of a specialist's recorded subtask durations, oldest first:
``m₁ = d₁``, ``mₖ = α·dₖ + (1 − α)·mₖ₋₁`` (``ALPHA`` 0.3: the last few runs weigh most, one outlier does not
swing it). ``durations_from_agent_docs`` reads the samples ``shared.work.agents.AgentRegistry.record_call``
already keeps (``agent:<specialist>`` documents, ``durations`` newest last).

**Order.** The engine's ``shared.work.policy.next_ready`` lists ready subtasks in plan order; with a sliding
window narrower than the ready set, which start first decides the makespan. The classic list-scheduling answer
(HEFT's *upward rank*; Graham's critical-path rule) starts the subtask with the longest remaining path to the end
of the DAG first: ``rank(s) = duration(s) + max(rank(c) for c depending on s)``. ``order_ready`` sorts the ready
ids by rank, plan order breaking ties, so with equal durations it keeps the planner's order.

**Where the engine and analysis call it** (not wired here; the engine is another issue's): the engine's window
fill (``orchestrators/engine.py``, where it takes ``next_ready`` ids into free slots) would call
``order_ready(plan, next_ready(plan, states), durations)``; ``shared.work.task_service.TaskService.analyze``
(behind ``/api/analyze`` and the ``analyze_orchestration_potential`` MCP tool) today passes
``AgentRegistry.learned_durations()`` (medians) to ``shared.ai.planner.analyze_potential``: passing
``learned_durations(durations_from_agent_docs(docs))`` instead gives it the same model as the scheduler, and
``simulated_makespan`` is the schedule it would predict.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.work.policy import validate_plan
from shared.work.tasks import Plan, Specialist

ALPHA = 0.3
DEFAULT_SECONDS = 1.0


def ewma(samples: Sequence[float], alpha: float = ALPHA) -> float | None:
    """The exponentially-weighted mean of ``samples`` (oldest first); None when there are none."""
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1]")
    mean: float | None = None
    for value in samples:
        mean = float(value) if mean is None else alpha * float(value) + (1 - alpha) * mean
    return mean


def learned_durations(samples: Mapping[Specialist, Sequence[float]], *, alpha: float = ALPHA,
                      default: float = DEFAULT_SECONDS) -> dict[Specialist, float]:
    """Every specialist's learned duration (``default`` where nothing was recorded)."""
    learned = {}
    for specialist in Specialist:
        mean = ewma(samples.get(specialist, ()), alpha)
        learned[specialist] = round(mean, 6) if mean is not None else default
    return learned


def durations_from_agent_docs(docs: Iterable[Mapping[str, Any]]) -> dict[Specialist, list[float]]:
    """The recorded durations of ``agent:<specialist>`` statistics documents, oldest first."""
    samples: dict[Specialist, list[float]] = {}
    for doc in docs:
        try:
            specialist = Specialist(str(doc.get("specialist")))
        except ValueError:
            continue
        samples[specialist] = [float(x) for x in doc.get("durations", [])]
    return samples


def critical_path_ranks(plan: Plan, durations: Mapping[Specialist, float],
                        default: float = DEFAULT_SECONDS) -> dict[str, float]:
    """Each subtask's upward rank: its duration plus the longest rank among the subtasks depending on it."""
    validate_plan(plan)
    dependants: dict[str, list[str]] = {s.id: [] for s in plan.subtasks}
    for subtask in plan.subtasks:
        for dep in subtask.dependencies:
            dependants[dep].append(subtask.id)
    cost = {s.id: float(durations.get(s.specialist, default)) for s in plan.subtasks}
    ranks: dict[str, float] = {}

    def rank(key: str) -> float:
        if key not in ranks:
            ranks[key] = cost[key] + max((rank(child) for child in dependants[key]), default=0.0)
        return ranks[key]

    for subtask in plan.subtasks:
        rank(subtask.id)
    return ranks


def order_ready(plan: Plan, ready: Sequence[str], durations: Mapping[Specialist, float]) -> list[str]:
    """``ready`` subtask ids, longest critical path first (plan order on ties)."""
    ranks = critical_path_ranks(plan, durations)
    position = {s.id: i for i, s in enumerate(plan.subtasks)}
    return sorted(ready, key=lambda key: (-ranks[key], position[key]))


def simulated_makespan(plan: Plan, durations: Mapping[Specialist, float], slots: int, *,
                       critical_first: bool = True) -> float:
    """The finish time of ``plan`` on ``slots`` parallel slots when ready subtasks start in rank order (or plan
    order): what the scheduler predicts, and what a test compares both orders with."""
    if slots < 1:
        raise ValueError("slots must be at least 1")
    validate_plan(plan)
    by_id = {s.id: s for s in plan.subtasks}
    cost = {s.id: float(durations.get(s.specialist, DEFAULT_SECONDS)) for s in plan.subtasks}
    done: set[str] = set()
    running: list[tuple[float, str]] = []
    now = 0.0
    started: set[str] = set()
    while len(done) < len(by_id):
        ready = [s.id for s in plan.subtasks if s.id not in started and all(d in done for d in s.dependencies)]
        if critical_first:
            ready = order_ready(plan, ready, durations)
        for key in ready[: slots - len(running)]:
            started.add(key)
            heapq.heappush(running, (now + cost[key], key))
        now, finished = heapq.heappop(running)
        done.add(finished)
    return now
