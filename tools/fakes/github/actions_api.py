"""The fake GitHub's routes for Reynolds' approved writes that the issues routes do not cover.

Each route is modelled on GitHub's OpenAPI description (github/rest-api-description, as githubkit generates it
in ``githubkit_schemas/v2026_03_10/rest/``); the operation id, the documented answers and what the fake refuses:

Refusals, per operation id:

- ``issues/list-for-repo`` (``GET /repos/{o}/{r}/issues``): 200 list with ``Link`` paging. Refuses a bad
  ``state``/``sort``/``direction`` with 422 (documented: 422 ValidationError), an unknown repository with 404,
  and a query parameter the fake does not implement with 422 *and* an ``unexpected`` entry.
- ``actions/get-workflow-run`` (``GET /repos/{o}/{r}/actions/runs/{run_id}``): 200 run; 404 for an unknown run.
- ``actions/re-run-workflow-failed-jobs`` (``POST …/actions/runs/{run_id}/rerun-failed-jobs``): 201 ``{}``
  (EmptyObject), body ``{enable_debug_logging?: bool}``. Refuses an unknown run (404) and a run that has not
  completed (403: the description documents only 201; GitHub's 403 for an unfinished run is shown in
  cli/cli#9221); re-running a run without failed jobs is not modelled (422 and ``unexpected``).
- ``issues/create``, ``issues/create-comment``, ``issues/add-labels`` (routes in ``issues_api``): 410
  ``Issues are disabled for this repo`` when the repository has issues disabled (all three document a 410
  BasicError).

State lives per fake in :data:`RUNS` and :data:`ISSUES_DISABLED`, seeded with :func:`add_workflow_run`,
:func:`complete_run` and :func:`disable_issues`, so ``records.py`` stays as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

from tools.fakes.github.records import (
    GITHUB_WEB,
    JSON,
    OWNER_REPO,
    Handler,
    HttpError,
    RequestContext,
    error_body,
    timestamp,
)

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D_RUNS = "https://docs.github.com/rest/actions/workflow-runs"
_D_ISSUES = "https://docs.github.com/rest/issues/issues"
_CONCLUSIONS = ("success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required")
_RERUNNABLE = ("failure", "cancelled", "timed_out")


@dataclass
class RunRecord:
    """A workflow run: its id, attempt, status and conclusion."""

    id: int
    repo: str
    name: str
    head_branch: str
    status: str = "completed"
    conclusion: str | None = "failure"
    run_attempt: int = 1


#: fake → run id → run
RUNS: WeakKeyDictionary[Any, dict[int, RunRecord]] = WeakKeyDictionary()
#: fake → repositories (lower-case full names) whose issues are disabled
ISSUES_DISABLED: WeakKeyDictionary[Any, set[str]] = WeakKeyDictionary()


def add_workflow_run(fake: FakeGitHub, repo: str, run_id: int, *, name: str = "CI", head_branch: str = "main",
                     status: str = "completed", conclusion: str | None = "failure") -> RunRecord:
    """Seed a workflow run of ``repo`` (which must exist)."""
    if repo not in fake._repos:
        raise KeyError(f"unknown repository {repo}")
    if conclusion is not None and conclusion not in _CONCLUSIONS:
        raise ValueError(conclusion)
    run = RunRecord(run_id, repo, name, head_branch, status, conclusion)
    RUNS.setdefault(fake, {})[run_id] = run
    return run


def complete_run(fake: FakeGitHub, run_id: int, conclusion: str) -> None:
    """The run's current attempt finishes with ``conclusion``."""
    run = RUNS[fake][run_id]
    run.status, run.conclusion = "completed", conclusion


def run(fake: FakeGitHub, run_id: int) -> RunRecord:
    """A seeded run (to assert on)."""
    return RUNS[fake][run_id]


def disable_issues(fake: FakeGitHub, repo: str, disabled: bool = True) -> None:
    """Turn a repository's issues off (GitHub then answers 410 to issue writes) or on again."""
    names = ISSUES_DISABLED.setdefault(fake, set())
    (names.add if disabled else names.discard)(repo.lower())


_ISSUE_WRITE = re.compile(OWNER_REPO + r"/issues(?:/\d+/(?:comments|labels))?")


def issues_gone(fake: FakeGitHub, method: str, path: str, doc: str) -> HttpError | None:
    """The 410 GitHub answers to an issue write in a repository whose issues are disabled, else None."""
    match = _ISSUE_WRITE.fullmatch(path)
    if method != "POST" or match is None:
        return None
    if f"{match['owner']}/{match['repo']}".lower() not in ISSUES_DISABLED.get(fake, set()):
        return None
    return HttpError(410, error_body(410, "Issues are disabled for this repo", doc))


def _run_of(fake: FakeGitHub, ctx: RequestContext) -> RunRecord:
    repo = f"{ctx.params['owner']}/{ctx.params['repo']}"
    found = RUNS.get(fake, {}).get(int(ctx.params["run_id"]))
    if found is None or found.repo.lower() != repo.lower():
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return found


def _render_run(fake: FakeGitHub, r: RunRecord) -> dict[str, Any]:
    api = f"{fake._api}/repos/{r.repo}/actions/runs/{r.id}"
    now = timestamp(fake.clock())
    return {"id": r.id, "name": r.name, "node_id": f"WFR_{r.id}", "head_branch": r.head_branch,
            "head_sha": f"{r.id:040x}"[-40:], "path": ".github/workflows/ci.yml", "run_number": r.id % 10_000,
            "run_attempt": r.run_attempt, "event": "push", "status": r.status, "conclusion": r.conclusion,
            "workflow_id": 1, "url": api, "html_url": f"{GITHUB_WEB}/{r.repo}/actions/runs/{r.id}",
            "jobs_url": f"{api}/jobs", "logs_url": f"{api}/logs", "rerun_url": f"{api}/rerun",
            "created_at": now, "updated_at": now, "run_started_at": now}


def get_workflow_run(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``actions/get-workflow-run``."""
    return 200, _render_run(fake, _run_of(fake, ctx))


def rerun_failed_jobs(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``actions/re-run-workflow-failed-jobs``: a new attempt of the run, queued."""
    r = _run_of(fake, ctx)
    extra = sorted(set(ctx.body) - {"enable_debug_logging"}) if isinstance(ctx.body, dict) else []
    if extra:
        fake._unexpected.append(f"{ctx.method} {ctx.path}: fields not implemented by the fake: {extra}")
        raise HttpError(422, error_body(422, f"Fake GitHub does not implement field(s) {extra}", ctx.doc))
    if "enable_debug_logging" in ctx.body and not isinstance(ctx.body["enable_debug_logging"], bool):
        raise HttpError(422, error_body(422, "Invalid request.\n\nFor 'properties/enable_debug_logging', "
                                             "value is not a boolean.", ctx.doc))
    if r.status != "completed":
        raise HttpError(403, error_body(403, "This workflow run is not completed", ctx.doc))
    if r.conclusion not in _RERUNNABLE:
        fake._unexpected.append(f"{ctx.method} {ctx.path}: re-running a run without failed jobs is not modelled")
        raise HttpError(422, error_body(422, "Fake GitHub does not model this re-run", ctx.doc))
    r.run_attempt += 1
    r.status, r.conclusion = "queued", None
    return 201, {}


_LIST_PARAMS = {"creator", "state", "sort", "direction", "per_page", "page"}


def list_repo_issues(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``issues/list-for-repo``: filter by creator and state, sorted by creation or update time, paged."""
    unknown = sorted(set(ctx.query) - _LIST_PARAMS)
    if unknown:
        fake._unexpected.append(f"{ctx.method} {ctx.path}: query parameters not implemented: {unknown}")
        raise HttpError(422, error_body(422, f"Fake GitHub does not implement parameter(s) {unknown}", ctx.doc))
    state = ctx.query.get("state", "open")
    sort = ctx.query.get("sort", "created")
    direction = ctx.query.get("direction", "desc")
    for name, value, allowed in (("state", state, ("open", "closed", "all")), ("sort", sort, ("created", "updated")),
                                 ("direction", direction, ("asc", "desc"))):
        if value not in allowed:
            raise HttpError(422, error_body(422, "Validation Failed", ctx.doc, errors=[
                {"resource": "Issue", "field": name, "code": "invalid"}]))
    r = fake._repos[f"{ctx.params['owner']}/{ctx.params['repo']}"]
    issues = [i for i in r.issues.values() if state == "all" or i.state == state]
    if "creator" in ctx.query:
        issues = [i for i in issues if i.login.lower() == ctx.query["creator"].lower()]
    issues.sort(key=lambda i: (i.created_at if sort == "created" else i.updated_at, i.number),
                reverse=direction == "desc")
    try:
        per_page = min(max(int(ctx.query.get("per_page", "30")), 1), 100)
        page = max(int(ctx.query.get("page", "1")), 1)
    except ValueError:
        raise HttpError(422, error_body(422, "Validation Failed", ctx.doc)) from None
    last = max((len(issues) + per_page - 1) // per_page, 1)
    if page < last:
        query = {k: v for k, v in ctx.query.items() if k != "page"}
        base = f"{fake._api}/repos/{r.full_name}/issues"
        ctx.headers["link"] = (f'<{base}?{urlencode({**query, "page": str(page + 1)})}>; rel="next", '
                               f'<{base}?{urlencode({**query, "page": str(last)})}>; rel="last"')
    chunk = issues[(page - 1) * per_page: page * per_page]
    return 200, [fake._render_issue(r, i) for i in chunk]


ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("GET", OWNER_REPO + r"/issues", list_repo_issues, f"{_D_ISSUES}#list-repository-issues"),
    ("GET", OWNER_REPO + r"/actions/runs/(?P<run_id>\d+)", get_workflow_run, f"{_D_RUNS}#get-a-workflow-run"),
    ("POST", OWNER_REPO + r"/actions/runs/(?P<run_id>\d+)/rerun-failed-jobs", rerun_failed_jobs,
     f"{_D_RUNS}#re-run-failed-jobs-from-a-workflow-run"),
]
ROUTES = [(m, re.compile(p), h, d) for m, p, h, d in ROUTE_SPECS]
