"""A read-only GitHub ``ToolExecutor`` for the specialists (``shared.ai.specialists``).

It runs exactly the *read* tools the DevOps and Code Intelligence allow-lists name, through githubkit with
Reynolds' own credentials (the model never sees them): repository metadata, workflow runs, their jobs and
logs, file contents and directory listings, code search and pull-request diffs. Write tools never get here
(``run_specialist`` turns them into proposals); a write or unknown name raises. Platform (Graph) reads are
not served by this executor: it answers that they are unavailable, so the model can carry on without them.

Arguments are typed and validated first (``shared.ai.tool_args``): the repository is the task's, fixed in code
(a model asking for another one is refused before any request); paths are canonical and cannot leave the
repository; a code search keeps the model's plain terms only and gets its ``repo:`` scope from the code. Every
call is one of githubkit's typed REST methods, never a URL built from model text.

Results are compact JSON projections (the model needs the facts, not every URL GitHub returns), capped at
:data:`MAX_RESULT_CHARS`; a 404 is an answer ("not found"), every other HTTP failure raises so the activity's
retry policy sees it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from githubkit.exception import RequestFailed

from shared.ai.specialists import SPECIALISTS
from shared.ai.tool_args import (
    ContentArgs,
    JobArgs,
    PullArgs,
    RunArgs,
    RunListArgs,
    SearchArgs,
    ToolArgumentError,
    parse_read_args,
    task_repo,
)
from shared.errors import ReynoldsError
from shared.work.tasks import Specialist

logger = logging.getLogger(__name__)

#: Text returned from one call before the specialist loop truncates further.
MAX_RESULT_CHARS = 20_000
MAX_LIST_ITEMS = 30
_RUN_KEYS = ("id", "name", "head_branch", "head_sha", "event", "status", "conclusion", "run_number",
             "run_attempt", "created_at", "updated_at", "html_url")
_JOB_KEYS = ("id", "name", "status", "conclusion", "started_at", "completed_at")
_REPO_KEYS = ("full_name", "description", "default_branch", "visibility", "language", "open_issues_count",
              "pushed_at", "archived", "html_url")

#: Read tools of the GitHub-backed specialists (derived from their allow-lists, never wider).
GITHUB_READ_TOOLS = SPECIALISTS[Specialist.DEVOPS].read_tools | SPECIALISTS[Specialist.CODE].read_tools
#: Read tools of the Platform specialist (Microsoft Graph), answered as unavailable here.
PLATFORM_READ_TOOLS = SPECIALISTS[Specialist.PLATFORM].read_tools


class ToolNotAllowed(ReynoldsError):
    """A tool outside the read allow-list reached the executor (a bug upstream: never run it)."""


def _pick(data: Mapping[str, Any], keys: Collection[str]) -> dict[str, Any]:
    return {key: data.get(key) for key in keys if key in data}


def _dump(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "…[truncated]"


class GitHubReadTools:
    """Runs allow-listed GitHub read tools for one subtask, inside the task's one repository.

    ``repo`` (or the single entry of ``allowed_repos``) is that repository; without one, every repository-scoped
    tool is refused.
    """

    def __init__(self, github: Any, *, allowed_repos: Collection[str] | None = None, repo: str | None = None) -> None:
        self.github = github
        self.repo = repo if repo is not None else task_repo(allowed_repos)
        self._handlers: dict[str, Callable[[Any], Any]] = {
            "get_repository": self._get_repository,
            "list_workflow_runs": self._list_workflow_runs,
            "get_workflow_run": self._get_workflow_run,
            "list_run_jobs": self._list_run_jobs,
            "get_job_logs": self._get_job_logs,
            "get_file_contents": self._get_file_contents,
            "list_directory": self._list_directory,
            "search_code": self._search_code,
            "get_pull_request_diff": self._get_pull_request_diff,
        }
        missing = GITHUB_READ_TOOLS - set(self._handlers)
        if missing:  # pragma: no cover - a new read tool in an allow-list needs a handler here
            raise ToolNotAllowed(f"no handler for read tools: {', '.join(sorted(missing))}")

    def execute(self, name: str, arguments: dict[str, Any]) -> str:
        """Run read tool ``name``; see the module docstring for what comes back and what raises."""
        if name in PLATFORM_READ_TOOLS:
            return _dump({"status": "unavailable", "reason": "Microsoft Graph reads are not connected here"})
        handler = self._handlers.get(name)
        if handler is None:
            raise ToolNotAllowed(f"tool {name[:64]!r} is not an allow-listed read tool")
        try:
            args = parse_read_args(name, arguments, self.repo)
        except ToolArgumentError as exc:
            raise ToolNotAllowed(f"{name}: {exc}") from None
        try:
            return _dump(handler(args))
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return _dump({"status": "not_found"})
            raise

    # -- handlers (every one a typed githubkit method; owner and name come from the task, not the model) --
    def _owner_name(self) -> tuple[str, str]:
        owner, _, name = str(self.repo).partition("/")
        return owner, name

    def _get_repository(self, args: Any) -> Any:
        return _pick(self.github.rest.repos.get(*self._owner_name()).json(), _REPO_KEYS)

    def _list_workflow_runs(self, args: RunListArgs) -> Any:
        filters = {key: value for key, value in (("branch", args.branch), ("status", args.status)) if value}
        data = self.github.rest.actions.list_workflow_runs_for_repo(
            *self._owner_name(), per_page=MAX_LIST_ITEMS, **filters).json()
        return {"total_count": data.get("total_count"),
                "workflow_runs": [_pick(run, _RUN_KEYS) for run in data.get("workflow_runs", [])[:MAX_LIST_ITEMS]]}

    def _get_workflow_run(self, args: RunArgs) -> Any:
        return _pick(self.github.rest.actions.get_workflow_run(*self._owner_name(), args.run_id).json(), _RUN_KEYS)

    def _list_run_jobs(self, args: RunArgs) -> Any:
        data = self.github.rest.actions.list_jobs_for_workflow_run(
            *self._owner_name(), args.run_id, per_page=MAX_LIST_ITEMS).json()
        jobs = []
        for job in data.get("jobs", [])[:MAX_LIST_ITEMS]:
            item = _pick(job, _JOB_KEYS)
            item["steps"] = [_pick(step, ("name", "status", "conclusion", "number")) for step in job.get("steps", [])]
            jobs.append(item)
        return {"total_count": data.get("total_count"), "jobs": jobs}

    def _get_job_logs(self, args: JobArgs) -> Any:
        response = self.github.rest.actions.download_job_logs_for_workflow_run(*self._owner_name(), args.job_id)
        text = response.text
        # The end of a log is where failures are; keep the tail.
        return {"log_tail": text[-MAX_RESULT_CHARS // 2:], "truncated": len(text) > MAX_RESULT_CHARS // 2}

    def _content(self, args: ContentArgs) -> Any:
        extra = {"ref": args.ref} if args.ref else {}
        return self.github.rest.repos.get_content(*self._owner_name(), args.path, **extra).json()

    def _get_file_contents(self, args: ContentArgs) -> Any:
        data = self._content(args)
        if isinstance(data, list) or data.get("type") != "file":
            return {"status": "not_a_file", "path": args.path}
        raw = base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")
        return {"path": data.get("path"), "sha": data.get("sha"), "size": data.get("size"), "text": raw}

    def _list_directory(self, args: ContentArgs) -> Any:
        data = self._content(args)
        if not isinstance(data, list):
            return {"status": "not_a_directory", "path": args.path}
        return {"entries": [_pick(entry, ("name", "path", "type", "size")) for entry in data[:200]]}

    def _search_code(self, args: SearchArgs) -> Any:
        # ``args.query`` holds the model's plain terms and the scope the code added (``repo:<task repo>``).
        data = self.github.rest.search.code(q=args.query, per_page=MAX_LIST_ITEMS).json()
        items = []
        for item in data.get("items", [])[:MAX_LIST_ITEMS]:
            repository = item.get("repository") if isinstance(item.get("repository"), dict) else {}
            found_in = str(repository.get("full_name") or self.repo)
            if found_in.lower() == str(self.repo).lower():  # belt and braces: never show another repo's hit
                items.append(_pick(item, ("name", "path", "sha")))
        return {"total_count": data.get("total_count"), "items": items}

    def _get_pull_request_diff(self, args: PullArgs) -> Any:
        response = self.github.rest.pulls.get(*self._owner_name(), args.number,
                                              headers={"Accept": "application/vnd.github.diff"})
        return {"diff": response.text}
