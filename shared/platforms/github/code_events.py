"""Typed payloads of the engineering-work webhooks (issue 23): just the fields Reynolds reads, and each event's
identity for replays.

Events and the actions Reynolds acts on (``ACTIONS``): ``pull_request`` (opened, synchronize, ready_for_review,
closed), ``pull_request_review`` (submitted), ``pull_request_review_comment`` (created), ``workflow_run``
(completed), ``check_suite`` (completed). The models accept every action of their event (an unrouted action must
still parse, to be acknowledged as ignored) and ignore fields they do not name. Field names and nullability follow
GitHub's *Webhook events and payloads* as octokit/webhooks publishes them (``payload-examples`` /
``payload-schemas``); ``tests/test_code_events.py`` validates each model against every example of its event in
``../shared/fixtures/github-webhooks``.

Identity (like ``issue_comment.<action>:<comment id>:<updated_at>`` in :mod:`.events`): stable across
redeliveries and replays under any delivery id, different for every distinct happening —

* ``pull_request.<action>:<pr id>:<head sha>:<updated_at>`` — a push is a new head SHA (``synchronize``);
* ``pull_request_review.<action>:<review id>:<submitted_at>``;
* ``pull_request_review_comment.<action>:<comment id>:<updated_at>``;
* ``workflow_run.<action>:<run id>:<run_attempt>`` — one per attempt, so a re-run is a new event;
* ``check_suite.<action>:<suite id>:<updated_at>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

#: The actions Reynolds acts on, per event (routing adds these; see the issue 23 report).
ACTIONS: dict[str, frozenset[str]] = {
    "pull_request": frozenset({"opened", "synchronize", "ready_for_review", "closed"}),
    "pull_request_review": frozenset({"submitted"}),
    "pull_request_review_comment": frozenset({"created"}),
    "workflow_run": frozenset({"completed"}),
    "check_suite": frozenset({"completed"}),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    login: str
    id: int
    type: str


class Repo(_Model):
    full_name: str


class Repository(_Model):
    full_name: str
    default_branch: str


class Installation(_Model):
    id: int


class Branch(_Model):
    ref: str
    sha: str
    repo: Repo | None = None  # null when the fork was deleted


class PullRequest(_Model):
    id: int
    number: int
    state: str
    draft: bool = False
    title: str
    body: str | None = None
    user: User
    head: Branch
    base: Branch
    html_url: str
    updated_at: str
    merged: bool | None = None
    author_association: str


class _Event(_Model):
    action: str
    repository: Repository
    sender: User
    installation: Installation | None = None


class PullRequestEvent(_Event):
    number: int
    pull_request: PullRequest
    before: str | None = None  # synchronize: the previous head
    after: str | None = None  # synchronize: the new head

    def identity(self) -> str:
        pr = self.pull_request
        return f"pull_request.{self.action}:{pr.id}:{pr.head.sha}:{pr.updated_at}"


class Review(_Model):
    id: int
    body: str | None = None
    state: str
    commit_id: str
    submitted_at: str | None = None
    user: User
    author_association: str


class ReviewedPull(_Model):
    id: int
    number: int
    draft: bool = False
    head: Branch
    base: Branch
    user: User


class PullRequestReviewEvent(_Event):
    review: Review
    pull_request: ReviewedPull

    def identity(self) -> str:
        return f"pull_request_review.{self.action}:{self.review.id}:{self.review.submitted_at or ''}"


class ReviewComment(_Model):
    id: int
    body: str
    path: str
    line: int | None = None  # null when the comment is outdated (its line left the diff)
    side: str | None = None
    commit_id: str
    updated_at: str
    user: User
    author_association: str
    pull_request_review_id: int | None = None
    in_reply_to_id: int | None = None


class PullRequestReviewCommentEvent(_Event):
    comment: ReviewComment
    pull_request: ReviewedPull

    def identity(self) -> str:
        return f"pull_request_review_comment.{self.action}:{self.comment.id}:{self.comment.updated_at}"


class RunBranch(_Model):
    ref: str
    sha: str  # the run's pull request entries name the repository by id and name only


class RunPullRequest(_Model):
    number: int
    head: RunBranch
    base: RunBranch


class WorkflowRun(_Model):
    id: int
    name: str | None = None
    run_attempt: int
    status: str | None = None
    conclusion: str | None = None
    head_sha: str
    head_branch: str | None = None
    event: str
    html_url: str
    check_suite_id: int | None = None
    pull_requests: list[RunPullRequest] = []
    updated_at: str
    actor: User | None = None
    triggering_actor: User | None = None


class WorkflowRunEvent(_Event):
    workflow_run: WorkflowRun

    def identity(self) -> str:
        return f"workflow_run.{self.action}:{self.workflow_run.id}:{self.workflow_run.run_attempt}"


class SuiteApp(_Model):
    id: int
    slug: str | None = None


class CheckSuite(_Model):
    id: int
    status: str | None = None
    conclusion: str | None = None
    head_sha: str
    head_branch: str | None = None
    updated_at: str | None = None
    app: SuiteApp | None = None
    pull_requests: list[RunPullRequest] = []
    latest_check_runs_count: int | None = None


class CheckSuiteEvent(_Event):
    check_suite: CheckSuite

    def identity(self) -> str:
        return f"check_suite.{self.action}:{self.check_suite.id}:{self.check_suite.updated_at or ''}"


CodeEvent = (PullRequestEvent | PullRequestReviewEvent | PullRequestReviewCommentEvent | WorkflowRunEvent
             | CheckSuiteEvent)
MODELS: dict[str, type[_Event]] = {
    "pull_request": PullRequestEvent,
    "pull_request_review": PullRequestReviewEvent,
    "pull_request_review_comment": PullRequestReviewCommentEvent,
    "workflow_run": WorkflowRunEvent,
    "check_suite": CheckSuiteEvent,
}


def parse(event: str, payload: Mapping[str, Any]) -> CodeEvent | None:
    """The typed payload of ``event``; None for an event this module does not model. Raises
    ``pydantic.ValidationError`` when a field Reynolds reads is missing or of the wrong type."""
    model = MODELS.get(event)
    if model is None:
        return None
    return model.model_validate(payload)  # type: ignore[return-value]


def routed(event: str, payload: Mapping[str, Any]) -> bool:
    """Whether Reynolds acts on this event and action (the payload must also parse)."""
    return isinstance(payload.get("action"), str) and payload["action"] in ACTIONS.get(event, frozenset())


def identity(event: str, payload: Mapping[str, Any]) -> str | None:
    """The payload identity (module docstring), or None when the event is not modelled or does not parse —
    the caller then falls back to :func:`.events.event_identity`'s digest."""
    try:
        parsed = parse(event, payload)
    except ValidationError:
        return None
    if parsed is None:
        return None
    ident = parsed.identity()
    return ident if len(ident) <= 180 else None
