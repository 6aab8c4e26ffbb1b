"""orchestrate_task end to end through the world: the HTTP API, the real Durable replay, the activities, the
effect ledger and the fake GitHub; plus the activities' idempotency and the model-backed specialist path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit import GitHub

from orchestrators import engine
from shared import names
from shared.ai.client import make_openai_client
from shared.loop.marker import find_markers
from shared.platforms.github.pacer import get_pacer, set_pacer
from shared.platforms.github.read_tools import GitHubReadTools, ToolNotAllowed
from shared.work.agents import BREAKER_FAILURES, AgentRegistry, percentile
from shared.work.task_service import TaskService, set_model_client
from shared.work.tasks import Specialist
from tools.fakes.github import WRITE_METHODS
from tools.fakes.openai import FakeOpenAI, content_filtered, rate_limited, structured, tool_call
from tools.harness.app_index import user_function
from tools.simulate_tasks import TASK_SETTINGS, TRACKING_REPO, prepare, run_task
from tools.world import SIMULATE_MARKER_KEY, World, build_world

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "task-fanout.json"
CONTENT_CREATING = {"comment", "issue"}


@pytest.fixture
def world() -> Iterator[World]:
    with build_world(extra_settings=TASK_SETTINGS) as built:
        prepare(built)
        yield built
        set_pacer(None)
        built.github.assert_no_unexpected()


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def write_requests(world: World) -> list[Any]:
    return [call for call in world.github.writes() if call.method in WRITE_METHODS]


def reynolds_comments(world: World, repo: str, number: int) -> list[dict[str, Any]]:
    return [c for c in world.github.comments(repo, number) if c["user"]["login"] == "reynolds[bot]"]


def report_payload(instance_id: str, sequence: int, phase: str, labels: list[str], *,
                   tracking_issue: str | None = None, states: dict[str, str] | None = None) -> dict[str, Any]:
    return {"instance_id": instance_id, "idempotency_key": f"{instance_id}:report:{sequence}", "sequence": sequence,
            "final": phase not in ("started", "needs_approval"), "phase": phase, "title": "review: the code",
            "event_id": "delivery-1", "chain_id": "c-chain-1", "depth": 0, "tracking_issue": tracking_issue,
            "states": states or {"s1": "running"}, "outcomes": [], "labels": labels, "error": None}


def subtask_payload(attempt: int = 1, *, specialist: str = "code_intelligence", repo: str | None = None,
                    writes: bool = False) -> dict[str, Any]:
    task: dict[str, Any] = {"type": "review", "description": "Review the retry logic"}
    if repo:
        task["repo"] = repo
    return {"instance_id": "inst-1", "subtask_instance_id": "inst-1:s1", "idempotency_key": "inst-1:s1",
            "attempt": attempt, "subtask": {"id": "s1", "title": "Review retry.py", "specialist": specialist,
                                            "writes": writes},
            "task": task, "event_id": "e1", "chain_id": "c1", "depth": 0, "tracking_issue": None,
            "dependency_summaries": {}}


# --- end to end ------------------------------------------------------------------------------------------------


async def test_sixteen_component_task_completes_within_the_window_with_constant_github_writes(world: World) -> None:
    line = await run_task(world, sample())

    assert line["status"] == 202
    assert line["runtime_status"] == "Completed"
    assert 1 <= line["max_running"] <= 8
    assert len(line["subtasks"]) == 17  # 16 components + the summary that depends on them
    assert {s["status"] for s in line["subtasks"]} == {"succeeded"}
    run = world.client.run_of(line["instance_id"])
    assert run.max_concurrent <= 8

    requests = write_requests(world)
    created = [call for call in requests if call.method == "POST"]
    assert len(created) <= 3, created  # the tracking issue (with its labels) and the status comment
    assert len(requests) <= 4, [(c.method, c.path) for c in requests]  # + one edit and one label change
    assert {e["kind"] for e in line["effects"]} <= {"issue", "comment", "comment_edit", "label", "unlabel"}
    assert sum(1 for e in line["effects"] if e["kind"] in CONTENT_CREATING) == 2

    comments = reynolds_comments(world, TRACKING_REPO, 1)
    assert len(comments) == 1
    body = comments[0]["body"]
    assert "✅ Done" in body
    assert "17/17 done" in body
    assert "code_intelligence (offline): api-gateway" in body
    (marker,) = find_markers(body, SIMULATE_MARKER_KEY)
    assert marker.valid
    assert world.github.labels(TRACKING_REPO, 1) == ["reynolds:succeeded"]


async def test_status_api_reports_the_finished_run(world: World) -> None:
    line = await run_task(world, sample())
    status = await world.client.get_status(line["instance_id"])
    assert status.output["succeeded"] == 17
    assert status.custom_status["phase"] == "succeeded"


# --- the report activity: idempotent create-then-edit -----------------------------------------------------------


def test_report_rerun_creates_no_second_comment_and_edits_in_place(world: World) -> None:
    world.ensure_issue("octo/repo", 7)
    report = user_function(names.REPORT_STATUS)
    first = report_payload("inst-r", 1, "started", ["reynolds:running"], tracking_issue="octo/repo#7")

    created = report(first)
    assert created["created"] is True
    assert report(first)["created"] is False  # a re-executed activity writes nothing
    assert len(reynolds_comments(world, "octo/repo", 7)) == 1
    before = len(write_requests(world))

    waiting = report_payload("inst-r", 2, "needs_approval", ["reynolds:needs-approval", "reynolds:running"],
                             tracking_issue="octo/repo#7", states={"s1": "waiting"})
    assert report(waiting)["edited"] is True
    assert report(waiting)["edited"] is False
    final = report_payload("inst-r", 3, "succeeded", ["reynolds:succeeded"], tracking_issue="octo/repo#7",
                           states={"s1": "succeeded"})
    assert report(final)["edited"] is True
    report(final)

    (comment,) = reynolds_comments(world, "octo/repo", 7)
    assert comment["id"] == created["comment_id"]
    assert "✅ Done" in comment["body"]
    edits = [c for c in write_requests(world)[before:] if c.method == "PATCH" and "/issues/comments/" in c.path]
    assert len(edits) == 2
    assert world.github.labels("octo/repo", 7) == ["reynolds:succeeded"]


def test_labels_are_exact_and_keep_other_labels(world: World) -> None:
    world.ensure_issue("octo/repo", 8)
    world.github.add_labels("octo/repo", 8, ["bug", "reynolds:running", "reynolds:stale"], login="reynolds[bot]")
    report = user_function(names.REPORT_STATUS)
    report(report_payload("inst-l", 1, "failed", ["reynolds:failed"], tracking_issue="octo/repo#8"))
    assert sorted(world.github.labels("octo/repo", 8)) == ["bug", "reynolds:failed"]


def test_a_crash_after_posting_is_reconciled_from_the_comment_marker(world: World) -> None:
    world.ensure_issue("octo/repo", 9)
    report = user_function(names.REPORT_STATUS)
    payload = report_payload("inst-c", 1, "started", ["reynolds:running"], tracking_issue="octo/repo#9")
    posted = report(payload)
    # Forget the result, as if the activity died between GitHub's answer and the ledger write.
    doc = world.store.read("fx:inst-c:status", "fx:inst-c:status")
    world.store.upsert({**{k: v for k, v in doc.items() if k != "_etag"}, "state": "intent", "resource_id": None})

    again = report(payload)
    assert again["created"] is False
    assert again["comment_id"] == posted["comment_id"]
    assert len(reynolds_comments(world, "octo/repo", 9)) == 1


def test_the_tracking_issue_is_opened_once(world: World) -> None:
    report = user_function(names.REPORT_STATUS)
    first = report(report_payload("inst-t", 1, "started", ["reynolds:running"]))
    second = report(report_payload("inst-t", 3, "succeeded", ["reynolds:succeeded"]))
    assert first["tracking_issue"] == second["tracking_issue"] == f"{TRACKING_REPO}#1"
    issue = world.github.issue(TRACKING_REPO, 1)
    assert issue["title"].startswith("Reynolds: review")
    assert [c.method for c in write_requests(world)].count("POST") == 2  # issue (with labels) + comment


def test_a_secondary_rate_limit_pauses_writes_and_the_retry_posts_once(world: World) -> None:
    from githubkit.exception import RequestFailed


    world.ensure_issue("octo/repo", 11)
    world.github.secondary_rate_limit("POST", r"/comments$", retry_after=30)
    report = user_function(names.REPORT_STATUS)
    payload = report_payload("inst-s", 1, "started", ["reynolds:running"], tracking_issue="octo/repo#11")
    with pytest.raises(RequestFailed):
        report(payload)
    assert get_pacer().next_slot("default") == pytest.approx(30, abs=1)
    world.clock.advance(31)
    assert report(payload)["created"] is True
    assert len(reynolds_comments(world, "octo/repo", 11)) == 1


def test_without_a_tracking_repo_the_report_writes_nothing() -> None:
    with build_world() as world:
        result = user_function(names.REPORT_STATUS)(report_payload("inst-n", 1, "started", ["reynolds:running"]))
        assert result["skipped"] == "no tracking issue"
        assert write_requests(world) == []


# --- run_subtask_activity ----------------------------------------------------------------------------------------


def test_offline_subtask_is_marked_offline_and_counted_once(world: World) -> None:
    run = user_function(names.RUN_SUBTASK)
    assert run(subtask_payload()) == {"ok": True, "summary": "code_intelligence (offline): Review retry.py"}
    run(subtask_payload())  # the same attempt re-executed
    run(subtask_payload(attempt=2))
    stats = {s.specialist: s for s in AgentRegistry(world.services).agent_stats()}
    assert stats[Specialist.CODE].calls == 2
    assert stats[Specialist.CODE].success_rate == 1.0
    assert stats[Specialist.DEVOPS].calls == 0


def test_open_breaker_asks_the_engine_to_wait(world: World) -> None:
    service = AgentRegistry(world.services)
    for n in range(BREAKER_FAILURES):
        service.record_call(Specialist.DEVOPS, f"k{n}", ok=False, seconds=1.0)
    result = user_function(names.RUN_SUBTASK)(subtask_payload(specialist="devops"))
    assert result["ok"] is False
    assert result["retryable"] is True
    assert result["retry_after"] > 0
    assert {s.specialist: s.breaker for s in service.agent_stats()}[Specialist.DEVOPS] == "open"
    world.clock.advance(3600)
    assert {s.specialist: s.breaker for s in service.agent_stats()}[Specialist.DEVOPS] == "half_open"


@pytest.fixture
def model_world() -> Iterator[tuple[World, FakeOpenAI]]:
    with FakeOpenAI(model="chat") as fake, build_world(
        extra_settings={**TASK_SETTINGS, "AZURE_OPENAI_ENDPOINT": fake.endpoint}
    ) as built:
        set_model_client(fake.endpoint, make_openai_client(built.settings, api_key="k"))
        yield built, fake
        set_model_client(fake.endpoint, None)
        assert fake.unexpected == []


def test_model_throttling_is_retryable_with_its_retry_after(model_world: tuple[World, FakeOpenAI]) -> None:
    _, fake = model_world
    fake.script(rate_limited(retry_after_ms=2500))
    result = user_function(names.RUN_SUBTASK)(subtask_payload())
    assert result["ok"] is False
    assert result["retryable"] is True
    assert result["retry_after"] == pytest.approx(2.5)


def test_model_error_is_permanent(model_world: tuple[World, FakeOpenAI]) -> None:
    _, fake = model_world
    fake.script(content_filtered())
    result = user_function(names.RUN_SUBTASK)(subtask_payload())
    assert result["ok"] is False
    assert result["retryable"] is False


def test_proposed_writes_say_approval_is_needed(model_world: tuple[World, FakeOpenAI]) -> None:
    _, fake = model_world
    fake.script(
        tool_call("create_review_comment", {"repo": "octo/shop", "number": 3, "body": "nit"}),
        structured({"summary": "retry.py retries forever", "findings": [], "proposed_actions": ["comment"]}),
    )
    result = user_function(names.RUN_SUBTASK)(subtask_payload(repo="octo/shop"))
    assert result["ok"] is True
    assert "retry.py retries forever" in result["summary"]
    assert "approval needed: proposed create_review_comment" in result["summary"]


def test_model_planner_plans_and_falls_back_offline_when_throttled(model_world: tuple[World, FakeOpenAI]) -> None:
    _, fake = model_world
    fake.script(structured({"rationale": "two checks", "subtasks": [
        {"id": "a", "title": "Read CI logs", "specialist": "devops", "dependencies": [], "risk": "low",
         "writes": False},
        {"id": "b", "title": "Review code", "specialist": "code_intelligence", "dependencies": ["a"],
         "risk": "low", "writes": False},
    ]}))
    plan = user_function(names.PLAN_TASK)({"task": {"type": "ci", "description": "Why is CI red?"}})
    assert plan["planner"] == "azure-openai"
    assert [s["id"] for s in plan["subtasks"]] == ["a", "b"]

    fake.script(rate_limited(retry_after_ms=1000))
    fallback = user_function(names.PLAN_TASK)({"task": {"type": "ci", "description": "Why is CI red?"}})
    assert fallback["planner"] == "offline"
    assert "model planner failed" in fallback["rationale"]


# --- the read-only tool executor --------------------------------------------------------------------------------


def test_read_tools_call_only_github_reads_in_scope() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method != "GET":
            raise AssertionError(f"unexpected {request.method} {request.url}")
        if request.url.path == "/repos/octo/shop/contents/src/retry.py":
            return httpx.Response(200, json={"type": "file", "path": "src/retry.py", "sha": "abc", "size": 5,
                                             "content": "cmV0cnk=", "encoding": "base64"})
        if request.url.path == "/repos/octo/shop/actions/runs":
            return httpx.Response(200, json={"total_count": 1, "workflow_runs": [
                {"id": 5, "name": "ci", "status": "completed", "conclusion": "failure", "extra": "dropped"}]})
        if request.url.path == "/repos/octo/shop/contents/missing.py":
            return httpx.Response(404, json={"message": "Not Found"})
        raise AssertionError(f"unexpected {request.url}")

    github = GitHub("token", base_url="https://api.test/", transport=httpx.MockTransport(handler), auto_retry=False,
                    http_cache=False)
    tools = GitHubReadTools(github, allowed_repos=["octo/shop"])

    file = json.loads(tools.execute("get_file_contents", {"repo": "octo/shop", "path": "src/retry.py", "ref": None}))
    assert file["text"] == "retry"
    runs = json.loads(tools.execute("list_workflow_runs", {"repo": "octo/shop", "branch": None, "status": None}))
    assert runs["workflow_runs"] == [{"id": 5, "name": "ci", "status": "completed", "conclusion": "failure"}]
    missing = json.loads(tools.execute("get_file_contents", {"repo": "octo/shop", "path": "missing.py", "ref": None}))
    assert missing == {"status": "not_found"}
    assert json.loads(tools.execute("get_presence", {"user_id": "u"}))["status"] == "unavailable"
    with pytest.raises(ToolNotAllowed):
        tools.execute("create_issue", {"repo": "octo/shop", "title": "x", "body": "y"})
    with pytest.raises(ToolNotAllowed):
        tools.execute("get_repository", {"repo": "evil/elsewhere"})
    assert all(method == "GET" for method, _ in seen)


# --- small pure pieces ---------------------------------------------------------------------------------------------


def test_names_match_the_engine_constants() -> None:
    assert (names.ORCHESTRATE_TASK, names.SUBTASK_ORCHESTRATOR, names.PLAN_TASK, names.RUN_SUBTASK,
            names.REPORT_STATUS, names.APPROVAL_EVENT, names.CANCEL_EVENT) == (
        engine.ORCHESTRATE_TASK, engine.SUBTASK_ORCHESTRATOR, engine.PLAN_TASK, engine.RUN_SUBTASK,
        engine.REPORT_STATUS, engine.APPROVAL_EVENT, engine.CANCEL_EVENT)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_fanout_bench_meets_its_goal() -> None:
    from tools.bench_fanout import markdown, run

    result = run(scale=False)  # the end-to-end cases; the scale cases are `make bench`
    assert result["ok"], result
    assert all(row["github_write_requests"] <= 4 for row in result["rows"])
    assert "| fan-out | 16 | 10 | 20 | 20 | 1.000 | 8 | 4 | 2 |" in markdown(result)


def test_one_token_budget_spans_the_orchestrations_subtasks() -> None:
    with FakeOpenAI(model="chat") as fake, build_world(
        extra_settings={**TASK_SETTINGS, "AZURE_OPENAI_ENDPOINT": fake.endpoint, "AZURE_OPENAI_TOKEN_BUDGET": "1000"}
    ) as world:
        set_model_client(fake.endpoint, make_openai_client(world.settings, api_key="k"))
        try:
            answer = {"summary": "looked", "findings": [], "proposed_actions": []}
            fake.script(structured(answer, usage=(500, 300)))  # subtask 1 spends 800 of 1,000 tokens
            first = user_function(names.RUN_SUBTASK)(subtask_payload())
            assert first["ok"] is True
            assert TaskService(world.services).tokens_spent("inst-1") == 800
            fake.script(structured(answer, usage=(200, 100)))  # subtask 2 passes the limit: stopped
            second_payload = {**subtask_payload(), "subtask_instance_id": "inst-1:s2", "idempotency_key": "inst-1:s2"}
            second = user_function(names.RUN_SUBTASK)(second_payload)
            assert second["ok"] is False
            assert second["retryable"] is False
            assert "token budget" in second["error"]
            third = user_function(names.RUN_SUBTASK)(second_payload)  # nothing left: no model call at all
            assert "token budget" in third["error"]
            assert len(fake.requests) == 2
        finally:
            set_model_client(fake.endpoint, None)
