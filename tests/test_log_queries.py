"""An operator's queries find what they look for: the records a run exports, read the way Application Insights
stores them (OpenTelemetry's ``LoggingHandler._get_attributes`` turns a record's non-standard attributes into log
attributes, which Azure Monitor's exporter keeps as ``customDimensions``), filtered as the README's KQL does
(``traces | where customDimensions.verdict == "loop"``, ``… customDimensions.chain_id == "c-…"``).

A real loop goes through the registered function app in-process (the arena's app-bot ping-pong), and the record
stating the loop decision is found by its verdict; invocations in a row share no id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor

from shared import telemetry
from tools import arena
from tools.harness.app_index import user_function
from tools.simulate_tasks import post_task
from tools.world import REYNOLDS_LOGIN, build_world

ROOT = Path(__file__).resolve().parents[1]
TASK = {"task": {"type": "code_review", "description": "Review the retry logic", "components": ["api"],
                 "priority": "normal", "repo": "octo/shop"}}

#: The record stating a decision (``shared.admission.judge``): "event <id> chain <id>: <verdict> (<reason>)".
DECISION = re.compile(r"^event \S+ chain \S+: (accepted|duplicate|self|loop|ignored|rejected) \(")

Row = tuple[str, dict[str, Any]]  # a ``traces`` row: message, customDimensions


class Traces:
    """Application Insights' ``traces`` table for the records exported while the fixture is active."""

    def __init__(self, exporter: InMemoryLogExporter) -> None:
        self.exporter = exporter

    def rows(self) -> list[Row]:
        """Every exported record so far."""
        return [(str(r.log_record.body), dict(r.log_record.attributes or {}))
                for r in self.exporter.get_finished_logs()]

    def where(self, **dims: str) -> list[Row]:
        """``traces | where customDimensions.<k> == "<v>"`` for every pair (KQL compares dynamic values as text)."""
        return [row for row in self.rows() if all(str(row[1].get(k)) == v for k, v in dims.items())]


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traces]:
    """Export through OpenTelemetry's own logging handler, with the log-context filter ``configure_telemetry``
    attaches to it; the loop settings at their defaults."""
    import os

    for name in [n for n in os.environ if n.startswith("LOOP_")]:
        monkeypatch.delenv(name)
    exporter = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    telemetry.install_log_context()
    root.setLevel(logging.INFO)
    try:
        yield Traces(exporter)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_a_loop_decision_is_found_by_its_verdict_and_its_chain(traces: Traces) -> None:
    scenario = arena.Scenario.model_validate_json((ROOT / "samples/arena/app-bot-ping-pong.json").read_text())
    result = asyncio.run(arena.run_scenario(scenario, "memory"))
    assert result["verdicts"]["loop"] == 1

    loops = traces.where(verdict="loop")
    assert len(loops) == 1, loops
    message, dims = loops[0]
    assert dims["chain_id"] == result["chain_id"]
    assert dims["event_id"] in message
    assert dims["rule"] in {"depth", "budget", "exchanges", "cycle", "breaker"}
    assert "instance_id" not in dims  # nothing starts for a refused event

    # The README's query: every decision of the chain, the refusals (Reynolds' own comments, the loop) included.
    chain = traces.where(chain_id=str(result["chain_id"]))
    decisions = [(match.group(1), d) for m, d in chain if (match := DECISION.match(m))]
    assert sorted(verdict for verdict, _ in decisions) == sorted(
        v for v, n in result["verdicts"].items() for _ in range(n))
    assert all(d["verdict"] == verdict and d.get("event_id") and d.get("rule") for verdict, d in decisions)
    started = [d for m, d in chain if ": started " in m]
    assert len(started) == result["verdicts"]["accepted"]
    assert all(d.get("instance_id") and d["verdict"] == "accepted" for d in started)


def test_the_query_fails_when_the_decision_is_logged_before_its_ids_are_bound(
        traces: Traces, monkeypatch: pytest.MonkeyPatch) -> None:
    # Mutation: the order this replaced (log the decision, then bind the ids) leaves the loop record unfindable.
    from shared import admission

    real_bind = admission.bind_log_context
    monkeypatch.setattr(admission, "bind_log_context", lambda **_: None)
    original_judge = admission.judge

    async def judge_then_bind(event: Any, services: Any) -> Any:
        judged = await original_judge(event, services)
        real_bind(replace=True, event_id=event.id, chain_id=judged.decision.chain_id,
                  verdict=judged.decision.verdict.value, rule=judged.decision.rule)
        return judged

    monkeypatch.setattr("triggers.ingress.judge", judge_then_bind)
    scenario = arena.Scenario.model_validate_json((ROOT / "samples/arena/app-bot-ping-pong.json").read_text())
    result = asyncio.run(arena.run_scenario(scenario, "memory"))
    assert result["verdicts"]["loop"] == 1
    assert traces.where(verdict="loop") == []


def test_no_id_leaks_from_one_invocation_into_the_next(traces: Traces) -> None:
    item = json.loads((ROOT / "samples" / "issues-opened.json").read_text())

    async def run() -> dict[str, Any]:
        with build_world() as world:
            world.seed_from_payload(item["body"])
            _, task = await post_task(world, TASK)  # binds the task's ids inside its own invocation
            after_task = telemetry.current_log_context()
            before = len(traces.rows())
            repo, number = item["body"]["repository"]["full_name"], item["body"]["issue"]["number"]
            status, own = await world.comment(repo, number, "Done.", REYNOLDS_LOGIN)
            second = traces.rows()[before:]
            # Negative control: awaiting the handler in the caller's context (what the harness did) keeps the ids.
            request = func.HttpRequest(method="POST", url="http://localhost:7071/api/orchestrations",
                                       headers={"Content-Type": "application/json"}, params={}, route_params={},
                                       body=json.dumps(TASK).encode())
            await user_function("api_start_orchestration")(req=request, client=world.client)
            leaked = telemetry.current_log_context()
            telemetry.bind_log_context(replace=True)
            return {"task": task, "after_task": after_task, "status": status, "own": own, "second": second,
                    "leaked": leaked}

    seen = asyncio.run(run())
    assert seen["after_task"] == {}
    assert seen["own"]["verdict"] == "self"
    assert seen["second"], "the second invocation logged nothing"
    for message, dims in seen["second"]:
        assert dims.get("instance_id") != seen["task"]["instance_id"], message
        assert dims.get("chain_id") != seen["task"]["chain_id"], message
    decision = [d for m, d in seen["second"] if d.get("verdict") == "self"]
    assert decision
    assert decision[0]["event_id"] == seen["own"]["event_id"]
    assert seen["leaked"].get("instance_id", "").startswith("task-")


def test_an_activity_invocation_starts_without_the_ids_of_the_one_before_on_its_thread() -> None:
    @telemetry.correlated
    def activity(payload: dict[str, Any]) -> dict[str, str]:
        return telemetry.current_log_context()

    telemetry.bind_log_context(replace=True, event_id="e-previous", chain_id="c-previous", instance_id="i-previous")
    try:
        assert activity({"event_id": "e-now"}) == {"event_id": "e-now"}
        assert telemetry.current_log_context()["event_id"] == "e-previous"  # the caller's own, restored
        context = telemetry.invocation_context()
        assert context.run(telemetry.current_log_context) == {}
    finally:
        telemetry.bind_log_context(replace=True)


def test_a_dead_lettered_message_is_found_as_rejected_with_its_reason(traces: Traces) -> None:
    from azure.servicebus import ServiceBusMessage

    async def run() -> str:
        with build_world() as world:
            message = ServiceBusMessage(b"{not json", message_id="m-poison-1", content_type="application/json")
            settlement = await world.deliver_servicebus(message)
            return settlement.outcome

    assert asyncio.run(run()) == "dead-lettered"
    rows = traces.where(verdict="rejected", rule="invalid-json")
    assert rows
    assert {d.get("event_id") for _, d in rows} == {"servicebus:m-poison-1"}
    assert "dead-letter next" in rows[-1][0]
