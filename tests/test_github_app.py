"""The GitHub App is right by construction: the permissions and events derived from what the code calls and routes
(``tools.github_app``: githubkit calls found in the app's code, their endpoints read from githubkit, GitHub's
permission table) equal ``github-app-manifest.json``'s and docs/deploy.md's; a missing or extra one is named."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
import pytest

from shared.loop.envelope import Platform
from shared.platforms.github.events import read_delivery
from tools import github_app, post_webhook

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy.md"


def docs_table() -> tuple[dict[str, str], list[str]]:
    """The permission table and the events line of docs/deploy.md's GitHub App section."""
    text = DEPLOY.read_text(encoding="utf-8")
    section = text[text.index("## GitHub App and webhook"):text.index("### Register it in one click")]
    permissions = dict(re.findall(r"^\| [^|]*\(`(\w+)`\) \| (read|write) \|", section, re.MULTILINE))
    events_line = next(line for line in section.splitlines() if line.startswith("Events:"))
    return permissions, re.findall(r"`(\w+)`", events_line.split("(")[0])


@pytest.fixture(scope="module")
def needed() -> tuple[dict[str, str], list[str]]:
    return github_app.derived()


def test_the_code_needs_actions_contents_and_issues_write(needed: tuple[dict[str, str], list[str]]) -> None:
    # Actions: write since approved proposals re-run failed jobs; Contents: write for the Git Data writer.
    permissions, events = needed
    assert permissions == {"actions": "write", "contents": "write", "issues": "write", "metadata": "read"}
    assert events == ["issue_comment", "issues"]
    calls = {(op.group, op.method) for op in github_app.operations()}
    assert {("actions", "download_job_logs_for_workflow_run"), ("repos", "get_content"), ("search", "code"),
            ("issues", "create_comment"), ("apps", "list_webhook_deliveries")} <= calls


def test_manifest_and_docs_match_what_the_code_calls_and_routes(needed: tuple[dict[str, str], list[str]]) -> None:
    permissions, events = needed
    manifest = github_app.load_manifest()
    assert github_app.differences(permissions, events, have_permissions=manifest["default_permissions"],
                                  have_events=manifest["default_events"], where="manifest") == []
    doc_permissions, doc_events = docs_table()
    assert github_app.differences(permissions, events, have_permissions=doc_permissions, have_events=doc_events,
                                  where="docs/deploy.md") == []


def test_the_manifest_is_a_complete_manifest_flow_document() -> None:
    # Fields of GitHub's "Registering a GitHub App from a manifest" (Probot's Manifest type lists the same).
    manifest = github_app.load_manifest()
    allowed = {"name", "url", "hook_attributes", "redirect_url", "callback_urls", "setup_url", "description",
               "public", "default_events", "default_permissions", "request_oauth_on_install", "setup_on_update"}
    assert set(manifest) <= allowed
    assert manifest["hook_attributes"] == {"url": "<app-url>/api/github/webhook", "active": True}
    assert manifest["public"] is False
    filled = github_app.filled(manifest, "https://func-api-x.azurewebsites.net/", name="My Reynolds")
    assert filled["hook_attributes"]["url"] == "https://func-api-x.azurewebsites.net/api/github/webhook"
    assert filled["redirect_url"] == "https://func-api-x.azurewebsites.net/api/health/live"
    assert filled["name"] == "My Reynolds"
    assert "<app-url>" not in json.dumps(filled)


def test_a_wrong_manifest_is_named_permission_by_permission(needed: tuple[dict[str, str], list[str]]) -> None:
    permissions, events = needed
    stale = {"issues": "write", "pull_requests": "write", "metadata": "read", "contents": "read"}
    problems = github_app.differences(permissions, events, have_permissions=stale,
                                      have_events=["issues", "issue_comment", "pull_request"], where="manifest")
    assert problems == [
        "manifest: missing permission actions: write",
        "manifest: permission contents is read, the code needs write",
        "manifest: extra permission pull_requests: write (nothing the code calls needs it)",
        "manifest: extra event pull_request (never routed)",
    ]


def test_a_new_call_or_route_changes_what_is_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "shared"
    package.mkdir()
    (package / "tool.py").write_text("def read(gh):\n    return gh.rest.actions.get_workflow_run('o', 'r', 1)\n"
                                     "def lock(gh):\n    return gh.rest.issues.async_lock('o', 'r', 1)\n")
    ops = github_app.operations(tmp_path)
    assert [(op.group, op.method, op.verb, op.path) for op in ops] == [
        ("actions", "get_workflow_run", "GET", "/repos/{owner}/{repo}/actions/runs/{run_id}"),
        ("issues", "lock", "PUT", "/repos/{owner}/{repo}/issues/{issue_number}/lock")]
    with pytest.raises(KeyError, match=r"PUT /repos/\{owner\}/\{repo\}/issues/\{issue_number\}/lock"):
        github_app.required_permissions(ops)
    assert github_app.required_permissions(ops[:1]) == {"actions": "read"}
    # Routing pull requests would need a subscription GitHub's table must say how to grant.
    from shared.work import routing

    monkeypatch.setitem(routing.ROUTES, (Platform.GITHUB, "pull_request.opened"), "triage_orchestrator")
    assert "pull_request" in github_app.routed_events()
    with pytest.raises(KeyError, match="pull_request"):
        github_app.required_permissions(ops[:1], events=github_app.routed_events())


def test_alternatives_reuse_a_permission_already_needed() -> None:
    op = github_app.Operation
    pulls = op("pulls", "get", "GET", "/repos/{owner}/{repo}/pulls/{pull_number}", ("x.py",))
    content = op("repos", "get_content", "GET", "/repos/{owner}/{repo}/contents/{path}", ("x.py",))
    assert github_app.required_permissions([pulls]) == {"contents": "read"}
    assert github_app.required_permissions([pulls, content]) == {"contents": "read"}
    comment = op("issues", "create_comment", "POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", ("x",))
    listing = op("issues", "list_comments", "GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", ("x",))
    assert github_app.required_permissions([listing, comment]) == {"issues": "write"}


def test_the_form_posts_the_filled_manifest_to_github(capsys: pytest.CaptureFixture[str]) -> None:
    assert github_app.main(["form", "--app-url", "https://func-api-x.azurewebsites.net", "--org", "contoso"]) == 0
    page = capsys.readouterr().out
    assert '<form action="https://github.com/organizations/contoso/settings/apps/new" method="post">' in page
    value = re.search(r'name="manifest" value="([^"]*)"', page)
    assert value
    manifest = json.loads(html.unescape(value.group(1)))
    assert manifest["default_permissions"] == github_app.load_manifest()["default_permissions"]
    assert manifest["hook_attributes"]["url"] == "https://func-api-x.azurewebsites.net/api/github/webhook"
    assert github_app.main(["form", "--app-url", "http://evil.example/x"]) == 2


def test_post_webhook_signs_as_github_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    sample = ROOT / "samples" / "issues-opened.json"
    assert post_webhook.main([str(sample)]) == 2  # no secret anywhere: said, nothing sent
    assert "GITHUB_WEBHOOK_SECRET" in capsys.readouterr().err
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"GITHUB_WEBHOOK_SECRET": "local-dev-s3"}}))
    seen: list[httpx.Request] = []

    def door(request: httpx.Request) -> httpx.Response:
        # The app's own verification (constant-time HMAC over the raw body, headers as the door reads them).
        delivery = read_delivery("local-dev-s3", request.content, dict(request.headers))
        seen.append(request)
        return httpx.Response(202, json={"delivery": delivery.delivery_id, "verdict": "accepted"})

    assert post_webhook.main([str(sample), "--delivery", "d-1"], transport=httpx.MockTransport(door)) == 0
    assert capsys.readouterr().out.startswith('202 {"delivery":"d-1"')
    assert str(seen[0].url) == post_webhook.DEFAULT_URL
    assert "local-dev-s3" not in seen[0].headers["X-Hub-Signature-256"]
