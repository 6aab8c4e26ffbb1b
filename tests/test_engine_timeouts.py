"""Timeouts in the right order, a hung specialist bounded by the activity's own deadline, the SDK's status
names, and reports a person waits for retried like answers (issue 20, items 2, 4 and 8)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from activities.tasks import _LIVE
from shared.settings import Settings
from shared.work.policy import RetryPolicy
from shared.work.task_service import SPECIALIST_DEADLINE_SECONDS, SpecialistDeadline, within_deadline
from tests.test_engine import World, make_plan, run_parent

ROOT = Path(__file__).resolve().parents[1]


def _timespan_seconds(text: str) -> float:
    hours, minutes, seconds = (float(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_timeouts_are_ordered_below_the_hosts_function_timeout() -> None:
    # A Python invocation reaching functionTimeout restarts the worker and aborts everything running on it
    # (Azure/azure-functions-host#8720): the attempt timeout keeps half of it as margin, and the activity's own
    # deadline ends the wait for a hung specialist before the attempt times out.
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    function_timeout = _timespan_seconds(host["functionTimeout"])
    attempt = RetryPolicy().attempt_timeout_seconds
    assert attempt <= function_timeout / 2
    assert attempt > SPECIALIST_DEADLINE_SECONDS
    fields = Settings.model_fields
    assert fields["openai_timeout_seconds"].default < SPECIALIST_DEADLINE_SECONDS
    assert fields["github_timeout_seconds"].default < SPECIALIST_DEADLINE_SECONDS


def test_a_hung_specialist_run_ends_at_the_deadline_and_others_run_on() -> None:
    release = threading.Event()

    def hung() -> str:
        release.wait()
        return "late"

    try:
        with pytest.raises(SpecialistDeadline, match="deadline"):
            within_deadline(hung, 0)
        assert within_deadline(lambda: "next attempt", 5) == "next attempt"
        with pytest.raises(ValueError, match="boom"):
            within_deadline(lambda: (_ for _ in ()).throw(ValueError("boom")), 5)
    finally:
        release.set()


def test_live_states_are_the_sdks_names() -> None:
    assert OrchestrationRuntimeStatus.ContinuedAsNew.value in _LIVE
    assert set(_LIVE) <= {status.value for status in OrchestrationRuntimeStatus}


def test_the_final_report_is_retried_with_durable_backoff_until_it_lands() -> None:
    calls: list[dict[str, Any]] = []

    def report(payload: dict[str, Any]) -> Any:
        calls.append(payload)
        if payload["phase"] == "succeeded" and sum(1 for c in calls if c["phase"] == "succeeded") < 4:
            raise RuntimeError("403 secondary rate limit; retry-after: 120")
        return {"comment_id": 1}

    world = World(make_plan(["a"]), report=report)
    output, ctx, _ = run_parent(world)
    finals = [c for c in calls if c["phase"] == "succeeded"]
    assert len(finals) == 4
    assert [c["attempt"] for c in finals] == [1, 2, 3, 4]
    assert len({c["idempotency_key"] for c in finals}) == 1  # one report, written once
    assert output["report_failures"] == 0
    waits = [t for t in ctx.calls if t.kind == "timer" and t.is_completed and t.fire_at is not None]
    assert len(waits) >= 3  # each retry waited on a durable timer (at least the Retry-After)
