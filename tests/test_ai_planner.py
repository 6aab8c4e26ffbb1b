"""Planner: offline determinism and routing, the model planner through the fake server, DAG helpers, client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from shared.ai.client import (
    ModelError,
    ModelThrottled,
    ModelUnavailable,
    TokenBudget,
    TokenBudgetExceeded,
    classify_openai_error,
    make_openai_client,
    retry_after_from_message,
)
from shared.ai.planner import (
    InvalidPlan,
    analyze_potential,
    dependency_levels,
    offline_plan,
    plan_task,
    validate_dag,
)
from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.work.tasks import Plan, Specialist, TaskSpec
from shared.work.wisdom import WISDOM, get_reynolds_wisdom, wisdom_group
from tools.fakes.openai import (
    FakeOpenAI,
    content,
    content_filtered,
    delayed,
    rate_limited,
    structured,
)

DEPLOYMENT = "gpt-test"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(model=DEPLOYMENT) as server:
        yield server
        assert server.unexpected == []


@pytest.fixture
def client(fake: FakeOpenAI) -> openai.OpenAI:
    made = make_openai_client(
        Settings(AZURE_OPENAI_ENDPOINT=fake.endpoint, AZURE_OPENAI_TIMEOUT_SECONDS=5), api_key="k"
    )
    assert made is not None
    return made


def _task(**kwargs: Any) -> TaskSpec:
    return TaskSpec.model_validate({"type": "investigate", "description": "Look into it.", **kwargs})


def _sub(id: str, deps: list[str] | None = None, specialist: Specialist = Specialist.CODE) -> dict[str, Any]:
    return {
        "id": id,
        "title": f"do {id}",
        "specialist": specialist.value,
        "dependencies": deps or [],
        "risk": "low",
        "writes": False,
    }


def _plan(*subtasks: dict[str, Any]) -> Plan:
    return Plan.model_validate({"subtasks": list(subtasks)})


# --- offline planner ------------------------------------------------------------------------------------


def test_offline_plan_is_deterministic_with_stable_ids() -> None:
    task = _task(description="Fix the CI pipeline. Post a summary to the Teams channel. Refactor the parser code.")
    first, second = offline_plan(task), offline_plan(task)
    assert first == second
    assert first.planner == "offline"
    assert [s.id for s in first.subtasks] == ["s1", "s2", "s3", "s4"]
    assert [s.specialist for s in first.subtasks[:3]] == [Specialist.DEVOPS, Specialist.PLATFORM, Specialist.CODE]
    summary = first.subtasks[-1]
    assert summary.title.startswith("Summarise")
    assert summary.dependencies == ["s1", "s2", "s3"]
    assert [s.writes for s in first.subtasks] == [False, True, False, False]


def test_offline_plan_one_subtask_per_component() -> None:
    task = _task(
        description="Check everything before the release.",
        components=["deploy workflow", "SharePoint site", "billing api", "docs"],
    )
    plan = offline_plan(task)
    assert [s.specialist for s in plan.subtasks[:4]] == [
        Specialist.DEVOPS,
        Specialist.PLATFORM,
        Specialist.CODE,
        # "docs" names no capability: the description's keywords ("release") decide.
        Specialist.DEVOPS,
    ]
    assert plan.subtasks[0].title.startswith("deploy workflow: ")
    assert len(plan.subtasks) == 5


@pytest.mark.parametrize(
    ("description", "specialist"),
    [
        ("Why did the build fail on main", Specialist.DEVOPS),
        ("Investigate the GitHub Actions workflows", Specialist.DEVOPS),
        ("Find free slots in the Outlook calendar", Specialist.PLATFORM),
        ("Read the m365 Graph audit", Specialist.PLATFORM),
        ("Review the class hierarchy for a bug", Specialist.CODE),
        ("Say something nice", Specialist.CODE),
    ],
)
def test_offline_routing_keywords(description: str, specialist: Specialist) -> None:
    plan = offline_plan(_task(description=description))
    assert len(plan.subtasks) == 1
    assert plan.subtasks[0].specialist == specialist
    assert plan.subtasks[0].dependencies == []


@pytest.mark.parametrize(
    ("text", "writes"),
    [
        ("Create an issue for each failing test", True),
        ("Add the label bug to the report", True),
        ("Change labels on stale issues", True),
        ("Post the result in Teams", True),
        ("Read the failing logs", False),
        ("Explain the deployment history", False),
    ],
)
def test_offline_writes_detection(text: str, writes: bool) -> None:
    subtask = offline_plan(_task(description=text)).subtasks[0]
    assert subtask.writes is writes
    assert subtask.risk == ("medium" if writes else "low")


def test_offline_plan_caps_many_clauses() -> None:
    description = " ".join(f"Check item {i}." for i in range(100))
    plan = offline_plan(_task(description=description))
    assert len(plan.subtasks) == 33
    assert validate_dag(plan) == []


def test_plan_task_without_client_is_offline() -> None:
    task = _task(description="Fix the build")
    assert plan_task(task, None, DEPLOYMENT) == offline_plan(task)


# --- model planner --------------------------------------------------------------------------------------

VALID = {
    "rationale": "two independent checks, then a summary",
    "subtasks": [
        _sub("s1", specialist=Specialist.DEVOPS),
        _sub("s2", specialist=Specialist.PLATFORM),
        _sub("s3", ["s1", "s2"]),
    ],
}


def test_model_plan_valid(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(structured(VALID))
    plan = plan_task(_task(description="Check CI and Teams", repo="octo/repo"), client, DEPLOYMENT)
    assert plan.planner == "azure-openai"
    assert [s.id for s in plan.subtasks] == ["s1", "s2", "s3"]
    request = fake.requests[0]
    assert request["model"] == DEPLOYMENT
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    schema = request["response_format"]["json_schema"]["schema"]
    item = schema["properties"]["subtasks"]["items"]
    assert item["properties"]["specialist"]["enum"] == ["devops", "platform", "code_intelligence"]
    assert set(item["required"]) == {"id", "title", "specialist", "dependencies", "risk", "writes"}
    user = request["messages"][1]["content"]
    assert '<untrusted source="task-description"' in user
    assert "Check CI and Teams" in user


def test_model_plan_writes_are_not_trusted_to_the_model(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    sneaky = {**_sub("s1"), "title": "Close the issue and add labels", "writes": False}
    fake.script(structured({"rationale": "", "subtasks": [sneaky]}))
    plan = plan_task(_task(), client, DEPLOYMENT)
    assert plan.subtasks[0].writes is True


@pytest.mark.parametrize(
    "invalid",
    [
        "not json at all",
        json.dumps({"rationale": "", "subtasks": [_sub("s1", ["s2"]), _sub("s2", ["s1"])]}),  # cycle
        json.dumps({"rationale": "", "subtasks": [_sub("s1", ["nope"])]}),  # unknown dependency
        json.dumps({"rationale": "", "subtasks": [_sub("s1"), _sub("s1")]}),  # duplicate id
        json.dumps({"rationale": "", "subtasks": [{**_sub("s1"), "specialist": "hacker"}]}),  # bad enum
        json.dumps({"rationale": "", "subtasks": []}),
    ],
)
def test_model_plan_invalid_then_valid_retries_once(fake: FakeOpenAI, client: openai.OpenAI, invalid: str) -> None:
    fake.script(content(invalid), structured(VALID))
    plan = plan_task(_task(), client, DEPLOYMENT)
    assert len(plan.subtasks) == 3
    assert len(fake.requests) == 2
    retry_messages = fake.requests[1]["messages"]
    assert retry_messages[-1]["role"] == "user"
    assert "invalid" in retry_messages[-1]["content"]


def test_model_plan_invalid_twice_is_model_error(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    cycle = {"rationale": "", "subtasks": [_sub("s1", ["s2"]), _sub("s2", ["s1"])]}
    fake.script(structured(cycle), structured(cycle))
    with pytest.raises(ModelError, match="invalid plan twice: dependency cycle"):
        plan_task(_task(), client, DEPLOYMENT)
    assert len(fake.requests) == 2


def test_model_plan_429_is_throttled_with_retry_after_ms(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(rate_limited(retry_after_ms=30000, retry_after="31"))
    with pytest.raises(ModelThrottled) as caught:
        plan_task(_task(), client, DEPLOYMENT)
    assert caught.value.retry_after_seconds == 30.0
    assert retry_after_from_message(str(caught.value)) == 30.0
    assert len(fake.requests) == 1  # the SDK does not retry


def test_model_plan_429_with_retry_after_seconds(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(rate_limited(retry_after="7"))
    with pytest.raises(ModelThrottled) as caught:
        plan_task(_task(), client, DEPLOYMENT)
    assert caught.value.retry_after_seconds == 7.0


def test_model_plan_content_filter_is_permanent(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(content_filtered())
    with pytest.raises(ModelError, match="content filter") as caught:
        plan_task(_task(), client, DEPLOYMENT)
    assert not isinstance(caught.value, ModelThrottled)


def test_timeout_is_unavailable(fake: FakeOpenAI) -> None:
    client = make_openai_client(
        Settings(AZURE_OPENAI_ENDPOINT=fake.endpoint, AZURE_OPENAI_TIMEOUT_SECONDS=0.2), api_key="k"
    )
    assert client is not None
    fake.script(delayed(1.0, structured(VALID)))
    with pytest.raises(ModelUnavailable):
        plan_task(_task(), client, DEPLOYMENT)


def test_planner_charges_the_budget(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    budget = TokenBudget(1000)
    fake.script(structured(VALID))
    plan_task(_task(), client, DEPLOYMENT, budget=budget)
    assert budget.used == 70
    spent = TokenBudget(1000, used=1000)
    with pytest.raises(TokenBudgetExceeded):
        plan_task(_task(), client, DEPLOYMENT, budget=spent)
    assert len(fake.requests) == 1


# --- client ---------------------------------------------------------------------------------------------


def test_no_endpoint_means_offline() -> None:
    assert make_openai_client(Settings()) is None


def test_plain_http_endpoint_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        make_openai_client(Settings(AZURE_OPENAI_ENDPOINT="http://example.openai.azure.com"), api_key="k")


class _Token:
    token = "entra-token"
    expires_on = 4_102_444_800


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> _Token:
        self.scopes.append(scopes)
        return _Token()

    def get_token_info(self, *scopes: str, **kwargs: Any) -> _Token:
        self.scopes.append(scopes)
        return _Token()


def test_keyless_client_sends_entra_bearer_token(fake: FakeOpenAI) -> None:
    credential = FakeCredential()
    client = make_openai_client(Settings(AZURE_OPENAI_ENDPOINT=fake.endpoint + "/"), credential)  # type: ignore[arg-type]
    assert client is not None
    assert client.max_retries == 0
    fake.script(structured(VALID))
    plan_task(_task(), client, DEPLOYMENT)
    assert fake.headers[-1]["authorization"] == "Bearer entra-token"
    assert credential.scopes == [("https://cognitiveservices.azure.com/.default",)]


def test_unknown_path_is_recorded() -> None:
    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.endpoint + "/v1/", api_key="k", max_retries=0)
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
        assert isinstance(classify_openai_error(caught.value), ModelError)
        assert server.unexpected == ["POST /v1/chat/completions"]


# --- DAG helpers ----------------------------------------------------------------------------------------


def test_validate_dag_problems() -> None:
    assert validate_dag(_plan(_sub("a"), _sub("b", ["a"]))) == []
    assert validate_dag(_plan(_sub("a", ["a"]))) == ["subtask a depends on itself"]
    assert validate_dag(_plan(_sub("a"), _sub("a"))) == ["duplicate subtask ids: a"]
    assert validate_dag(_plan(_sub("a", ["x"]))) == ["subtask a depends on unknown ids: x"]
    cyclic = validate_dag(_plan(_sub("a"), _sub("b", ["c"]), _sub("c", ["d"]), _sub("d", ["b"]), _sub("e", ["d"])))
    assert cyclic == ["dependency cycle among: b, c, d, e"]


def test_dependency_levels() -> None:
    plan = _plan(_sub("a"), _sub("b"), _sub("c", ["a"]), _sub("d", ["c", "b"]), _sub("e"))
    assert dependency_levels(plan) == [["a", "b", "e"], ["c"], ["d"]]
    with pytest.raises(InvalidPlan):
        dependency_levels(_plan(_sub("a", ["b"]), _sub("b", ["a"])))


def test_analyze_potential() -> None:
    plan = _plan(
        _sub("a", specialist=Specialist.DEVOPS),
        _sub("b", specialist=Specialist.PLATFORM),
        _sub("c", specialist=Specialist.CODE),
        _sub("d", ["a", "b", "c"]),
    )
    durations = {Specialist.DEVOPS: 4.0, Specialist.PLATFORM: 2.0, Specialist.CODE: 1.0}
    result = analyze_potential(plan, durations)
    assert result["sequential_time"] == 8.0
    assert result["parallel_time"] == 5.0
    assert result["critical_path"] == ["a", "d"]
    assert result["critical_path_time"] == 5.0
    assert result["max_concurrency"] == 3
    p = 7.0 / 8.0
    assert result["parallel_fraction"] == round(p, 4)
    assert result["predicted_speedup"] == round(1 / ((1 - p) + p / 3), 4)
    capped = analyze_potential(plan, durations, max_concurrency=2)
    assert capped["max_concurrency"] == 2
    assert capped["parallel_time"] == 4.0 + 1.0 + 1.0


# --- wisdom ---------------------------------------------------------------------------------------------


def test_wisdom_is_deterministic_and_grouped() -> None:
    assert sum(len(lines) for lines in WISDOM.values()) >= 20
    assert get_reynolds_wisdom("Loop detected  at depth 4") == get_reynolds_wisdom("loop detected at DEPTH 4")
    assert get_reynolds_wisdom("loop detected") in WISDOM["loop"]
    assert get_reynolds_wisdom("activity failed with error") in WISDOM["failure"]
    assert get_reynolds_wisdom("waiting for approval") in WISDOM["approval"]
    assert get_reynolds_wisdom("all subtasks succeeded") in WISDOM["success"]
    assert get_reynolds_wisdom("starting") in WISDOM["default"]
    assert wisdom_group("redeploy requested") == "default"
    picks = {get_reynolds_wisdom(f"task {i} completed") for i in range(50)}
    assert len(picks) > 1
