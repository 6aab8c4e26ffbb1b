"""The fake GitHub's Actions and Checks routes: workflow runs, their attempts' jobs, job logs, re-running failed
jobs, and check suites.

Built from GitHub's REST description (github/rest-api-description, ``descriptions/api.github.com``), operation
ids ``actions/get-workflow-run``, ``actions/list-jobs-for-workflow-run-attempt``,
``actions/download-job-logs-for-workflow-run``, ``actions/re-run-workflow-failed-jobs``, ``checks/get-suite``;
shapes as githubkit models them (``WorkflowRun``, ``Job``, ``CheckSuite``).

* Download job logs answers ``302`` with a ``Location`` the client follows to the plain-text log (the reference:
  "Gets a redirect URL to download a plain text file of logs for a workflow job. This link expires after 1
  minute."); :func:`set_logs_mode` ``"direct"`` makes the fake answer the text itself (200), which a client must
  accept too. The link expires one minute after it was issued (fake clock).
* :func:`expire_logs` models log retention: the run's jobs' logs are gone.
* Re-running failed jobs starts attempt ``n + 1``: the failed (and cancelled) jobs queued again under new ids, the
  others carried over; :func:`complete_attempt` finishes it, as the runner would.

Refusals:

=====================================================  ======  ================================================
request                                                status  body
=====================================================  ======  ================================================
unknown run, job, attempt or check suite               404     Not Found
job logs after retention (:func:`expire_logs`)         404     Not Found [issue 23: "404 on an expired log";
                                                               the REST reference documents only 302]
the log link more than a minute after it was issued    404     Not Found [reference: link expires after 1 min]
re-run failed jobs of a run that is not completed      403     This workflow run is not completed [modelled;
                                                               reference lists 403 for this operation]
=====================================================  ======  ================================================
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

from tools.fakes.github import git_api, pulls_api, repos_api
from tools.fakes.github.issues_api import reject_unknown_fields
from tools.fakes.github.records import (
    JSON,
    OWNER_REPO,
    Handler,
    HttpError,
    RawBody,
    RequestContext,
    error_body,
    node_id,
    timestamp,
)

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D_RUNS = "https://docs.github.com/rest/actions/workflow-runs"
_D_JOBS = "https://docs.github.com/rest/actions/workflow-jobs"
_D_SUITES = "https://docs.github.com/rest/checks/suites"
LOG_LINK_TTL = timedelta(minutes=1)


@dataclass
class JobRecord:
    id: int
    name: str
    status: str
    conclusion: str | None
    log: str
    steps: list[dict[str, Any]]
    started_at: datetime


@dataclass
class AttemptRecord:
    number: int
    status: str
    conclusion: str | None
    jobs: list[JobRecord]
    created_at: datetime


@dataclass
class RunRecord:
    id: int
    repo: str
    head_sha: str
    head_branch: str
    event: str
    pull_request: int | None
    check_suite_id: int
    workflow: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    logs_expired: bool = False


@dataclass
class ActionsState:
    runs: dict[int, RunRecord] = field(default_factory=dict)
    jobs: dict[int, tuple[int, JobRecord]] = field(default_factory=dict)  # job id → (run id, job)
    links: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # token → (job id, issued)
    mode: Literal["redirect", "direct"] = "redirect"


STATES: WeakKeyDictionary[Any, ActionsState] = WeakKeyDictionary()


def state(fake: FakeGitHub) -> ActionsState:
    return STATES.setdefault(fake, ActionsState())


def _steps(name: str, conclusion: str | None, given: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if given:
        return [{"name": s["name"], "number": i + 1, "status": "completed", "conclusion": s.get("conclusion"),
                 "started_at": None, "completed_at": None} for i, s in enumerate(given)]
    return [{"name": "Set up job", "number": 1, "status": "completed", "conclusion": "success",
             "started_at": None, "completed_at": None},
            {"name": f"Run {name}", "number": 2, "status": "completed", "conclusion": conclusion,
             "started_at": None, "completed_at": None}]


def _new_job(fake: FakeGitHub, s: ActionsState, run_id: int, spec: dict[str, Any]) -> JobRecord:
    conclusion = spec.get("conclusion", "success")
    status = spec.get("status", "completed" if conclusion else "queued")
    job = JobRecord(fake._new_id(), str(spec["name"]), status, conclusion, str(spec.get("log", "")),
                    _steps(str(spec["name"]), conclusion, spec.get("steps")), fake.clock())
    s.jobs[job.id] = (run_id, job)
    return job


def _overall(jobs: list[JobRecord]) -> tuple[str, str | None]:
    if any(j.status != "completed" for j in jobs):
        return "in_progress", None
    for worst in ("failure", "cancelled", "timed_out"):
        if any(j.conclusion == worst for j in jobs):
            return "completed", worst
    return "completed", "success"


def add_run(fake: FakeGitHub, repo: str, id: int, *, jobs: list[dict[str, Any]], pull_request: int | None = None,
            head_branch: str | None = None, workflow: str = "CI") -> int:
    """Seed a completed workflow run (attempt 1) whose ``jobs`` are ``{name, conclusion, log, steps?}``; on the
    head of PR ``pull_request`` or of ``head_branch`` (default branch). Returns its check suite id."""
    with fake._lock:
        s = state(fake)
        if id in s.runs:
            raise ValueError(f"run {id} exists")
        if pull_request is not None:
            pr = pulls_api.pulls(fake, repo)[pull_request]
            branch, event = pr.head, "pull_request"
        else:
            branch, event = head_branch or repos_api.DEFAULT_BRANCH, "push"
        sha = git_api.branch_head(fake, repo, branch)
        if sha is None:
            raise ValueError(f"branch {branch} of {repo} has no commit")
        run = RunRecord(id, repo, sha, branch, event, pull_request, fake._new_id(), workflow)
        made = [_new_job(fake, s, id, spec) for spec in jobs]
        status, conclusion = _overall(made)
        run.attempts.append(AttemptRecord(1, status, conclusion, made, fake.clock()))
        s.runs[id] = run
        return run.check_suite_id


def add_workflow_run(fake: FakeGitHub, repo: str, run_id: int, *, status: str = "completed",
                     conclusion: str | None = "failure", job: str = "build") -> RunRecord:
    """Seed a one-job run on the default branch (given an empty root commit when it has none yet)."""
    with fake._lock:
        if git_api.branch_head(fake, repo, repos_api.DEFAULT_BRANCH) is None:
            repos_api.FILES.setdefault(fake, {}).setdefault(repo.lower(), {}).setdefault(repos_api.DEFAULT_BRANCH, {})
    add_run(fake, repo, run_id, jobs=[{"name": job, "status": status,
                                       "conclusion": conclusion if status == "completed" else None}])
    return state(fake).runs[run_id]


def add_attempt(fake: FakeGitHub, run_id: int, jobs: list[dict[str, Any]]) -> int:
    """Seed the next attempt of run ``run_id``, completed with ``jobs`` (as in :func:`add_run`); its number."""
    with fake._lock:
        s = state(fake)
        run = s.runs[run_id]
        made = [_new_job(fake, s, run_id, spec) for spec in jobs]
        status, conclusion = _overall(made)
        run.attempts.append(AttemptRecord(len(run.attempts) + 1, status, conclusion, made, fake.clock()))
        return len(run.attempts)


def complete_attempt(fake: FakeGitHub, run_id: int, results: dict[str, dict[str, Any]]) -> None:
    """Finish the latest attempt: ``results`` maps a queued job's name to ``{conclusion, log}``."""
    with fake._lock:
        s = state(fake)
        attempt = s.runs[run_id].attempts[-1]
        for job in attempt.jobs:
            if job.name in results and job.status != "completed":
                job.status, job.conclusion = "completed", results[job.name]["conclusion"]
                job.log = str(results[job.name].get("log", ""))
                job.steps = _steps(job.name, job.conclusion, None)
        attempt.status, attempt.conclusion = _overall(attempt.jobs)


def expire_logs(fake: FakeGitHub, run_id: int) -> None:
    with fake._lock:
        state(fake).runs[run_id].logs_expired = True


def set_logs_mode(fake: FakeGitHub, mode: Literal["redirect", "direct"]) -> None:
    with fake._lock:
        state(fake).mode = mode


# ---------------------------------------------------------------------------------------------- rendering
def _minimal_repo(fake: FakeGitHub, repo: str) -> dict[str, Any]:
    return fake._render_repo(fake._repo(repo))


def _pr_minimal(fake: FakeGitHub, run: RunRecord) -> list[dict[str, Any]]:
    if run.pull_request is None:
        return []
    pr = pulls_api.pulls(fake, run.repo)[run.pull_request]
    r = fake._repo(run.repo)
    small = {"id": r.id, "url": f"{fake._api}/repos/{run.repo}", "name": r.name}
    return [{"id": 5_000_000 + pr.number, "number": pr.number, "url": f"{fake._api}/repos/{run.repo}/pulls/{pr.number}",
             "head": {"ref": pr.head, "sha": run.head_sha, "repo": small},
             "base": {"ref": pr.base, "sha": git_api.branch_head(fake, run.repo, pr.base) or "", "repo": small}}]


def _head_commit(fake: FakeGitHub, run: RunRecord) -> dict[str, Any]:
    c = git_api.store(fake).commits[run.head_sha]
    who = {"name": c.author["name"], "email": c.author["email"]}
    return {"id": c.sha, "tree_id": c.tree, "message": c.message, "timestamp": c.author["date"],
            "author": who, "committer": who}


def render_run(fake: FakeGitHub, run: RunRecord, attempt: AttemptRecord | None = None) -> dict[str, Any]:
    attempt = attempt or run.attempts[-1]
    api = f"{fake._api}/repos/{run.repo}/actions/runs/{run.id}"
    ts = timestamp(attempt.created_at)
    repo = _minimal_repo(fake, run.repo)
    return {
        "id": run.id, "name": run.workflow, "node_id": node_id("WorkflowRun", run.id), "head_branch": run.head_branch,
        "head_sha": run.head_sha, "path": ".github/workflows/ci.yml", "display_title": run.workflow,
        "run_number": run.id % 10_000, "event": run.event, "status": attempt.status,
        "conclusion": attempt.conclusion, "workflow_id": 161335, "check_suite_id": run.check_suite_id,
        "url": api, "html_url": f"https://github.com/{run.repo}/actions/runs/{run.id}",
        "pull_requests": _pr_minimal(fake, run), "created_at": timestamp(run.attempts[0].created_at),
        "updated_at": ts, "run_attempt": attempt.number, "run_started_at": ts,
        "jobs_url": f"{api}/jobs", "logs_url": f"{api}/logs",
        "check_suite_url": f"{fake._api}/repos/{run.repo}/check-suites/{run.check_suite_id}",
        "artifacts_url": f"{api}/artifacts", "cancel_url": f"{api}/cancel", "rerun_url": f"{api}/rerun",
        "previous_attempt_url": f"{api}/attempts/{attempt.number - 1}" if attempt.number > 1 else None,
        "workflow_url": f"{fake._api}/repos/{run.repo}/actions/workflows/161335",
        "head_commit": _head_commit(fake, run), "repository": repo, "head_repository": repo,
    }


def render_job(fake: FakeGitHub, run: RunRecord, attempt: AttemptRecord, job: JobRecord) -> dict[str, Any]:
    api = f"{fake._api}/repos/{run.repo}/actions"
    done = job.status == "completed"
    return {
        "id": job.id, "run_id": run.id, "run_url": f"{api}/runs/{run.id}", "run_attempt": attempt.number,
        "node_id": node_id("CheckRun", job.id), "head_sha": run.head_sha, "url": f"{api}/jobs/{job.id}",
        "html_url": f"https://github.com/{run.repo}/actions/runs/{run.id}/job/{job.id}", "status": job.status,
        "conclusion": job.conclusion, "created_at": timestamp(job.started_at),
        "started_at": timestamp(job.started_at), "completed_at": timestamp(job.started_at) if done else None,
        "name": job.name, "steps": job.steps, "check_run_url": f"{fake._api}/repos/{run.repo}/check-runs/{job.id}",
        "labels": ["ubuntu-latest"], "runner_id": 1 if done else None, "runner_name": "GitHub Actions 1" if done
        else None, "runner_group_id": 1 if done else None, "runner_group_name": "GitHub Actions" if done else None,
        "workflow_name": run.workflow, "head_branch": run.head_branch,
    }


def _run(fake: FakeGitHub, ctx: RequestContext) -> RunRecord:
    run = state(fake).runs.get(int(ctx.params["run_id"]))
    if run is None or run.repo.lower() != f"{ctx.params['owner']}/{ctx.params['repo']}".lower():
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return run


# ------------------------------------------------------------------------------------------------- routes
def get_run(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``actions/get-workflow-run`` (its latest attempt)."""
    return 200, render_run(fake, _run(fake, ctx))


def list_attempt_jobs(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``actions/list-jobs-for-workflow-run-attempt``: ``{total_count, jobs}`` (``per_page`` ≤ 100)."""
    run = _run(fake, ctx)
    n = int(ctx.params["attempt"])
    if not 1 <= n <= len(run.attempts):
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    attempt = run.attempts[n - 1]
    per_page = max(1, min(100, int(ctx.query.get("per_page") or 30)))
    page = max(1, int(ctx.query.get("page") or 1))
    jobs = [render_job(fake, run, attempt, j) for j in attempt.jobs]
    return 200, {"total_count": len(jobs), "jobs": jobs[(page - 1) * per_page: page * per_page]}


def download_job_logs(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``actions/download-job-logs-for-workflow-run``: 302 to a one-minute link, or the text (direct mode)."""
    s = state(fake)
    found = s.jobs.get(int(ctx.params["job_id"]))
    if found is None or s.runs[found[0]].repo.lower() != f"{ctx.params['owner']}/{ctx.params['repo']}".lower():
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    run_id, job = found
    if s.runs[run_id].logs_expired or job.status != "completed":
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    if s.mode == "direct":
        return 200, RawBody(job.log.encode())
    token = hashlib.sha256(f"{job.id}:{ctx.request_id}".encode()).hexdigest()[:32]
    s.links[token] = (job.id, fake.clock())
    ctx.headers["location"] = f"{fake._api}/_fake/job-logs/{token}"
    return 302, None


def fetch_log_link(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """The link a 302 points at (GitHub's is a signed blob-storage URL)."""
    s = state(fake)
    link = s.links.get(ctx.params["token"])
    if link is None or fake.clock() - link[1] > LOG_LINK_TTL:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    run_id, job = s.jobs[link[0]]
    if s.runs[run_id].logs_expired:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return 200, RawBody(job.log.encode())


def rerun_failed_jobs(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``actions/re-run-workflow-failed-jobs``: 201 ``{}``; a new attempt with the failed jobs queued."""
    run = _run(fake, ctx)
    reject_unknown_fields(fake, ctx, {"enable_debug_logging"})
    latest = run.attempts[-1]
    if latest.status != "completed":
        raise HttpError(403, error_body(403, "This workflow run is not completed", ctx.doc))
    s = state(fake)
    jobs = []
    for job in latest.jobs:
        if job.conclusion in ("failure", "cancelled", "timed_out"):
            jobs.append(_new_job(fake, s, run.id, {"name": job.name, "conclusion": None, "status": "queued"}))
        else:
            jobs.append(job)
    run.attempts.append(AttemptRecord(latest.number + 1, "queued", None, jobs, fake.clock()))
    return 201, {}


def get_suite(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``checks/get-suite``: the suite of a run (its latest attempt's status and conclusion)."""
    repo = f"{ctx.params['owner']}/{ctx.params['repo']}"
    wanted = int(ctx.params["suite_id"])
    for run in state(fake).runs.values():
        if run.check_suite_id == wanted and run.repo.lower() == repo.lower():
            attempt = run.attempts[-1]
            return 200, {
                "id": wanted, "node_id": node_id("CheckSuite", wanted), "head_branch": run.head_branch,
                "head_sha": run.head_sha, "status": attempt.status, "conclusion": attempt.conclusion,
                "url": f"{fake._api}/repos/{repo}/check-suites/{wanted}", "before": None, "after": run.head_sha,
                "pull_requests": _pr_minimal(fake, run), "app": None, "repository": _minimal_repo(fake, run.repo),
                "created_at": timestamp(run.attempts[0].created_at), "updated_at": timestamp(attempt.created_at),
                "head_commit": _head_commit(fake, run), "latest_check_runs_count": len(attempt.jobs),
                "check_runs_url": f"{fake._api}/repos/{repo}/check-suites/{wanted}/check-runs", "rerequestable": True,
                "runs_rerequestable": True}
    raise HttpError(404, error_body(404, "Not Found", ctx.doc))


_R = r"/actions/runs/(?P<run_id>[0-9]+)"
ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("GET", OWNER_REPO + _R, get_run, f"{_D_RUNS}#get-a-workflow-run"),
    ("GET", OWNER_REPO + _R + r"/attempts/(?P<attempt>[0-9]+)/jobs", list_attempt_jobs,
     f"{_D_JOBS}#list-jobs-for-a-workflow-run-attempt"),
    ("GET", OWNER_REPO + r"/actions/jobs/(?P<job_id>[0-9]+)/logs", download_job_logs,
     f"{_D_JOBS}#download-job-logs-for-a-workflow-run"),
    ("POST", OWNER_REPO + _R + r"/rerun-failed-jobs", rerun_failed_jobs,
     f"{_D_RUNS}#re-run-failed-jobs-from-a-workflow-run"),
    ("GET", OWNER_REPO + r"/check-suites/(?P<suite_id>[0-9]+)", get_suite, f"{_D_SUITES}#get-a-check-suite"),
    ("GET", r"/_fake/job-logs/(?P<token>[0-9a-f]{32})", fetch_log_link,
     f"{_D_JOBS}#download-job-logs-for-a-workflow-run"),
]
ROUTES = [(m, re.compile(p), h, d) for m, p, h, d in ROUTE_SPECS]
