"""Issue 21's test interfaces: the scripted model, the "writes" recorder, "repo_files", the new fake routes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import githubkit
import openai
import pytest
from githubkit.exception import RequestFailed
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from shared.work.task_service import TaskService
from tools.fakes.github import FakeGitHub
from tools.fakes.github.actions_api import add_workflow_run
from tools.fakes.github.writes_log import record_writes, seed_repo_files
from tools.fakes.openai import ScriptError, replies_from_script
from tools.scripted_model import ItemInputError, model_outcome, scripted_model
from tools.world import REYNOLDS_LOGIN, World, build_world

ROOT = Path(__file__).resolve().parent.parent

SCRIPT: list[dict[str, Any]] = [
    {"content": "hello"},
    {"json": {"summary": "ok", "findings": [], "proposed_actions": []}},
    {"tool_calls": [["add_labels", {"repo": "octo/app", "number": 1, "labels": ["bug"]}], ["get_repository", "{bad"]]},
    {"status": 429, "retry_after": 5},
]


def test_each_reply_shape_becomes_the_fakes_reply() -> None:
    content, structured, calls, throttled = replies_from_script(SCRIPT)
    assert content.content == "hello"
    assert json.loads(structured.content or "") == SCRIPT[1]["json"]
    assert calls.tool_calls == [("add_labels", '{"repo": "octo/app", "number": 1, "labels": ["bug"]}'),
                                ("get_repository", "{bad")]
    assert throttled.status == 429
    assert throttled.headers == {"retry-after": "5"}


@pytest.mark.parametrize(("script", "message"), [
    ("content", "must be a list"),
    ([{"content": 3}], r"model\[1\].content must be a string"),
    ([{"content": "a"}, {"text": "b"}], r"model\[2\] has keys \['text'\]"),
    ([{"content": "a", "json": {}}], "exactly one of"),
    ([{"tool_calls": []}], "non-empty"),
    ([{"tool_calls": [["only-name"]]}], r"tool_calls\[0\]"),
    ([{"status": 500}], "only 429"),
    ([{"status": 429, "retry_after": "soon"}], "number of seconds"),
    ([{}], "must be an object"),
])
def test_bad_scripts_are_refused_naming_the_reply(script: object, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        replies_from_script(script)


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as built:
        yield built


def _ask(world: World) -> openai.types.chat.ChatCompletion:
    client = TaskService(world.services).model_client()
    assert client is not None
    return client.chat.completions.create(model=world.services.settings.openai_deployment,
                                          messages=[{"role": "user", "content": "hi"}])


def test_the_script_answers_in_order_then_fails_clearly_and_nothing_carries_over(world: World) -> None:
    assert world.services.settings.openai_endpoint is None
    with scripted_model(SCRIPT, world.services) as model:
        assert model is not None
        assert _ask(world).choices[0].message.content == "hello"
        assert json.loads(_ask(world).choices[0].message.content or "")["summary"] == "ok"
        calls = _ask(world).choices[0].message.tool_calls or []
        names = [c.function.name for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]
        assert names == ["add_labels", "get_repository"]
        with pytest.raises(openai.RateLimitError) as throttled:
            _ask(world)
        assert throttled.value.response.headers["retry-after"] == "5"
        with pytest.raises(openai.BadRequestError) as exhausted:
            _ask(world)
        assert exhausted.value.code == "script_exhausted"
        assert model_outcome(model) == {
            "model_replies_used": 4,
            "error": "the item asked the model for reply 5 but its script has 4 (1 call(s) beyond the script)"}
    assert world.services.settings.openai_endpoint is None  # restored: the next item is offline again
    with scripted_model([{"content": "one"}, {"content": "unused"}], world.services) as model:
        assert _ask(world).choices[0].message.content == "one"
        assert model_outcome(model) == {"model_replies_used": 1}  # an unused reply is fine
    with scripted_model([{"content": "fresh"}], world.services):
        assert _ask(world).choices[0].message.content == "fresh"  # "unused" did not carry over


def test_without_a_script_nothing_changes(world: World) -> None:
    before = world.services.settings
    with scripted_model(None, world.services) as model:
        assert model is None
        assert TaskService(world.services).model_client() is None
    assert world.services.settings is before
    assert model_outcome(None) == {}


def test_writes_and_repo_files_for_a_world(world: World) -> None:
    writes = record_writes(world.github, REYNOLDS_LOGIN)
    seed_repo_files(world.github, {"octo/app": {".github/reynolds.yml": "tools:\n  create_issue: auto\n"},
                                   "octo/.github": {".github/reynolds.yml": "tools: {}\n"}})
    gh = githubkit.GitHub(githubkit.TokenAuthStrategy(world.settings.github_token.get_secret_value()),  # type: ignore[union-attr]
                          base_url=world.github.base_url, auto_retry=False)
    content: Any = gh.rest.repos.get_content("octo", "app", ".github/reynolds.yml").json()
    assert content["type"] == "file"
    world.github.add_issue("octo/app", number=3)
    response = gh.rest.issues.create_comment("octo", "app", 3, body="hi")
    gh.rest.issues.add_labels("octo", "app", 3, labels=["bug"])
    world.github.create_comment("octo/app", 3, "a person", "octo")  # not Reynolds: not in its writes
    assert [(w["method"], w["path"], w["kind"], w["target"], w["status"]) for w in writes] == [
        ("POST", "/repos/octo/app/issues/3/comments", "comment", "octo/app#3", 201),
        ("POST", "/repos/octo/app/issues/3/labels", "label", "octo/app#3", 200)]
    assert writes[0]["sha256"] == hashlib.sha256(response.raw_response.request.content).hexdigest()
    with pytest.raises(ValueError, match="owner/name"):
        seed_repo_files(world.github, {"app": {"x": "y"}})


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as github:
        github.add_user("bot[bot]", type="Bot", token="tok")
        github.add_repo("octo/app")
        yield github


def _client(fake: FakeGitHub) -> githubkit.GitHub:
    return githubkit.GitHub(githubkit.TokenAuthStrategy("tok"), base_url=fake.base_url, auto_retry=False)


def test_list_for_repo_filters_sorts_pages_and_refuses_what_github_refuses(fake: FakeGitHub) -> None:
    gh = _client(fake)
    for number in range(1, 6):
        fake.add_issue("octo/app", number=number, login="bot[bot]" if number % 2 else "octo")
    mine = gh.rest.issues.list_for_repo("octo", "app", creator="bot[bot]", state="all", per_page=2)
    listed: Any = mine.json()
    assert [i["number"] for i in listed] == [5, 3]
    assert 'rel="next"' in mine.headers["link"]
    with pytest.raises(RequestFailed) as bad:
        gh.rest.issues.list_for_repo("octo", "app", state="everything")  # type: ignore[arg-type]
    assert bad.value.response.status_code == 422
    with pytest.raises(RequestFailed):
        gh.rest.issues.list_for_repo("octo", "app", labels="bug")
    assert fake.unexpected == ["GET /repos/octo/app/issues: query parameters not implemented: ['labels']"]


def test_workflow_runs_and_rerun_refusals(fake: FakeGitHub) -> None:
    gh = _client(fake)
    add_workflow_run(fake, "octo/app", 42, status="in_progress", conclusion=None)
    assert gh.rest.actions.get_workflow_run("octo", "app", 42).json()["run_attempt"] == 1
    with pytest.raises(RequestFailed) as missing:
        gh.rest.actions.get_workflow_run("octo", "app", 43)
    assert missing.value.response.status_code == 404
    with pytest.raises(RequestFailed) as running:
        gh.rest.actions.re_run_workflow_failed_jobs("octo", "app", 42)
    assert running.value.response.status_code == 403
    fake.assert_no_unexpected()


async def test_one_call_gives_a_simulate_line_its_writes_model_and_repo_files(world: World) -> None:
    from tools.scripted_model import run_with_interfaces
    from tools.simulate import run_item

    item = json.loads((ROOT / "samples" / "deliveries.jsonl").read_text().splitlines()[0])
    writes = record_writes(world.github, REYNOLDS_LOGIN)
    item["repo_files"] = {"octo/app": {".github/reynolds.yml": "tools: {}\n"}}
    item["model"] = [{"content": "never asked: triage is offline"}]
    line = await run_with_interfaces(world, item, writes, run_item)
    assert line["verdict"] == "accepted"
    assert len(line["writes"]) == len(line["effects"]) == 1
    (write,) = line["writes"]
    assert (write["platform"], write["method"], write["kind"], write["target"]) == ("github", "POST", "comment",
                                                                                    line["effects"][0]["target"])
    assert line["model_replies_used"] == 0  # unused replies are allowed
    assert "error" not in line
    served = githubkit.GitHub(githubkit.TokenAuthStrategy(world.github.token_for(REYNOLDS_LOGIN)),
                              base_url=world.github.base_url, auto_retry=False)
    policy_file: Any = served.rest.repos.get_content("octo", "app", ".github/reynolds.yml").json()
    assert policy_file["type"] == "file"
    with pytest.raises(ItemInputError):
        await run_with_interfaces(world, {**item, "model": [{"bad": 1}]}, writes, run_item)
