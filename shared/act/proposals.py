"""Typed, validated proposals: what a specialist's write tool call would write, where, in full, and its hash.

A write tool call (``shared.ai.specialists.ProposedWrite``) is checked twice before it becomes a proposal:

1. against the tool's own function schema, the one the model was given (``SPECIALISTS`` → ``ToolSpec``, through
   ``shared.ai.specialists.validate_arguments``: unknown or missing arguments, wrong JSON types, a repository
   outside the task);
2. against a typed model per tool (this module): GitHub's own limits (title 256, body 65,536 characters minus
   room for Reynolds' marker, label names 50), ids ≥ 1, ISO 8601 times with an offset and ``end`` after
   ``start``, e-mail attendees; the repository is the task's, spelled as the task spells it (``tool_args``'s
   rule for reads, reused for writes).

Every text is passed through ``shared.ai.safety.sanitize_output`` *before* it is hashed: a person approves the
exact bytes that will be written (links only into the task's repository, no mass mentions, no HTML comments,
so no forged marker).

A proposal's identity within a task is its *slot*: the subtask it came from and its position among that
subtask's write calls. Ids (``w1``, ``w2``, …) are given in order of first appearance and never reused; when a
re-run of a subtask proposes something else in the same slot, the id stays and the hash changes, so an approval
given for the old content is *stale* (:mod:`shared.act.decide`) and the person is asked again.

The hash is the SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of ``{tool, target,
content}``; people see its first :data:`SHORT_HASH` hex digits and approve with ``w1@<digits>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.ai.safety import sanitize_output
from shared.ai.specialists import SPECIALISTS, ProposedWrite, ToolSpec, validate_arguments
from shared.ai.tool_args import MAX_GITHUB_ID

#: Hex digits of the hash shown to people (and the fewest an approval may name).
SHORT_HASH = 8
#: GitHub refuses bodies over 65,536 characters; Reynolds' marker and proposal tag need a few hundred.
MAX_TEXT_CHARS = 65_000
MAX_TITLE_CHARS = 256
MAX_LABEL_CHARS = 50
MAX_LABELS = 20
MAX_ATTENDEES = 50
_ID = re.compile(r"^w[1-9][0-9]{0,3}$")
_GRAPH_ID = re.compile(r"^[A-Za-z0-9@:._=-]{1,256}$")
_EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")

ToolName = Literal["create_issue", "add_labels", "rerun_failed_jobs", "create_review_comment", "create_comment",
                   "post_channel_message", "create_calendar_event"]
#: Every write tool Reynolds can execute, in the order the policy schema lists them.
WRITE_TOOLS: tuple[str, ...] = ("create_issue", "add_labels", "rerun_failed_jobs", "create_review_comment",
                                "create_comment", "post_channel_message", "create_calendar_event")
_GitHubId = Annotated[int, Field(ge=1, le=MAX_GITHUB_ID)]


class ProposalError(ValueError):
    """A write call that cannot become a proposal; the message names the argument, never echoes its value."""


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RepoContent(_Content):
    repo: str


class CreateIssue(_RepoContent):
    """``create_issue``: a new issue in the task's repository."""

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: str = Field(max_length=MAX_TEXT_CHARS)


class AddLabels(_RepoContent):
    """``add_labels``: labels added to an issue or pull request (never removed)."""

    number: _GitHubId
    labels: tuple[str, ...] = Field(min_length=1, max_length=MAX_LABELS)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        seen: dict[str, str] = {}
        for item in value:
            if not isinstance(item, str) or not item.strip() or len(item.strip()) > MAX_LABEL_CHARS:
                raise ValueError(f"each label is 1 to {MAX_LABEL_CHARS} characters")
            if any(ord(char) < 32 for char in item):
                raise ValueError("labels may not contain control characters")
            seen.setdefault(item.strip().lower(), item.strip())  # GitHub label names are case-insensitive
        return tuple(seen.values())


class RerunFailedJobs(_RepoContent):
    """``rerun_failed_jobs``: re-run the failed jobs of one workflow run."""

    run_id: _GitHubId


class CreateComment(_RepoContent):
    """``create_review_comment`` / ``create_comment``: a comment on an issue or pull request."""

    number: _GitHubId
    body: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class PostChannelMessage(_Content):
    """``post_channel_message``: a message in a Teams channel (executed by the Teams writer, not here)."""

    team_id: str = Field(pattern=_GRAPH_ID.pattern)
    channel_id: str = Field(pattern=_GRAPH_ID.pattern)
    text: str = Field(min_length=1, max_length=28_000)  # Teams' message size limit is about 28 KB


class CreateCalendarEvent(_Content):
    """``create_calendar_event``: an Outlook event (executed by the Graph writer, not here)."""

    user_id: str = Field(pattern=_GRAPH_ID.pattern)
    subject: str = Field(min_length=1, max_length=255)
    start: datetime
    end: datetime
    attendees: tuple[str, ...] = Field(default=(), max_length=MAX_ATTENDEES)

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date-time string")
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return parsed

    @field_validator("attendees", mode="before")
    @classmethod
    def _attendees(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not all(isinstance(v, str) and _EMAIL.match(v) for v in value):
            raise ValueError("attendees must be e-mail addresses")
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _order(self) -> CreateCalendarEvent:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


Content = CreateIssue | AddLabels | RerunFailedJobs | CreateComment | PostChannelMessage | CreateCalendarEvent

CONTENT_MODELS: dict[str, type[_Content]] = {
    "create_issue": CreateIssue,
    "add_labels": AddLabels,
    "rerun_failed_jobs": RerunFailedJobs,
    "create_review_comment": CreateComment,
    "create_comment": CreateComment,
    "post_channel_message": PostChannelMessage,
    "create_calendar_event": CreateCalendarEvent,
}
#: The tools whose text fields are posted and therefore sanitised (field names).
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "create_issue": ("title", "body"),
    "create_review_comment": ("body",),
    "create_comment": ("body",),
    "post_channel_message": ("text",),
    "create_calendar_event": ("subject",),
}


def tool_spec(tool: str) -> ToolSpec | None:
    """The write tool's function schema as the specialists give it to the model (None for ``create_comment``,
    which no specialist offers yet)."""
    for profile in SPECIALISTS.values():
        spec = profile.tool(tool)
        if spec is not None and spec.access == "write":
            return spec
    return None


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``: sorted keys, no whitespace, UTF-8 (what a hash is taken of)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(tool: str, target: str, content: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``{tool, target, content}``."""
    return hashlib.sha256(canonical_json({"tool": tool, "target": target, "content": dict(content)})).hexdigest()


def target_of(tool: str, content: _Content) -> str:
    """Where a proposal writes: ``owner/repo#n``, ``owner/repo`` (a new issue), ``owner/repo/actions/runs/<id>``,
    ``teams:<team>/<channel>`` or ``graph:users/<user>/events`` (the loop guard's target keys)."""
    if isinstance(content, CreateIssue):
        return content.repo
    if isinstance(content, AddLabels | CreateComment):
        return f"{content.repo}#{content.number}"
    if isinstance(content, RerunFailedJobs):
        return f"{content.repo}/actions/runs/{content.run_id}"
    if isinstance(content, PostChannelMessage):
        return f"teams:{content.team_id}/{content.channel_id}"
    if isinstance(content, CreateCalendarEvent):
        return f"graph:users/{content.user_id}/events"
    raise ProposalError(f"no target for {tool}")  # pragma: no cover - every model is listed above


class Proposal(BaseModel):
    """One write Reynolds would make for a task, exactly as it would be made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID.pattern)
    tool: ToolName
    target: str
    content: dict[str, Any]
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    subtask_id: str
    slot: int = Field(ge=0)
    call_id: str = ""

    @property
    def short_hash(self) -> str:
        """The digits people see and approve with."""
        return self.hash[:SHORT_HASH]

    def typed(self) -> Content:
        """The content as its typed model (validated again: a stored proposal is never trusted blindly)."""
        return CONTENT_MODELS[self.tool].model_validate(self.content)  # type: ignore[return-value]

    def verify(self) -> bool:
        """Whether the stored hash is the hash of the stored tool, target and content."""
        return content_hash(self.tool, self.target, self.content) == self.hash


class RefusedProposal(BaseModel):
    """A write call that did not become a proposal, and why (shown on the status comment; never executed)."""

    model_config = ConfigDict(frozen=True)

    subtask_id: str
    tool: str
    reason: str


def validate_write(tool: str, arguments: Mapping[str, Any], repo: str | None, *,
                   secrets: Iterable[str] = ()) -> tuple[str, dict[str, Any]]:
    """``(target, content)`` of a write call for a task scoped to ``repo``, or :class:`ProposalError`.

    The arguments pass the tool's function schema first, then its typed model; texts are sanitised before the
    typed check, so the content is exactly what will be written.
    """
    model = CONTENT_MODELS.get(tool)
    if model is None:
        raise ProposalError("not a write tool Reynolds can execute")
    spec = tool_spec(tool)
    if spec is not None:
        checked = validate_arguments(spec, json.dumps(dict(arguments)), [repo] if repo else None)
        if isinstance(checked, str):
            raise ProposalError(checked)
    values = dict(arguments)
    if issubclass(model, _RepoContent):
        asked = values.get("repo")
        if repo is None or not isinstance(asked, str) or asked.strip().lower() != repo.lower():
            raise ProposalError("repository is outside this task's scope")
        values["repo"] = repo
    allowed = [repo] if repo else []
    secrets = list(secrets)
    for name in _TEXT_FIELDS.get(tool, ()):
        if isinstance(values.get(name), str):
            values[name] = sanitize_output(values[name], allowed_repos=allowed, secrets=secrets,
                                           max_chars=MAX_TEXT_CHARS)
    try:
        content = model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        # pydantic's message, never the value: the model wrote the value.
        raise ProposalError(f"argument {where[:40]} is invalid: {first['msg'][:120]}") from None
    return target_of(tool, content), content.model_dump(mode="json")


def build_proposals(writes: Sequence[ProposedWrite], repo: str | None, existing: Sequence[Proposal] = (), *,
                    secrets: Iterable[str] = ()) -> tuple[list[Proposal], list[RefusedProposal]]:
    """The task's proposals after ``writes`` (in plan order), continuing ``existing``; and the refused calls.

    A slot (subtask, position among its write calls) keeps its id; a new slot gets the next free ``w<n>``. The
    result lists every proposal, existing ones first, each at its latest content. Pure and deterministic.
    """
    by_slot: dict[tuple[str, int], Proposal] = {(p.subtask_id, p.slot): p for p in existing}
    order: list[tuple[str, int]] = [(p.subtask_id, p.slot) for p in existing]
    used = [int(p.id[1:]) for p in existing]
    next_number = max(used, default=0) + 1
    refused: list[RefusedProposal] = []
    position: dict[str, int] = {}
    secrets = list(secrets)
    for write in writes:
        slot = position.get(write.subtask_id, 0)
        position[write.subtask_id] = slot + 1
        try:
            target, content = validate_write(write.tool, write.arguments, repo, secrets=secrets)
        except ProposalError as exc:
            refused.append(RefusedProposal(subtask_id=write.subtask_id, tool=write.tool[:64], reason=str(exc)))
            continue
        key = (write.subtask_id, slot)
        previous = by_slot.get(key)
        if previous is None:
            ident = f"w{next_number}"
            next_number += 1
            order.append(key)
        else:
            ident = previous.id
        by_slot[key] = Proposal(id=ident, tool=write.tool, target=target, content=content,
                                hash=content_hash(write.tool, target, content), subtask_id=write.subtask_id,
                                slot=slot, call_id=write.call_id)
    return [by_slot[key] for key in order], refused


class ProposalLike(Protocol):
    """What deciding needs of a proposal: a :class:`Proposal` or the engine's small ``ProposalRef``."""

    @property
    def id(self) -> str: ...

    @property
    def hash(self) -> str: ...

    @property
    def tool(self) -> str: ...

    @property
    def target(self) -> str: ...


def idempotency_key(instance_id: str, proposal: ProposalLike) -> str:
    """The effect-ledger key of executing ``proposal`` in task ``instance_id``: task, id and (128 bits of) hash.

    A changed proposal has a new key, so it can never inherit the "done" of the content it replaced.
    """
    return f"act:{instance_id}:{proposal.id}:{proposal.hash[:32]}"
