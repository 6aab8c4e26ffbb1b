"""The deployment engine under a fake Durable context (tests/harness/fake_context.py): activities run the real
Dataverse client against the fake Dataverse, whose clock is the orchestration's (a fired durable timer moves it)."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.powerplatform import engine
from shared.powerplatform.client import DataverseClient
from tests.harness.fake_context import FakeOrchestrationContext, FakeTask, drive, resolver
from tools.fakes.dataverse import FakeDataverse, build_solution_zip

ENVIRONMENTS = [{"name": "contoso-prod", "environmentSku": "Production"},
                {"name": "contoso-test", "environmentSku": "Sandbox"}]


def _token() -> Any:
    async def token() -> str:
        return "dataverse-token"

    return token


def _activities(fake: FakeDataverse, files: dict[str, bytes], log: list[str]) -> dict[str, Any]:
    def client(payload: dict[str, Any]) -> DataverseClient:
        return DataverseClient(payload["instance_url"], _token())

    def fetch(payload: dict[str, Any]) -> str:
        ref = f"blob://solutions/{payload['solution']}.zip"
        files[ref] = build_solution_zip(payload["solution"])
        return ref

    def stage(payload: dict[str, Any]) -> dict[str, Any]:
        result = asyncio.run(client(payload).stage_solution(files[payload["file_ref"]]))
        return {"upload_id": result.upload_id, "missing": [m.model_dump() for m in result.missing]}

    def import_(payload: dict[str, Any]) -> str:
        return asyncio.run(client(payload).import_solution_async(payload["upload_id"], payload["import_job_id"]))

    def poll(payload: dict[str, Any]) -> dict[str, Any]:
        operation = asyncio.run(client(payload).retrieve_async_operation(payload["async_operation_id"]))
        component = None
        if operation.outcome == "failed":
            component, _ = asyncio.run(client(payload).failing_component(payload["import_job_id"]))
        return {"operation": operation.model_dump(), "component": component}

    def record(name: str, result: Any = None) -> Any:
        def run(payload: dict[str, Any]) -> Any:
            log.append(name if name != engine.REPORT else payload["text"])
            return result
        return run

    return {engine.FETCH: fetch, engine.STAGE: stage, engine.IMPORT: import_, engine.POLL: poll,
            engine.PUBLISH: lambda p: asyncio.run(client(p).publish_all()),
            engine.REQUEST_APPROVAL: record("approval requested"), engine.REPORT: record(engine.REPORT)}


def _run(outcome: str, environment: str, events: dict[str, Any] | None = None,
         ) -> tuple[dict[str, Any], FakeOrchestrationContext, FakeDataverse, list[str]]:
    log: list[str] = []
    context = FakeOrchestrationContext(instance_id="deploy-1")
    seed = {"environments": ENVIRONMENTS, "solutions": {}, "import_outcome": outcome}
    with FakeDataverse(seed, clock=lambda: context.now) as fake:
        context._input = {"environment": environment, "solution": "contoso_app", "source": "path:o/r/app.zip",
                          "environment_sku": next(e["environmentSku"] for e in ENVIRONMENTS
                                                  if e["name"] == environment),
                          "instance_url": fake.instance_url(environment)}
        base = resolver(_activities(fake, {}, log), events=events)

        def resolve(task: FakeTask) -> Any:
            if task.kind == "timer":
                context.now = task.fire_at or context.now  # the durable timer fires: time has passed
            if task.kind == "any":
                raise AssertionError("task_any is settled by drive")
            return base(task)

        result = drive(engine.run_deployment(context), resolve, context)
    return result, context, fake, log


def test_a_three_hour_import_is_followed_on_durable_timers() -> None:
    result, context, fake, log = _run("success_after_minutes:180", "contoso-test")
    assert result["phase"] == "done"
    timers = [t for t in context.calls if t.kind == "timer"]
    assert len(timers) == result["polls"]
    first, last = timers[0].fire_at, timers[-1].fire_at
    assert first is not None
    assert last is not None
    assert (last - first).total_seconds() >= 179 * 60
    assert fake.published == ["contoso-test"]
    assert log[-1].startswith("Solution contoso_app → contoso-test: imported and published")
    [first] = [t.input for t in context.calls if t.name == engine.IMPORT]
    # The import job id comes from context.new_uuid(): the same on every replay of the same instance.
    _, again, _, _ = _run("success_after_minutes:180", "contoso-test")
    [second] = [t.input for t in again.calls if t.name == engine.IMPORT]
    assert first["import_job_id"] == second["import_job_id"]


def test_production_waits_for_the_approval_event() -> None:
    approved = {engine.APPROVAL_EVENT: {"approved": True, "by": "ada"}}
    result, context, _, log = _run("success", "contoso-prod", approved)
    assert result["phase"] == "done"
    assert log[0] == "approval requested"
    names = [t.name for t in context.calls if t.kind == "activity"]
    assert names.index(engine.REQUEST_APPROVAL) < names.index(engine.IMPORT)
    # No answer within 72 hours: the expiry timer wins and nothing is imported.
    result, context, fake, log = _run("success", "contoso-prod", {})
    assert result["phase"] == "stopped"
    assert log[-1].endswith("the approval expired after 72 hours.")
    assert fake.imports == {}


def test_an_activity_failure_fails_the_deployment_with_its_message() -> None:
    result, _, fake, log = _run("failed_after_minutes:5", "contoso-test")
    assert result["phase"] == "failed"
    assert result["failure"]["component"] == "contoso_invoice"
    assert "could not be created" in log[-1]
    assert fake.published == []
