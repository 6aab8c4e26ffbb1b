"""The scorecard: the seeds' KPIs computed from recorded runs over a window (pure).

Input records (what the engine and the loop guard record or can derive from their own documents):

* ``TaskRun`` — one ``orchestrate_task`` run: ``received_at`` (the request's event time), ``started_at`` /
  ``ended_at`` (the orchestration's created/completed times), ``status`` (``completed``/``failed``/…),
  ``max_concurrency`` (``Strategy``), ``first_answer_at`` (the first status comment or reply the requester saw),
  and per subtask (``SubtaskRun``) its specialist, final ``SubtaskState`` and the ``started_at``/``ended_at`` of
  its execution (the sub-orchestration's, i.e. including its retries). Times are seconds (epoch).
* ``DecisionRun`` — one loop-guard decision (the ``ev:`` event document): ``received_at`` (the door's receipt),
  ``decided_at`` (the decision's ``time``), ``verdict``, ``rule``, ``actor_kind``, and ``held`` (a person's
  event that Reynolds did not run: refused, or its answer suppressed).

A task belongs to the window when it ended inside it, a decision when it was received inside it. Each KPI,
with its seed target:

=============================  =====================================================================  ========
KPI                            definition                                                             target
=============================  =====================================================================  ========
parallel execution ratio       of the subtask running time of tasks with ≥ 2 subtasks, the share       > 80 %
                               during which at least one other subtask of the same task also ran
task success rate              tasks whose every subtask succeeded / tasks finished                   > 90 %
agent utilisation              subtask running time / (each task's subtask span × its usable slots,    > 70 %
                               min(max_concurrency, subtasks))
orchestration overhead         engine time outside subtasks (task wall time minus the union of its     < 15 %
                               subtasks' running intervals) / task wall time, summed over tasks
p95 decision latency           95th percentile (nearest rank) of decided_at − received_at              < 5 s
p95 first-answer latency       95th percentile of first_answer_at − received_at (tasks with an answer) < 5 s
loops stopped                  decisions with verdict ``loop``                                        (none)
people held                    decisions of a person's event (actor kind ``human``) that were held     (none)
=============================  =====================================================================  ========

A KPI with nothing to compute it from is ``None`` (``met`` None), never 0 or 100 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.work.agents import percentile
from shared.work.tasks import SubtaskState


class SubtaskRun(BaseModel):
    """One subtask's execution."""

    id: str
    specialist: str
    status: SubtaskState
    started_at: float
    ended_at: float


class TaskRun(BaseModel):
    """One finished (or running) task."""

    instance_id: str
    status: str
    received_at: float | None = None
    started_at: float
    ended_at: float | None = None
    max_concurrency: int = Field(8, ge=1)
    first_answer_at: float | None = None
    subtasks: list[SubtaskRun] = Field(default_factory=list)


class DecisionRun(BaseModel):
    """One loop-guard decision."""

    event_id: str
    received_at: float
    decided_at: float
    verdict: str
    rule: str = ""
    actor_kind: str = "human"
    held: bool = False


FINISHED = ("completed", "failed", "terminated")
#: Verdicts that hold an event (nothing runs for it).
HOLDING = ("loop", "rejected")


def decision_from_record(record: Mapping[str, Any]) -> DecisionRun:
    """A ``DecisionRun`` from a decisions-journal record (``tools.whatif``'s format): received at the envelope's
    ``time``, decided at the record's ``at``; a person's event is held when its verdict is loop or rejected."""
    envelope = record["envelope"]
    received = datetime.fromisoformat(str(envelope["time"]).replace("Z", "+00:00")).timestamp()
    decided = datetime.fromisoformat(str(record["at"])).timestamp()
    kind = str((envelope.get("actor") or {}).get("kind") or "human")
    verdict = str(record["verdict"])
    return DecisionRun(event_id=str(record["event_id"]), received_at=received, decided_at=decided,
                       verdict=verdict, rule=str(record.get("rule") or ""), actor_kind=kind,
                       held=verdict in HOLDING)


@dataclass(frozen=True)
class Kpi:
    """One figure, its target and whether it meets it."""

    name: str
    value: float | int | None
    target: str | None
    met: bool | None
    definition: str


def _union(intervals: Iterable[tuple[float, float]]) -> float:
    total, end = 0.0, None
    start_run = 0.0
    for start, stop in sorted(intervals):
        if end is None or start > end:
            if end is not None:
                total += end - start_run
            start_run, end = start, stop
        else:
            end = max(end, stop)
    if end is not None:
        total += end - start_run
    return total


def _overlapped(interval: tuple[float, float], others: Sequence[tuple[float, float]]) -> float:
    """Seconds of ``interval`` during which at least one of ``others`` ran."""
    start, stop = interval
    clipped = [(max(start, a), min(stop, b)) for a, b in others if min(stop, b) > max(start, a)]
    return _union(clipped)


def parallel_execution_ratio(tasks: Sequence[TaskRun]) -> float | None:
    """See the module table."""
    busy = overlapped = 0.0
    for task in tasks:
        runs = [(s.started_at, s.ended_at) for s in task.subtasks]
        if len(runs) < 2:
            continue
        for i, run in enumerate(runs):
            busy += run[1] - run[0]
            overlapped += _overlapped(run, runs[:i] + runs[i + 1:])
    return overlapped / busy if busy > 0 else None


def task_success_rate(tasks: Sequence[TaskRun]) -> float | None:
    """See the module table."""
    if not tasks:
        return None
    ok = sum(1 for t in tasks if t.subtasks and all(s.status is SubtaskState.SUCCEEDED for s in t.subtasks))
    return ok / len(tasks)


def agent_utilisation(tasks: Sequence[TaskRun]) -> float | None:
    """See the module table."""
    busy = available = 0.0
    for task in tasks:
        if not task.subtasks:
            continue
        span = max(s.ended_at for s in task.subtasks) - min(s.started_at for s in task.subtasks)
        busy += sum(s.ended_at - s.started_at for s in task.subtasks)
        available += span * min(task.max_concurrency, len(task.subtasks))
    return busy / available if available > 0 else None


def orchestration_overhead(tasks: Sequence[TaskRun]) -> float | None:
    """See the module table."""
    wall = outside = 0.0
    for task in tasks:
        if task.ended_at is None:
            continue
        total = task.ended_at - task.started_at
        wall += total
        outside += total - _union((s.started_at, s.ended_at) for s in task.subtasks)
    return outside / wall if wall > 0 else None


def scorecard(tasks: Iterable[TaskRun], decisions: Iterable[DecisionRun], *, start: float,
              end: float) -> list[Kpi]:
    """Every KPI over the window ``[start, end)`` (see the module table)."""
    finished = [t for t in tasks if t.status in FINISHED and t.ended_at is not None and start <= t.ended_at < end]
    decided = [d for d in decisions if start <= d.received_at < end]
    decision_p95 = percentile((d.decided_at - d.received_at for d in decided), 0.95)
    answer_p95 = percentile((t.first_answer_at - (t.received_at if t.received_at is not None else t.started_at)
                             for t in finished if t.first_answer_at is not None), 0.95)

    def ratio(name: str, value: float | None, target: float, above: bool, definition: str) -> Kpi:
        shown = None if value is None else round(value, 4)
        met = None if value is None else (value > target if above else value < target)
        return Kpi(name, shown, f"{'>' if above else '<'} {target:.0%}", met, definition)

    def seconds(name: str, value: float | None, definition: str) -> Kpi:
        return Kpi(name, value, "p95 < 5 s", None if value is None else value < 5.0, definition)

    return [
        ratio("parallel_execution_ratio", parallel_execution_ratio(finished), 0.80, True,
              "share of subtask running time overlapping another subtask of the same task (tasks with ≥ 2)"),
        ratio("task_success_rate", task_success_rate(finished), 0.90, True,
              "tasks whose every subtask succeeded / tasks finished"),
        ratio("agent_utilisation", agent_utilisation(finished), 0.70, True,
              "subtask running time / (subtask span × min(max_concurrency, subtasks)), summed over tasks"),
        ratio("orchestration_overhead", orchestration_overhead(finished), 0.15, False,
              "engine time outside subtasks / task wall time, summed over tasks"),
        seconds("p95_decision_latency_seconds", decision_p95, "95th percentile of decided_at − received_at"),
        seconds("p95_first_answer_latency_seconds", answer_p95,
                "95th percentile of first answer − request received"),
        Kpi("loops_stopped", sum(1 for d in decided if d.verdict == "loop"), None, None,
            "decisions with verdict loop"),
        Kpi("people_held", sum(1 for d in decided if d.actor_kind == "human" and d.held), None, None,
            "a person's events Reynolds held (refused, or its answer suppressed)"),
    ]
