"""A read-only GitHub ``ToolExecutor`` for the specialists (``shared.ai.specialists``).

It runs exactly the *read* tools the DevOps and Code Intelligence allow-lists name, through githubkit with
Reynolds' own credentials (the model never sees them): repository metadata, workflow runs, their jobs and
logs, file contents and directory listings, code search and pull-request diffs. Write tools never get here
(``run_specialist`` turns them into proposals); a write or unknown name raises. Platform (Graph) reads are
not served by this executor: it answers that they are unavailable, so the model can carry on without them.

Results are compact JSON projections (the model needs the facts, not every URL GitHub returns); a 404 is an
answer ("not found"), every other HTTP failure raises so the activity's retry policy sees it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from githubkit.exception import RequestFailed

from shared.ai.specialists import SPECIALISTS
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
    """Runs allow-listed GitHub read tools for one subtask, scoped to ``allowed_repos``."""

    def __init__(self, github: Any, *, allowed_repos: Collection[str] | None = None) -> None:
        self.github = github
        self.allowed = None if allowed_repos is None else {repo.lower() for repo in allowed_repos}
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
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
        repo = arguments.get("repo")
        if isinstance(repo, str) and self.allowed is not None and repo.lower() not in self.allowed:
            raise ToolNotAllowed(f"repository {repo[:140]!r} is outside this task's scope")
        try:
            return _dump(handler(arguments))
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return _dump({"status": "not_found"})
            raise

    # -- handlers ------------------------------------------------------------------------------------------
    @staticmethod
    def _split(arguments: Mapping[str, Any]) -> tuple[str, str]:
        owner, _, name = str(arguments["repo"]).partition("/")
        return owner, name

    def _get_repository(self, arguments: dict[str, Any]) -> Any:
        return _pick(self.github.rest.repos.get(*self._split(arguments)).json(), _REPO_KEYS)

    def _list_workflow_runs(self, arguments: dict[str, Any]) -> Any:
        filters = {key: arguments[key] for key in ("branch", "status") if arguments.get(key)}
        data = self.github.rest.actions.list_workflow_runs_for_repo(
            *self._split(arguments), per_page=MAX_LIST_ITEMS, **filters).json()
        return {"total_count": data.get("total_count"),
                "workflow_runs": [_pick(run, _RUN_KEYS) for run in data.get("workflow_runs", [])[:MAX_LIST_ITEMS]]}

    def _get_workflow_run(self, arguments: dict[str, Any]) -> Any:
        data = self.github.rest.actions.get_workflow_run(*self._split(arguments), int(arguments["run_id"])).json()
        return _pick(data, _RUN_KEYS)

    def _list_run_jobs(self, arguments: dict[str, Any]) -> Any:
        data = self.github.rest.actions.list_jobs_for_workflow_run(
            *self._split(arguments), int(arguments["run_id"]), per_page=MAX_LIST_ITEMS).json()
        jobs = []
        for job in data.get("jobs", [])[:MAX_LIST_ITEMS]:
            item = _pick(job, _JOB_KEYS)
            item["steps"] = [_pick(step, ("name", "status", "conclusion", "number")) for step in job.get("steps", [])]
            jobs.append(item)
        return {"total_count": data.get("total_count"), "jobs": jobs}

    def _get_job_logs(self, arguments: dict[str, Any]) -> Any:
        response = self.github.rest.actions.download_job_logs_for_workflow_run(
            *self._split(arguments), int(arguments["job_id"]))
        text = response.text
        # The end of a log is where failures are; keep the tail.
        return {"log_tail": text[-MAX_RESULT_CHARS // 2:], "truncated": len(text) > MAX_RESULT_CHARS // 2}

    def _content(self, arguments: dict[str, Any]) -> Any:
        ref = arguments.get("ref")
        extra = {"ref": ref} if ref else {}
        return self.github.rest.repos.get_content(*self._split(arguments), str(arguments["path"]), **extra).json()

    def _get_file_contents(self, arguments: dict[str, Any]) -> Any:
        data = self._content(arguments)
        if isinstance(data, list) or data.get("type") != "file":
            return {"status": "not_a_file", "path": arguments["path"]}
        raw = base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")
        return {"path": data.get("path"), "sha": data.get("sha"), "size": data.get("size"), "text": raw}

    def _list_directory(self, arguments: dict[str, Any]) -> Any:
        data = self._content(arguments)
        if not isinstance(data, list):
            return {"status": "not_a_directory", "path": arguments["path"]}
        return {"entries": [_pick(entry, ("name", "path", "type", "size")) for entry in data[:200]]}

    def _search_code(self, arguments: dict[str, Any]) -> Any:
        query = f"{arguments['query']} repo:{arguments['repo']}"
        data = self.github.rest.search.code(q=query, per_page=MAX_LIST_ITEMS).json()
        return {"total_count": data.get("total_count"),
                "items": [_pick(item, ("name", "path", "sha")) for item in data.get("items", [])[:MAX_LIST_ITEMS]]}

    def _get_pull_request_diff(self, arguments: dict[str, Any]) -> Any:
        response = self.github.rest.pulls.get(*self._split(arguments), int(arguments["number"]),
                                              headers={"Accept": "application/vnd.github.diff"})
        return {"diff": response.text}
