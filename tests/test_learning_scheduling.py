"""Learned durations and longest-critical-path-first ordering, by hand-computed figures."""

from __future__ import annotations

import pytest

from shared.ai.planner import analyze_potential
from shared.learning.scheduling import (
    critical_path_ranks,
    durations_from_agent_docs,
    ewma,
    learned_durations,
    order_ready,
    simulated_makespan,
)
from shared.work.policy import next_ready
from shared.work.tasks import Plan, Specialist, Subtask

PLATFORM, CODE = Specialist.PLATFORM, Specialist.CODE
PLAN = Plan(subtasks=[
    Subtask(id="x1", title="notify", specialist=PLATFORM),
    Subtask(id="x2", title="notify more", specialist=PLATFORM),
    Subtask(id="y", title="review", specialist=CODE),
    Subtask(id="z", title="fix", specialist=CODE, dependencies=["y"]),
])


def test_ewma_by_hand() -> None:
    assert ewma([10, 20, 10]) == pytest.approx(12.1)  # 10 → 0.3·20 + 0.7·10 = 13 → 0.3·10 + 0.7·13 = 12.1
    assert ewma([]) is None
    with pytest.raises(ValueError, match="alpha"):
        ewma([1.0], alpha=0)


def test_learned_durations_from_the_agent_statistics_documents() -> None:
    docs = [{"kind": "agent", "specialist": "code_intelligence", "durations": [4, 6]},
            {"kind": "agent", "specialist": "unknown", "durations": [1]}]
    learned = learned_durations(durations_from_agent_docs(docs), default=2.0)
    assert learned[CODE] == pytest.approx(4.6)  # 0.3·6 + 0.7·4
    assert learned[PLATFORM] == 2.0
    assert learned[Specialist.DEVOPS] == 2.0


def test_ready_subtasks_start_longest_critical_path_first() -> None:
    durations = {PLATFORM: 1.0, CODE: 5.0}
    assert critical_path_ranks(PLAN, durations) == {"x1": 1.0, "x2": 1.0, "y": 10.0, "z": 5.0}
    ready = next_ready(PLAN, {})
    assert ready == ["x1", "x2", "y"]  # the engine's plan order
    assert order_ready(PLAN, ready, durations) == ["y", "x1", "x2"]
    # Two slots: plan order runs x1, x2 (1 s), then y (5 s), then z: 11 s; critical first: y ∥ x1, x2: 10 s.
    assert simulated_makespan(PLAN, durations, 2, critical_first=False) == 11.0
    assert simulated_makespan(PLAN, durations, 2) == 10.0
    # The analysis the API and MCP tool show finds the same critical path from the same durations.
    assert analyze_potential(PLAN, durations, max_concurrency=2)["critical_path"] == ["y", "z"]


def test_equal_durations_keep_the_planners_order() -> None:
    flat = Plan(subtasks=[Subtask(id=f"s{i}", title="t", specialist=PLATFORM) for i in range(4)])
    assert order_ready(flat, ["s2", "s0", "s3"], {PLATFORM: 1.0}) == ["s0", "s2", "s3"]
