"""The operational metrics the alerts and the workbook read are really emitted by the code paths.

A real OpenTelemetry SDK meter provider with an in-memory reader stands in for Azure Monitor's exporter.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import telemetry
from tools.arena import Scenario, run_scenario
from tools.world import build_world

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reader() -> InMemoryMetricReader:
    memory = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[memory]))
    telemetry._instruments.clear()  # instruments made before the provider was set are proxies: start afresh
    return memory


def _sums(reader: InMemoryMetricReader) -> dict[str, Counter[tuple[tuple[str, Any], ...]]]:
    data = reader.get_metrics_data()
    found: dict[str, Counter[tuple[tuple[str, Any], ...]]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value: Any = getattr(point, "value", None)
                    if value is None:
                        value = getattr(point, "count", 0)
                    attributes = tuple(sorted((point.attributes or {}).items()))
                    found.setdefault(metric.name, Counter())[attributes] += int(value)
    return found


def test_a_loop_emits_verdicts_loops_stopped_and_github_writes(reader: InMemoryMetricReader) -> None:
    scenario = Scenario.model_validate_json((ROOT / "samples" / "arena" / "app-bot-ping-pong.json").read_text())
    result = asyncio.run(run_scenario(scenario, "memory"))
    assert result["passed"]
    sums = _sums(reader)
    verdicts = {dict(k)["verdict"]: v for k, v in sums[telemetry.VERDICTS].items()}
    assert verdicts["accepted"] >= result["verdicts"]["accepted"]
    assert verdicts["loop"] >= 1
    assert sum(sums[telemetry.LOOPS_STOPPED].values()) >= 1
    assert {dict(k)["rule"] for k in sums[telemetry.LOOPS_STOPPED]} <= {"depth", "cycle", "amplification",
                                                                        "budget", "loop-suspect"}
    assert sum(sums[telemetry.GITHUB_WRITES].values()) >= result["reynolds_effects"]
    assert sum(sums[telemetry.ORCHESTRATIONS].values()) >= 1


def test_an_opened_breaker_is_counted_for_the_alert(reader: InMemoryMetricReader) -> None:
    # The loop rules stop the bundled loops before any breaker trips: a breaker tuned to open on an
    # automation's second counted exchange shows the wiring.
    world_settings = {"LOOP_COUNTERPART_MAX_WRITES": "1", "LOOP_CHAIN_BUDGET": "50", "LOOP_MAX_AUTOMATED_DEPTH": "50"}
    with build_world(profile="reply-all", extra_settings=world_settings) as world:
        world.ensure_issue("octo/app", 7, "Crash on start", "alice")
        world.github.add_user("echo[bot]", type="Bot")
        for body in ("Build report one", "Build report two", "Build report three"):
            world.clock.advance(5)
            asyncio.run(world.comment("octo/app", 7, body, "echo[bot]"))
        assert any("Reynolds · paused" in str(w.resource.get("body")) for w in world.reynolds_writes)
    sums = _sums(reader)
    assert sum(sums[telemetry.BREAKER_OPENED].values()) >= 1
    assert any(dict(k)["state"] == "open" for k in sums[telemetry.BREAKER_TRANSITIONS])