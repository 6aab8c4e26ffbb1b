"""Repository policy: ``.github/reynolds.yml``, validated against the published schema, never half-applied.

The file (schema: ``docs/reynolds.schema.json``; examples in the README, "Acting on proposals")::

    version: 1
    tools:
      add_labels: auto
      create_issue: approve
      rerun_failed_jobs: never
    approvals:
      remind_after_hours: 24
      expire_after_hours: 72

Where it is read from, as GitHub finds default community health files ("Creating a default community health
file", docs.github.com/communities/setting-up-your-project-for-healthy-contributions/
creating-a-default-community-health-file: a public repository named ``.github`` of the account holds defaults
used by every repository of that account *that has no file of its own*; Probot's ``context.config`` reads
``.github/<name>`` from that repository the same way):

1. ``<owner>/<repo>``: ``.github/reynolds.yml`` through the contents API;
2. when that is 404, ``<owner>/.github``: ``.github/reynolds.yml``;
3. when that is 404 too, the defaults.

A repository's own file replaces the organisation's entirely (no merging, as for community files).

Defaults are conservative: every tool waits for an approval, except ``add_labels`` on the task's own issue,
which runs (``auto``) unless the file names ``add_labels``. A file that does not parse or validate gives a
:class:`PolicyError` whose message is posted on the issue; *none* of the file applies and nothing runs ``auto``
— not even the labels exception — until it is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.act.proposals import WRITE_TOOLS, ProposalLike
from shared.act.yaml_subset import YamlSubsetError, load

Mode = Literal["auto", "approve", "never"]
POLICY_PATH = ".github/reynolds.yml"
#: The organisation-wide fallback repository, as for community health files.
ORG_REPOSITORY = ".github"
DEFAULT_REMIND_AFTER_HOURS = 24
DEFAULT_EXPIRE_AFTER_HOURS = 72
#: Top-level keys later capabilities own: accepted (objects) and not read here.
RESERVED_KEYS = ("reviews", "improvements")

#: ``(owner/repo, path) -> text | None`` (None: GitHub answered 404). A ``ValueError`` means "there, but not a
#: readable file" (reported as a bad file); any other exception means "could not read" and propagates.
FileReader = Callable[[str, str], "str | None"]


class PolicyError(ValueError):
    """A ``.github/reynolds.yml`` that cannot apply; ``str()`` is the report posted on the issue."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"- {problem}" for problem in problems[:10])
        super().__init__(f"`{source}` was not applied (every write waits for an approval until it is fixed):\n"
                         f"{listed}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ToolModes(_Strict):
    """``tools:``: one mode per write tool; unnamed tools keep the default."""

    create_issue: Mode | None = None
    add_labels: Mode | None = None
    rerun_failed_jobs: Mode | None = None
    create_review_comment: Mode | None = None
    create_comment: Mode | None = None
    post_channel_message: Mode | None = None
    create_calendar_event: Mode | None = None


class ApprovalTimes(_Strict):
    """``approvals:``: when a pending proposal is reminded once, and when it expires (hours)."""

    remind_after_hours: int = Field(DEFAULT_REMIND_AFTER_HOURS, ge=1, le=720)
    expire_after_hours: int = Field(DEFAULT_EXPIRE_AFTER_HOURS, ge=1, le=720)


class PolicyFile(_Strict):
    """The file's content, as ``docs/reynolds.schema.json`` publishes it."""

    version: Literal[1] = 1
    tools: ToolModes = ToolModes()
    approvals: ApprovalTimes = ApprovalTimes()
    reviews: dict[str, Any] | None = None
    improvements: dict[str, Any] | None = None


class Policy(BaseModel):
    """The policy in force for one repository, and where it came from."""

    model_config = ConfigDict(frozen=True)

    file: PolicyFile = PolicyFile()
    #: ``owner/repo:.github/reynolds.yml``, ``owner/.github:.github/reynolds.yml`` or ``defaults``.
    source: str = "defaults"
    #: The report of a bad file (then ``file`` is the defaults and nothing is ``auto``).
    error: str | None = None

    def mode(self, proposal: ProposalLike, task_issue: str | None) -> Mode:
        """How ``proposal`` may run: the file's mode for its tool, else the default.

        ``task_issue`` is the tracking issue as ``owner/repo#n``: labels there are ``auto`` by default.
        """
        if self.error is not None:
            return "approve"
        named: Mode | None = getattr(self.file.tools, proposal.tool, None)
        if named is not None:
            return named
        own_issue = task_issue is not None and proposal.target.lower() == task_issue.lower()
        return "auto" if proposal.tool == "add_labels" and own_issue else "approve"


def parse_policy(text: str, source: str) -> PolicyFile:
    """The validated file, or :class:`PolicyError` listing every problem (line numbers for YAML problems)."""
    try:
        data = load(text)
    except YamlSubsetError as exc:
        raise PolicyError(source, [str(exc)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(source, ["the file must be a mapping (`tools:`, `approvals:` …)"])
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            if error["type"] == "extra_forbidden":
                known = ", ".join(WRITE_TOOLS) if error["loc"][:1] == ("tools",) else \
                    "version, tools, approvals, " + ", ".join(RESERVED_KEYS)
                problems.append(f"`{where[:80]}` is not a known key (known: {known})")
            elif error["type"] == "literal_error" and error["loc"][:1] == ("tools",):
                problems.append(f"`{where[:80]}` must be auto, approve or never")
            else:
                problems.append(f"`{where[:80]}`: {error['msg'][:120]}")
        raise PolicyError(source, problems) from None


def load_policy(read: FileReader, repo: str) -> Policy:
    """The policy of ``repo`` (``owner/name``): its own file, else its organisation's ``.github`` repository's,
    else the defaults. A bad file yields a policy whose ``error`` is the report and under which nothing is
    ``auto``; a read failure (not a 404) propagates, so the caller retries rather than acting on defaults."""
    owner, _, name = repo.partition("/")
    places = [repo] if name.lower() == ORG_REPOSITORY else [repo, f"{owner}/{ORG_REPOSITORY}"]
    for where in places:
        source = f"{where}:{POLICY_PATH}"
        try:
            text = read(where, POLICY_PATH)
        except ValueError as exc:  # there, but not a readable text file (a directory, too large, not UTF-8)
            return Policy(source=source, error=str(PolicyError(source, [str(exc)[:200]])))
        if text is None:
            continue
        try:
            return Policy(file=parse_policy(text, source), source=source)
        except PolicyError as exc:
            return Policy(source=source, error=str(exc))
    return Policy()
