"""Seeding the fake GitHub's pull requests and workflow runs from a scenario's ``"pulls"`` and ``"runs"`` keys (the
format issue 23 gives ``tools.simulate`` / ``tools.arena``), validated with clear errors:

    "pulls": {"octo/app": [{"number": 5, "head": "feature", "base": "main", "files": {"path": "new text"},
                            "draft": false}]}
    "runs":  {"octo/app": [{"id": 99, "conclusion": "failure", "pull_request": 5,
                            "jobs": [{"name": "test", "conclusion": "failure", "log": "…"}]}]}

A pull request's diff is taken against the base branch's files (``repo_files``, seeded before); a later item with
the same number is a push (new head SHA). A later run item with the same id is that run's next attempt. A run's
``conclusion``, when given, must agree with its jobs'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.fakes.github import actions_api, pulls_api, repos_api

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PullSeed(_Strict):
    number: int = Field(ge=1)
    head: str = Field(min_length=1)
    base: str = repos_api.DEFAULT_BRANCH
    files: dict[str, str | None]
    draft: bool = False
    title: str | None = None
    author: str | None = None


class StepSeed(_Strict):
    name: str
    conclusion: str | None = None


class JobSeed(_Strict):
    name: str = Field(min_length=1)
    conclusion: Literal["success", "failure", "cancelled", "timed_out", "skipped"] = "success"
    log: str = ""
    steps: list[StepSeed] | None = None


class RunSeed(_Strict):
    id: int = Field(ge=1)
    conclusion: Literal["success", "failure", "cancelled", "timed_out"] | None = None
    pull_request: int | None = None
    head_branch: str | None = None
    workflow: str = "CI"
    jobs: list[JobSeed] = Field(min_length=1)


def seed(fake: FakeGitHub, pulls: dict[str, list[dict[str, Any]]] | None = None,
         runs: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Seed ``pulls`` then ``runs`` (repositories must exist on the fake); raises ``ValueError`` naming the item."""
    for repo, items in (pulls or {}).items():
        for i, raw in enumerate(items):
            p = PullSeed.model_validate(raw)
            try:
                pulls_api.add_pull(fake, repo, p.number, head=p.head, base=p.base, files=p.files, draft=p.draft,
                                   title=p.title, login=p.author)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"pulls[{repo!r}][{i}]: {exc}") from exc
    for repo, items in (runs or {}).items():
        for i, raw in enumerate(items):
            r = RunSeed.model_validate(raw)
            jobs = [j.model_dump(exclude_none=True) for j in r.jobs]
            derived = actions_api._overall([actions_api.JobRecord(0, j.name, "completed", j.conclusion, "", [],
                                                                  fake.clock()) for j in r.jobs])[1]
            if r.conclusion is not None and r.conclusion != derived:
                raise ValueError(f"runs[{repo!r}][{i}]: conclusion {r.conclusion} but its jobs conclude {derived}")
            try:
                if r.id in actions_api.state(fake).runs:
                    actions_api.add_attempt(fake, r.id, jobs)
                else:
                    actions_api.add_run(fake, repo, r.id, jobs=jobs, pull_request=r.pull_request,
                                        head_branch=r.head_branch, workflow=r.workflow)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"runs[{repo!r}][{i}]: {exc!r}") from exc
