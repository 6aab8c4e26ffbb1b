"""The scorecard: every figure recomputed by hand from the recorded runs below."""

from __future__ import annotations

from shared.learning.scorecard import DecisionRun, SubtaskRun, TaskRun, scorecard
from shared.work.tasks import SubtaskState

OK, FAILED = SubtaskState.SUCCEEDED, SubtaskState.FAILED


def sub(sid: str, start: float, end: float, status: SubtaskState = OK) -> SubtaskRun:
    return SubtaskRun(id=sid, specialist="devops", status=status, started_at=start, ended_at=end)


TASKS = [
    # A: a1 2–10 and a2 4–12 overlap 6 s each; a3 12–18 alone. Busy 22 s, overlapped 12 s. Span 16 s × 2 slots.
    # Subtasks cover 2–18 (16 s) of 20 s: 4 s engine time. First answer 2 s after the request.
    TaskRun(instance_id="A", status="completed", received_at=-1, started_at=0, ended_at=20, max_concurrency=2,
            first_answer_at=1, subtasks=[sub("a1", 2, 10), sub("a2", 4, 12), sub("a3", 12, 18)]),
    # B: one failed subtask 101–109 (8 s busy, 8 s × 1 slot), 2 s engine time of 10; first answer after 3 s.
    TaskRun(instance_id="B", status="failed", received_at=100, started_at=100, ended_at=110, max_concurrency=8,
            first_answer_at=103, subtasks=[sub("b1", 101, 109, FAILED)]),
    # Not counted: still running; ended after the window.
    TaskRun(instance_id="C", status="running", started_at=200, subtasks=[sub("c1", 201, 202)]),
    TaskRun(instance_id="D", status="completed", started_at=4000, ended_at=5000, subtasks=[sub("d1", 4000, 4001)]),
]

DECISIONS = [
    # 20 decisions, latencies 0.1 … 2.0 s: nearest-rank p95 is the 19th, 1.9 s.
    *(DecisionRun(event_id=f"e{i}", received_at=float(i), decided_at=i + i / 10, verdict="accepted")
      for i in range(1, 21)),
]
DECISIONS[0] = DECISIONS[0].model_copy(update={"verdict": "loop", "actor_kind": "bot", "held": True})
DECISIONS[1] = DECISIONS[1].model_copy(update={"verdict": "loop", "actor_kind": "human", "held": True})
DECISIONS.append(DecisionRun(event_id="late", received_at=4500, decided_at=4590, verdict="loop"))


def test_scorecard_figures_match_the_hand_computation() -> None:
    card = {k.name: k for k in scorecard(TASKS, DECISIONS, start=0, end=1000)}
    assert card["parallel_execution_ratio"].value == round(12 / 22, 4)
    assert card["task_success_rate"].value == 0.5
    assert card["agent_utilisation"].value == 0.75  # (22 + 8) / (16 × 2 + 8 × 1)
    assert card["orchestration_overhead"].value == 0.2  # (4 + 2) / (20 + 10)
    assert card["p95_first_answer_latency_seconds"].value == 3.0
    assert card["p95_decision_latency_seconds"].value == 1.9
    assert card["loops_stopped"].value == 2
    assert card["people_held"].value == 1
    assert [(k.name, k.met) for k in card.values() if k.target] == [
        ("parallel_execution_ratio", False), ("task_success_rate", False), ("agent_utilisation", True),
        ("orchestration_overhead", False), ("p95_decision_latency_seconds", True),
        ("p95_first_answer_latency_seconds", True)]
    assert card["parallel_execution_ratio"].target == "> 80%"
    assert card["orchestration_overhead"].target == "< 15%"


def test_an_empty_window_has_no_figures_not_zero() -> None:
    card = {k.name: k for k in scorecard(TASKS, DECISIONS, start=10_000, end=20_000)}
    assert all(card[name].value is None and card[name].met is None for name in (
        "parallel_execution_ratio", "task_success_rate", "agent_utilisation", "orchestration_overhead",
        "p95_decision_latency_seconds", "p95_first_answer_latency_seconds"))
    assert card["loops_stopped"].value == 0


def test_decisions_of_a_recorded_arena_run() -> None:
    """The ping-pong run: one loop stopped, nobody held, every decision inside the simulated second."""
    from shared.learning.scorecard import decision_from_record
    from tools import whatif

    _, journal = whatif.record_arena("samples/arena/app-bot-ping-pong.json", None)
    decisions = [decision_from_record(r) for r in journal.records if r["kind"] == "decision"]
    card = {k.name: k for k in scorecard([], decisions, start=0, end=float("inf"))}
    assert card["loops_stopped"].value == 1
    assert card["people_held"].value == 0
    assert card["p95_decision_latency_seconds"].value is not None
    assert card["p95_decision_latency_seconds"].value < 5
    assert card["task_success_rate"].value is None
