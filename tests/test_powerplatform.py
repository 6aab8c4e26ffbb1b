"""Power Platform foundations: the deployment state machine driven through the Dataverse client against the
fake Dataverse / BAP API (tools/fakes/dataverse.py), with the fake's clock standing in for durable timers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.powerplatform.asyncops import AsyncOperation, outcome_of
from shared.powerplatform.client import DataverseClient, DataverseError, PowerPlatformAdmin, failing_component_of
from shared.powerplatform.deploy import (
    Deployment,
    next_step,
    on_approval,
    on_error,
    on_fetched,
    on_import_started,
    on_polled,
    on_published,
    on_staged,
    poll_delay,
    report,
    start,
)
from tools.fakes.dataverse import FakeDataverse, build_solution_zip

ENVIRONMENTS = [
    {"name": "contoso-prod", "displayName": "Contoso", "environmentSku": "Production"},
    {"name": "contoso-test", "displayName": "Contoso test", "environmentSku": "Sandbox"},
    {"name": "orphan", "environmentSku": "Sandbox", "application_user": "missing"},
    {"name": "no-role", "environmentSku": "Sandbox", "application_user": "no_role"},
]
SOLUTIONS = {"contoso-prod": [{"uniquename": "contoso_core", "version": "2.0.0.0"}], "contoso-test": []}
JOB = "7d1f9a57-1111-4c7e-9a57-2f6c1d0e9b10"


def _fake(outcome: str) -> Iterator[FakeDataverse]:
    with FakeDataverse({"environments": ENVIRONMENTS, "solutions": SOLUTIONS, "import_outcome": outcome}) as fake:
        yield fake


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeDataverse]:
    yield from _fake(getattr(request, "param", "success"))


def _token(value: str = "dataverse-token") -> Any:
    async def token() -> str:
        return value

    return token


async def _deploy(fake: FakeDataverse, environment: str, solution_zip: bytes, *, approve: bool | None = None,
                  max_hours: int = 12) -> tuple[Deployment, list[str]]:
    """What the orchestration will do: ask the state machine, run the activity (or the timer), feed it back."""
    admin = PowerPlatformAdmin(_token(), base_url=fake.base_url)
    env = await admin.get_environment(environment)
    assert env.instance_api_url is not None
    client = DataverseClient(env.instance_api_url, _token())
    state = start(environment, "contoso_app", "release:v1.2.0", environment_sku=env.environment_sku,
                  max_hours=max_hours)
    steps: list[str] = []
    while True:
        step = next_step(state)
        steps.append(step.step)
        now = fake.clock()
        if step.step == "fetch":
            state = on_fetched(state, "blob://solutions/contoso_app_1_2_0.zip")
        elif step.step == "stage":
            staged = await client.stage_solution(solution_zip)
            state = on_staged(state, staged.upload_id, staged.missing)
        elif step.step == "request_approval":
            assert approve is not None, "a production import asked for an approval the test did not expect"
            state = on_approval(state, approve, "ada")
        elif step.step == "import":
            state = on_import_started(state, await client.import_solution_async(state.upload_id or "", JOB), now)
        elif step.step == "wait_then_poll":
            assert step.at is not None
            fake.advance(minutes=(step.at - now).total_seconds() / 60)  # the durable timer fires
            operation = await client.retrieve_async_operation(state.async_operation_id or "")
            component = None
            if operation.outcome == "failed":
                component, _ = await client.failing_component(JOB)
            state = on_polled(state, operation, fake.clock(), component=component)
        elif step.step == "publish":
            await client.publish_all()
            state = on_published(state)
        else:
            return state, steps


async def test_missing_dependency_stops_before_importing_and_names_it(fake: FakeDataverse) -> None:
    solution = build_solution_zip("contoso_app", requires=(
        {"schemaName": "contoso_core_table", "displayName": "Core table", "solution": "contoso_core (2.0.0.0)"},
        {"schemaName": "msdyn_mapcontrol", "displayName": "Map control", "solution": "msdyn_Maps (1.0.0.0)",
         "type": "66"},
    ))
    state, steps = await _deploy(fake, "contoso-test", solution)
    assert steps == ["fetch", "stage", "report"]
    assert state.phase == "stopped"
    assert [dep.required_component for dep in state.missing] == ["Core table", "Map control"]
    assert "2 missing dependencies in contoso-test: Core table, needed by contoso_invoice" in report(state)
    assert fake.imports == {}
    assert not [r for r in fake.requests if r.path.endswith("ImportSolutionAsync")]
    # The same file into production, where contoso_core is installed: only the map control is missing.
    state, _ = await _deploy(fake, "contoso-prod", solution)
    assert [dep.required_component for dep in state.missing] == ["Map control"]


async def test_three_hour_import_is_followed_to_success_on_timers() -> None:
    for fake in _fake("success_after_minutes:180"):
        state, steps = await _deploy(fake, "contoso-test", build_solution_zip("contoso_app"))
        assert state.phase == "done", report(state)
        assert steps[:3] == ["fetch", "stage", "import"]
        assert steps[-2:] == ["publish", "report"]
        polls = steps.count("wait_then_poll")
        assert polls == state.polls
        assert 15 < polls < 40  # minutes at first, then every 15 minutes: not one call a second for hours
        assert state.import_started_at is not None
        assert fake.clock() - state.import_started_at >= timedelta(minutes=180)
        assert fake.published == ["contoso-test"]
        assert {"uniquename": "contoso_app", "version": "1.0.0.0"} in fake.solutions["contoso-test"]
        assert "imported and published" in report(state)


async def test_failed_import_reports_dataverse_text_and_component() -> None:
    for fake in _fake("failed_after_minutes:25"):
        state, steps = await _deploy(fake, "contoso-test", build_solution_zip("contoso_app"))
        assert state.phase == "failed"
        assert "publish" not in steps
        assert state.failure is not None
        assert state.failure.component == "contoso_invoice"
        assert "contoso_amount of entity contoso_invoice could not be created" in state.failure.message
        assert "failed at import (component contoso_invoice)" in report(state)
        assert fake.published == []


async def test_production_waits_for_approval_and_a_rejection_imports_nothing(fake: FakeDataverse) -> None:
    state, steps = await _deploy(fake, "contoso-prod", build_solution_zip("contoso_app"), approve=False)
    assert steps == ["fetch", "stage", "request_approval", "report"]
    assert report(state).endswith("the import was rejected by ada.")
    assert fake.imports == {}
    state, steps = await _deploy(fake, "contoso-prod", build_solution_zip("contoso_app"), approve=True)
    assert steps[:4] == ["fetch", "stage", "request_approval", "import"]
    assert state.phase == "done"


def test_an_unknown_sku_is_treated_as_production_and_polls_give_up_after_max_hours() -> None:
    assert start("e", "s", "path:x", environment_sku=None).production
    assert not start("e", "s", "path:x", environment_sku="Sandbox").production
    state = on_staged(on_fetched(start("e", "s", "p", environment_sku="Sandbox", max_hours=1), "ref"), "u", [])
    from datetime import UTC, datetime
    t0 = datetime(2026, 12, 8, tzinfo=UTC)
    state = on_import_started(state, "op", t0)
    running = AsyncOperation(asyncoperationid="op", statecode=2, statuscode=20)
    state = on_polled(state, running, t0 + timedelta(minutes=30))
    assert state.phase == "poll"
    assert state.next_poll_at == t0 + timedelta(minutes=31)
    state = on_polled(state, running, t0 + timedelta(hours=1))
    assert state.phase == "failed"
    assert "still running after 1 hours" in report(state)
    with pytest.raises(ValueError, match="not poll"):
        on_polled(state, running, t0)
    assert [poll_delay(n).seconds // 60 for n in (0, 9, 10, 19, 20, 99)] == [1, 1, 5, 5, 15, 15]


def test_async_operation_states_from_the_reference() -> None:
    assert outcome_of(0, 10) == "running"
    assert outcome_of(2, 20) == "running"
    assert outcome_of(1, 10) == "suspended"
    assert outcome_of(3, 30) == "succeeded"
    assert outcome_of(3, 31) == "failed"
    assert outcome_of(3, 32) == "canceled"
    assert failing_component_of("") == (None, None)
    assert failing_component_of("<x><y name='a'><result result='failure' errortext='boom'/></y></x>") == ("a", "boom")


async def test_refusals_as_the_services_answer(fake: FakeDataverse) -> None:
    admin = PowerPlatformAdmin(_token(), base_url=fake.base_url)
    environments = await admin.list_environments()
    assert [(e.name, e.production) for e in environments][:2] == [("contoso-prod", True), ("contoso-test", False)]
    with pytest.raises(DataverseError) as unknown:
        await admin.get_environment("nope")
    assert (unknown.value.status, unknown.value.code) == (404, "EnvironmentNotFound")
    with pytest.raises(DataverseError) as no_token:
        await DataverseClient(fake.instance_url("contoso-test"), _token("wrong")).list_solutions()
    assert no_token.value.status == 401
    with pytest.raises(DataverseError) as no_user:
        await DataverseClient(fake.instance_url("orphan"), _token()).list_solutions()
    assert (no_user.value.status, no_user.value.code) == (403, "0x80072560")
    with pytest.raises(DataverseError, match="missing prvImportSolution privilege") as no_role:
        await DataverseClient(fake.instance_url("no-role"), _token()).stage_solution(build_solution_zip("x"))
    assert no_role.value.status == 403
    client = DataverseClient(fake.instance_url("contoso-test"), _token())
    with pytest.raises(DataverseError, match="solution file is invalid") as bad:
        await client.stage_solution(b"not a zip")
    assert bad.value.status == 400
    with pytest.raises(DataverseError, match="does not name a staged solution"):
        await client.import_solution_async("00000000-0000-0000-0000-000000000000", JOB)
    with pytest.raises(DataverseError) as gone:
        await client.retrieve_async_operation("00000000-0000-0000-0000-000000000001")
    assert gone.value.status == 404
    with pytest.raises(DataverseError) as unknown_env:
        await DataverseClient(fake.instance_url("ghost"), _token()).list_solutions()
    assert unknown_env.value.status == 404


async def test_failed_flow_runs_are_readable() -> None:
    seed = {"environments": ENVIRONMENTS[:2], "flow_runs": [
        {"name": "08585", "workflowname": "Invoice sync", "status": "Failed", "errorcode": "ActionFailed",
         "errormessage": "The 'Create row' action failed: 403", "starttime": "2026-12-08T08:00:00Z"},
        {"name": "08586", "workflowname": "Invoice sync", "status": "Succeeded"},
    ]}
    with FakeDataverse(seed) as fake:
        runs = await DataverseClient(fake.instance_url("contoso-test"), _token()).failed_flow_runs()
    assert [(r["name"], r["errorcode"]) for r in runs] == [("08585", "ActionFailed")]
    assert on_error(start("e", "s", "p", environment_sku="Sandbox"), "boom", code="0x1").failure is not None


def test_deploy_solution_tool_content_and_operator_explanations() -> None:
    from pydantic import ValidationError

    from shared.powerplatform.tool import DeploySolution, explain

    ok = DeploySolution(environment="contoso-prod", solution="contoso_app",
                        source="release:octo-org/ops@v1.2.0/contoso_app_managed.zip")
    assert ok.target == "powerplatform:contoso-prod/contoso_app"
    assert ok.source_repo() == "octo-org/ops"
    assert DeploySolution(environment="Default-7d1f9a57-1111-4c7e-9a57-2f6c1d0e9b10", solution="x1",
                          source="path:octo-org/ops/solutions/x1.zip").source_repo() == "octo-org/ops"
    for bad in ({"source": "https://evil.example/x.zip"}, {"source": "path:octo-org/ops/../x.zip"},
                {"solution": "1bad"}, {"environment": "Prod Env"}):
        with pytest.raises(ValidationError):
            DeploySolution.model_validate({"environment": "contoso-prod", "solution": "contoso_app",
                                           "source": "path:o/r/a.zip", **bad})
    assert "add its managed identity as an application user" in explain(
        DataverseError(403, "0x80072560", "The user is not a member of the organization."), "contoso-prod")
    assert explain(DataverseError(401, "Unauthorized", ""), "e").startswith("Dataverse in e refused the app's token")
    assert explain(DataverseError(400, "0x1", "bad"), "e") == "Dataverse in e refused (400 0x1): bad"
