"""What the fake GitHub stores and records: users, repositories, issues, comments, reactions, calls and writes,
plus its error bodies, rate buckets and injected faults."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

JSON = Any
UserType = Literal["User", "Bot", "Organization"]
Association = Literal["OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "NONE"]
WriteKind = Literal[
    "comment", "comment_edit", "comment_delete", "issue", "issue_edit", "issue_state", "label", "unlabel", "reaction",
    "review", "push",
]

DOCS = "https://docs.github.com/rest"
SECONDARY_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
PRIMARY_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-rate-limits"
MAX_BODY = 65536
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
ASSOCIATIONS = ("OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "NONE")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
GITHUB_WEB = "https://github.com"


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(type_name: str, ident: int) -> str:
    # GitHub's legacy global node id: base64("0<len(type)>:<Type><id>"), e.g. MDQ6VXNlcjE= for User 1.
    return base64.b64encode(f"0{len(type_name)}:{type_name}{ident}".encode()).decode()


def error_body(status: int, message: str, doc: str = DOCS, **extra: Any) -> dict[str, Any]:
    return {"message": message, **extra, "documentation_url": doc, "status": str(status)}


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake answered (HTTP or ``act``)."""

    method: str
    path: str
    query: dict[str, str]
    json: JSON
    login: str | None
    status: int


@dataclass(frozen=True)
class WriteEvent:
    """A successful write, as the input of a simulated webhook delivery.

    ``resource`` is the resulting object (comment, issue, label or reaction) as the REST API renders it,
    ``issue`` the issue after the write, ``changes`` the previous values for edits (GitHub's ``changes``
    shape), ``label`` the label for label events.
    """

    kind: WriteKind
    repo: str
    number: int
    resource_id: int
    actor: dict[str, Any]
    resource: dict[str, Any]
    issue: dict[str, Any]
    changes: dict[str, Any] | None = None
    label: dict[str, Any] | None = None
    subject: Literal["issue", "comment"] | None = None
    #: The ``x-github-request-id`` of the request that made this write (one request can make several).
    request_id: str = ""


class FakeGitHubError(Exception):
    """An ``act`` convenience call got a non-2xx answer."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class FaultRule:
    method: str | None
    pattern: re.Pattern[str]
    status: int
    body: JSON
    headers: dict[str, str]
    times: int


@dataclass
class RateBucket:
    limit: int
    remaining: int
    reset: int


@dataclass
class IssueRecord:
    id: int
    number: int
    title: str
    body: str | None
    login: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    labels: list[str] = field(default_factory=list)  # lower-cased label keys, in application order


@dataclass
class CommentRecord:
    id: int
    repo: str
    number: int
    body: str
    login: str
    created_at: datetime
    updated_at: datetime


@dataclass
class ReactionRecord:
    id: int
    login: str
    content: str
    created_at: datetime


@dataclass
class RepoRecord:
    id: int
    owner: str
    name: str
    created_at: datetime
    issues: dict[int, IssueRecord] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-cased name -> label object
    associations: dict[str, str] = field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class RequestContext:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: JSON
    login: str
    doc: str
    writes: list[WriteEvent] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    request_id: str = ""


@dataclass(frozen=True)
class RawBody:
    """A non-JSON answer (job logs are ``text/plain``)."""

    data: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[["FakeGitHub", RequestContext], tuple[int, JSON]]
OWNER_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


