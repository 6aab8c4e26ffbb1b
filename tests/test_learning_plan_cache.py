"""The plan cache: exact key, reuse with 0 planner calls, TTL, off switch, failures never cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.ai.planner import offline_plan
from shared.learning import plan_cache as pc
from shared.settings import Settings
from shared.store.memory import MemoryStore
from shared.work.tasks import Plan, TaskSpec

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TASK = TaskSpec(type="ci", description="Fix the failing build workflow and review the test module",
                components=["ci", "tests"], repo="octo/app")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def plan_with_cache(store: MemoryStore, task: TaskSpec, calls: list[str], run_id: str, *, ok: bool = True,
                    ttl: int = 24) -> tuple[Plan, str | None]:
    """What the engine's plan step would do: reuse, else plan (counted) and cache when the run succeeded."""
    key = pc.cache_key(task, repo=None, planner="offline")
    cached = pc.lookup(store, key, ttl_hours=ttl)
    if cached is not None:
        return cached.plan, cached.notice
    calls.append(run_id)
    plan = offline_plan(task)
    pc.store_plan(store, key, plan, run_id=run_id, succeeded=ok, ttl_hours=ttl, now=T0.isoformat())
    return plan, None


def test_a_repeated_task_reuses_the_plan_with_no_planner_call() -> None:
    store, calls = MemoryStore(clock=Clock()), list[str]()
    first, notice = plan_with_cache(store, TASK, calls, "run-1")
    assert notice is None
    again, notice = plan_with_cache(store, TASK.model_copy(update={"description": "  fix the failing BUILD "
                                    "workflow and review   the test module "}), calls, "run-2")
    assert again == first
    assert calls == ["run-1"]
    assert notice == f"plan reused from run-1 (cached {T0.isoformat()}, 0 planner tokens)"


def test_same_task_same_key_and_each_part_changes_it() -> None:
    key = pc.cache_key(TASK, repo=None, planner="offline")
    assert key == pc.cache_key(TASK.model_copy(update={"components": ["tests", "ci"]}), repo=None, planner="offline")
    assert key.digest == pc.cache_key(TASK, repo=None, planner="offline").digest
    others = [
        pc.cache_key(TASK.model_copy(update={"description": "Fix the failing deploy workflow"}), repo=None,
                     planner="offline"),
        pc.cache_key(TASK.model_copy(update={"repo": "octo/other"}), repo=None, planner="offline"),
        pc.cache_key(TASK, repo=None, planner="azure-openai:chat"),
        pc.cache_key(TASK, repo=None, planner="offline", prompt="v-next"),
        pc.cache_key(TASK, repo=None, planner="offline",
                     profiles={**pc.profile_versions(), "devops": "edited-profile"}),
    ]
    assert len({key.digest, *(o.digest for o in others)}) == 1 + len(others)


def test_versions_are_derived_from_the_prompts() -> None:
    assert len(pc.prompt_version()) == 12
    assert set(pc.profile_versions()) == {"devops", "platform", "code_intelligence"}
    assert len(set(pc.profile_versions().values())) == 3


def test_a_failed_run_never_fills_the_cache_and_ttl_and_off_switch_hold() -> None:
    clock = Clock()
    store, calls = MemoryStore(clock=clock), list[str]()
    plan_with_cache(store, TASK, calls, "run-1", ok=False)
    plan_with_cache(store, TASK, calls, "run-2")
    plan_with_cache(store, TASK, calls, "run-3")
    assert calls == ["run-1", "run-2"]
    clock.now = T0 + timedelta(hours=24, seconds=1)  # the store expires the document after its ttl
    plan_with_cache(store, TASK, calls, "run-4")
    assert calls == ["run-1", "run-2", "run-4"]
    plan_with_cache(store, TASK, calls, "run-5", ttl=0)
    assert calls[-1] == "run-5"
    assert Settings.model_validate({"PLAN_CACHE_TTL_HOURS": "0"}).plan_cache_ttl_hours == 0
    assert Settings.model_validate({}).plan_cache_ttl_hours == 24
