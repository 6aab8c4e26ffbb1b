"""Occurrences and the plan cache on Cosmos DB (azure-cosmos against the local server): the ETag-conditional
writes count concurrent failures exactly once each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from shared.ai.planner import offline_plan
from shared.learning import occurrences as occ
from shared.learning import plan_cache as pc
from shared.learning.signatures import signature
from shared.store.cosmos import CosmosStore
from shared.work.tasks import TaskSpec

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_concurrent_and_redelivered_failures_count_once_each(cosmos_store: CosmosStore) -> None:
    sig = signature("orchestration", "Activity function 'run_specialist' failed: ModelError: bad plan")

    def deliver(n: int) -> bool:
        # Each failure arrives twice (a redelivery racing the first delivery).
        results = [occ.record_failure(cosmos_store, sig, failure_id=f"orch-{n % 6}", at=T0 + timedelta(minutes=n),
                                      repo="octo/tracking").counted for _ in range(2)]
        return any(results)

    with ThreadPoolExecutor(max_workers=4) as pool:
        counted = list(pool.map(deliver, range(12)))
    doc = occ.read(cosmos_store, sig.key)
    assert doc is not None
    assert doc["count"] == 6
    assert sum(counted) == 6
    assert sorted(doc["seen"]) == [f"orch-{n}" for n in range(6)]
    assert len(doc["times"]) == 6


def test_the_plan_cache_on_cosmos(cosmos_store: CosmosStore) -> None:
    task = TaskSpec(type="ci", description="Fix the build workflow", repo="octo/app")
    key = pc.cache_key(task, repo=None, planner="offline")
    plan = offline_plan(task)
    assert pc.store_plan(cosmos_store, key, plan, run_id="run-1", succeeded=True, ttl_hours=24, now=T0.isoformat())
    assert not pc.store_plan(cosmos_store, key, plan, run_id="run-2", succeeded=True, ttl_hours=24,
                             now=T0.isoformat())
    cached = pc.lookup(cosmos_store, key, ttl_hours=24)
    assert cached is not None
    assert cached.plan == plan
    assert cached.from_run == "run-1"
