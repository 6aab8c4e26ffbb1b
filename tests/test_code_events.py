"""The typed payloads of issue 23's events (shared/platforms/github/code_events.py), validated against every real
example of each event in ../shared/fixtures/github-webhooks (read there, never copied)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.platforms.github import code_events

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "github-webhooks"


def _examples() -> list[Any]:
    if not FIXTURES.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{FIXTURES} is absent"))]
    params = []
    for event in sorted(code_events.MODELS):
        for path in sorted(FIXTURES.glob(f"*/{event}/*.json")):
            params.append(pytest.param(event, path, id=str(path.relative_to(FIXTURES))))
    return params


EXAMPLES = _examples()


@pytest.mark.parametrize(("event", "path"), EXAMPLES)
def test_every_real_payload_parses_and_has_an_identity(event: str, path: Path) -> None:
    raw = json.loads(path.read_text())
    parsed = code_events.parse(event, raw)
    assert isinstance(parsed, code_events.MODELS[event])
    assert parsed.repository.full_name == raw["repository"]["full_name"]
    assert parsed.sender.login == raw["sender"]["login"]
    ident = code_events.identity(event, raw)
    assert ident is not None
    assert ident.startswith(f"{event}.{raw['action']}:")
    assert code_events.identity(event, copy.deepcopy(raw)) == ident  # a redelivery is the same event
    if event == "pull_request":
        assert ident.split(":")[2] == raw["pull_request"]["head"]["sha"]
    if event == "workflow_run":
        assert ident.endswith(f":{raw['workflow_run']['run_attempt']}")


def test_every_routed_action_has_real_examples() -> None:
    if not FIXTURES.is_dir():
        pytest.skip("fixtures absent")
    for event, actions in code_events.ACTIONS.items():
        seen = {json.loads(p.read_text())["action"] for p in FIXTURES.glob(f"*/{event}/*.json")}
        assert actions <= seen, (event, actions - seen)


def _load(event: str, name: str) -> dict[str, Any]:
    path = FIXTURES / "api.github.com" / event / name
    if not path.is_file():
        pytest.skip(f"{path} absent")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_fields_reynolds_reads() -> None:
    sync = code_events.parse("pull_request", _load("pull_request", "synchronize.payload.json"))
    assert isinstance(sync, code_events.PullRequestEvent)
    assert sync.before
    assert sync.after == sync.pull_request.head.sha
    run = code_events.parse("workflow_run", _load("workflow_run", "completed.with-pull-requests.payload.json"))
    assert isinstance(run, code_events.WorkflowRunEvent)
    assert run.workflow_run.conclusion is not None
    assert run.workflow_run.pull_requests
    assert run.workflow_run.pull_requests[0].number > 0


def test_a_push_a_rerun_and_an_edit_are_new_events() -> None:
    pr = _load("pull_request", "synchronize.payload.json")
    pushed = copy.deepcopy(pr)
    pushed["pull_request"]["head"]["sha"] = "f" * 40
    assert code_events.identity("pull_request", pushed) != code_events.identity("pull_request", pr)
    run = _load("workflow_run", "completed.payload.json")
    again = copy.deepcopy(run)
    again["workflow_run"]["run_attempt"] += 1
    assert code_events.identity("workflow_run", again) != code_events.identity("workflow_run", run)
    comment = _load("pull_request_review_comment", "created.payload.json")
    edited = copy.deepcopy(comment)
    edited["comment"]["updated_at"] = "2099-01-01T00:00:00Z"
    assert code_events.identity("pull_request_review_comment", edited) != code_events.identity(
        "pull_request_review_comment", comment)


def test_routed_actions_and_bad_shapes() -> None:
    pr = _load("pull_request", "opened.payload.json")
    assert code_events.routed("pull_request", pr)
    assert not code_events.routed("pull_request", {**pr, "action": "labeled"})
    assert not code_events.routed("issues", pr)
    broken = copy.deepcopy(pr)
    broken["pull_request"]["head"]["sha"] = None
    with pytest.raises(ValidationError):
        code_events.parse("pull_request", broken)
    assert code_events.identity("pull_request", broken) is None  # the caller falls back to the digest
    assert code_events.parse("issues", pr) is None
