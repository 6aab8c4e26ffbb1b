"""Typed, validated arguments of the specialists' GitHub read tools: the model proposes, the code disposes.

The repository is fixed by the task: a ``repo`` the model sends must name it (case-insensitive) and is then
replaced by the task's own value, so no model-chosen string ever reaches a URL as the repository. Paths are
normalised and refused when they could leave the repository: ``..`` and ``.`` segments, percent-encoded or
backslash forms, control or invisible characters, absolute URLs and scheme-like prefixes. Refs and filters are
restricted to what Git and GitHub accept. A code search keeps only plain terms: every ``qualifier:value``
(``repo:``, ``org:``, ``user:``, ``path:`` …) and boolean operator is stripped, and the scope
``repo:<task repo>`` is added by the code.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: GitHub's own cap on a search query (characters), and on a content path we accept.
MAX_QUERY_CHARS = 256
MAX_PATH_CHARS = 1024
MAX_GITHUB_ID = 2**53 - 1

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
# A ref or branch name: what `git check-ref-format` allows, narrowed to printable ASCII without the specials.
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/+-]{1,255}(?<![./])$")
_QUALIFIER = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_.-]*:")
_BOOLEAN = frozenset({"AND", "OR", "NOT"})
_SEARCH_TERM = re.compile(r"[^\s\"]+|\"[^\"]*\"")
# Characters that make a path mean something other than one repository file: encodings, separators of
# other schemes, query and fragment, and the Windows separator.
_PATH_FORBIDDEN = re.compile(r"[%\\?#:*<>|\"]")

RunStatus = Literal["completed", "action_required", "cancelled", "failure", "neutral", "skipped", "stale",
                    "success", "timed_out", "in_progress", "queued", "requested", "waiting", "pending"]


class ToolArgumentError(ValueError):
    """The arguments of a tool call were refused; the message is safe to show the model (no echo)."""


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def normalise_repo_path(value: str, *, allow_root: bool = False) -> str:
    """A repository-relative path in canonical form, or ``ToolArgumentError`` when it could leave the repo.

    ``a//b/`` becomes ``a/b``; a leading ``/`` or ``./`` is dropped. Refused: ``..`` or ``.`` segments (in any
    encoding: ``%`` is refused outright), backslashes, ``:`` (schemes, absolute URLs, drive letters), ``?``/``#``,
    control, format and invisible characters, and anything longer than :data:`MAX_PATH_CHARS`.
    """
    if not isinstance(value, str):
        raise ToolArgumentError("path must be a string")
    if len(value) > MAX_PATH_CHARS:
        raise ToolArgumentError("path is too long")
    if any(_invisible(char) for char in value):
        raise ToolArgumentError("path contains control or invisible characters")
    if _PATH_FORBIDDEN.search(value):
        raise ToolArgumentError("path contains characters that can leave the repository (%, \\, :, ?, #)")
    if value.startswith("//"):
        raise ToolArgumentError("path looks like a protocol-relative URL")
    folded = unicodedata.normalize("NFKC", value)
    if folded != value:
        # Full-width dots and slashes fold to "." and "/": a path that changes under NFKC is refused.
        raise ToolArgumentError("path is not in canonical Unicode form")
    segments = [segment for segment in value.strip().split("/") if segment]
    if any(segment in (".", "..") or segment.strip() != segment for segment in segments):
        raise ToolArgumentError("path must not contain '.' or '..' segments")
    path = "/".join(segments)
    if not path and not allow_root:
        raise ToolArgumentError("path is empty")
    return path


def scoped_search_query(query: str, repo: str) -> str:
    """Plain search terms of ``query`` (qualifiers and boolean operators stripped) plus ``repo:<repo>``."""
    if not isinstance(query, str):
        raise ToolArgumentError("query must be a string")
    cleaned = "".join(" " if _invisible(char) else char for char in query)
    terms = [term for term in _SEARCH_TERM.findall(cleaned)
             if not _QUALIFIER.match(term.strip('"')) and term.upper() not in _BOOLEAN]
    text = " ".join(terms)[: MAX_QUERY_CHARS - len(repo) - 7].strip()
    if not text:
        raise ToolArgumentError("query has no search terms once qualifiers are removed")
    return f"{text} repo:{repo}"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    repo: str | None = None


_Id = Annotated[int, Field(ge=1, le=MAX_GITHUB_ID)]


class RepoArgs(_Args):
    """``get_repository``."""


class RunListArgs(_Args):
    """``list_workflow_runs``: optional branch and status filters."""

    branch: str | None = None
    status: RunStatus | None = None

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        if value is not None and not _REF.match(value):
            raise ValueError("branch is not a valid branch name")
        return value


class RunArgs(_Args):
    """``get_workflow_run``, ``list_run_jobs``."""

    run_id: _Id


class JobArgs(_Args):
    """``get_job_logs``."""

    job_id: _Id


class ContentArgs(_Args):
    """``get_file_contents``, ``list_directory``: a path inside the repository at an optional ref."""

    path: str
    ref: str | None = None

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and not _REF.match(value):
            raise ValueError("ref is not a valid branch, tag or commit")
        return value


class SearchArgs(_Args):
    """``search_code``."""

    query: str = Field(max_length=1000)


class PullArgs(_Args):
    """``get_pull_request_diff``."""

    number: _Id


READ_TOOL_ARGS: dict[str, type[_Args]] = {
    "get_repository": RepoArgs,
    "list_workflow_runs": RunListArgs,
    "get_workflow_run": RunArgs,
    "list_run_jobs": RunArgs,
    "get_job_logs": JobArgs,
    "get_file_contents": ContentArgs,
    "list_directory": ContentArgs,
    "search_code": SearchArgs,
    "get_pull_request_diff": PullArgs,
}


def task_repo(repos: Any) -> str | None:
    """The one repository a task is scoped to (None when there is none, or the scope names several)."""
    values = sorted({str(repo) for repo in repos or () if repo})
    return values[0] if len(values) == 1 and _REPO.match(values[0]) else None


def parse_read_args(name: str, arguments: dict[str, Any], repo: str | None) -> _Args:
    """Validate ``arguments`` of read tool ``name`` for a task scoped to ``repo``; raise ``ToolArgumentError``.

    The returned model's ``repo`` is the task's repository (never the model's spelling of it); a ``path`` is
    canonical; a ``query`` is already scoped.
    """
    model = READ_TOOL_ARGS.get(name)
    if model is None:
        raise ToolArgumentError("not a GitHub read tool")
    if repo is None or not _REPO.match(repo):
        raise ToolArgumentError("this task has no repository to read from")
    asked = arguments.get("repo")
    if asked is not None and (not isinstance(asked, str) or asked.strip().lower() != repo.lower()):
        raise ToolArgumentError("repository is outside this task's scope")
    try:
        parsed = model.model_validate({**arguments, "repo": repo})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        # pydantic's message, never the value: the model wrote the value.
        raise ToolArgumentError(f"argument {where[:40]} is invalid: {first['msg'][:120]}") from None
    if isinstance(parsed, ContentArgs):
        path = normalise_repo_path(parsed.path, allow_root=name == "list_directory")
        parsed = parsed.model_copy(update={"path": path})
    if isinstance(parsed, SearchArgs):
        parsed = parsed.model_copy(update={"query": scoped_search_query(parsed.query, repo)})
    return parsed
