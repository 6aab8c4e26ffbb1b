"""The GitHub calls behind Reynolds' approved writes (githubkit), and the reads that find them after a crash.

Operation ids (github/rest-api-description): ``issues/create``, ``issues/add-labels``,
``issues/list-labels-on-issue``, ``issues/create-comment``, ``issues/list-comments``, ``issues/list-for-repo``,
``actions/get-workflow-run``, ``actions/re-run-workflow-failed-jobs``. Every function takes a githubkit client
and raises githubkit's ``RequestFailed``/``RequestError`` unchanged: pacing, rate limits and refusals are the
caller's (``shared.act.writers``). Responses are read as JSON (``.json()``), not as githubkit's models, so a
field GitHub adds or omits never fails a write that happened.
"""

from __future__ import annotations

from typing import Any

#: How far back a reconciliation looks for an issue Reynolds may have created before a crash.
RECONCILE_PAGES = 3


def _split(repo: str) -> tuple[str, str]:
    owner, name = repo.split("/", 1)
    return owner, name


def create_issue(github: Any, repo: str, title: str, body: str) -> tuple[int, int]:
    """``issues/create``: the new issue's (number, id)."""
    data = github.rest.issues.create(*_split(repo), title=title, body=body).json()
    return int(data["number"]), int(data["id"])


def add_labels(github: Any, repo: str, number: int, labels: list[str]) -> list[str]:
    """``issues/add-labels``: the issue's labels afterwards."""
    data = github.rest.issues.add_labels(*_split(repo), number, labels=labels).json()
    return [str(item.get("name")) for item in data if isinstance(item, dict)]


def issue_labels(github: Any, repo: str, number: int) -> list[str]:
    """``issues/list-labels-on-issue`` (first 100: an issue has far fewer)."""
    data = github.rest.issues.list_labels_on_issue(*_split(repo), number, per_page=100).json()
    return [str(item.get("name")) for item in data if isinstance(item, dict)]


def create_comment(github: Any, repo: str, number: int, body: str) -> int:
    """``issues/create-comment`` (issues and pull requests alike): the comment id."""
    return int(github.rest.issues.create_comment(*_split(repo), number, body=body).json()["id"])


def rerun_failed_jobs(github: Any, repo: str, run_id: int) -> None:
    """``actions/re-run-workflow-failed-jobs`` (201, empty object)."""
    github.rest.actions.re_run_workflow_failed_jobs(*_split(repo), run_id)


def run_attempt(github: Any, repo: str, run_id: int) -> int:
    """``actions/get-workflow-run``: the run's current attempt number (1 before any re-run)."""
    return int(github.rest.actions.get_workflow_run(*_split(repo), run_id).json().get("run_attempt") or 1)


def find_comment(github: Any, repo: str, number: int, author: str, needle: str) -> int | None:
    """The id of a comment by ``author`` on ``repo#number`` whose body contains ``needle`` (crash reconciliation)."""
    owner, name = _split(repo)
    for comment in github.rest.paginate(github.rest.issues.list_comments, owner=owner, repo=name,
                                        issue_number=number, per_page=100, map_func=lambda r: r.json()):
        login = (comment.get("user") or {}).get("login")
        if login == author and needle in (comment.get("body") or ""):
            return int(comment["id"])
    return None


def find_issue(github: Any, repo: str, author: str, needle: str) -> tuple[int, int] | None:
    """(number, id) of a recent issue opened by ``author`` whose body contains ``needle`` (newest first, at most
    :data:`RECONCILE_PAGES` pages of 100)."""
    owner, name = _split(repo)
    for page in range(1, RECONCILE_PAGES + 1):
        issues = github.rest.issues.list_for_repo(owner, name, creator=author, state="all", sort="created",
                                                  direction="desc", per_page=100, page=page).json()
        for issue in issues:
            if needle in (issue.get("body") or ""):
                return int(issue["number"]), int(issue["id"])
        if len(issues) < 100:
            return None
    return None
