"""Approval commands: ``approve w1 w3`` | ``approve all`` | ``reject w2``, each bound to the hash its author saw.

Grammar (case-insensitive keywords, ids and hashes separated by spaces or commas, an optional leading
``/reynolds``)::

    approve  (all | <id>[@<hash>] ...)
    reject   (all | <id>[@<hash>] ...)

``<id>`` is ``w1`` … ``w9999``; ``<hash>`` at least :data:`~shared.act.proposals.SHORT_HASH` hex digits of the
proposal's hash, as the status comment shows them. On a channel that shows hashes (the tracking issue, the HTTP
API) a person may name them; an id given without a hash is bound to the hash *shown* when the command was
made (the proposals section the engine rendered last), never to whatever the proposal is by the time it runs.
``all`` covers exactly the proposals shown then: a proposal added later is not approved by it.

Who may decide: on GitHub, ``author_association`` OWNER, MEMBER or COLLABORATOR (GitHub's webhook field; a
CONTRIBUTOR or NONE — any bot without a role included — is refused); over the HTTP API, the function key is
the authority. Teams approvals arrive with the Teams issue (refused here until then).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.act.proposals import SHORT_HASH

Decision = Literal["approve", "reject"]
Channel = Literal["github", "http", "teams"]
#: GitHub ``author_association`` values that may approve or reject a write.
APPROVER_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
MAX_IDS = 50

_ID = r"w[1-9][0-9]{0,3}"
_ITEM = re.compile(rf"^(?P<id>{_ID})(?:@(?P<hash>[0-9a-f]{{{SHORT_HASH},64}}))?$", re.IGNORECASE)
_HEAD = re.compile(r"^\s*(?:/reynolds\s+)?(?P<verb>approve|reject)\b(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)


class ApprovalSyntaxError(ValueError):
    """An approve/reject command that does not parse; the message is safe to post (it echoes no input)."""


class ApprovalCommand(BaseModel):
    """A parsed command: the decision, ``all`` or the ids, and the hash prefixes it named (id → prefix)."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    all: bool = False
    ids: tuple[str, ...] = ()
    hashes: dict[str, str] = Field(default_factory=dict)


class BoundApproval(BaseModel):
    """One person's decision on one proposal, bound to a hash (full, or the prefix they named)."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    proposal_id: str
    hash: str = Field(pattern=rf"^[0-9a-f]{{{SHORT_HASH},64}}$")
    actor: str
    association: str | None = None
    channel: Channel = "github"
    #: Where the decision came from (comment id, HTTP request id): a redelivered command binds the same source.
    source: str = ""
    at: str = ""

    def matches(self, full_hash: str) -> bool:
        """Whether this decision was made on the content whose hash is ``full_hash``."""
        return full_hash.startswith(self.hash)


def parse_approval(text: str) -> ApprovalCommand | None:
    """The approve/reject command in ``text`` (first line), None when it is not one; ``ApprovalSyntaxError`` when
    it is one but malformed (no ids, an id that is not ``w<n>``, a hash that is too short or not hex)."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    head = _HEAD.match(first)
    if head is None:
        return None
    verb = head["verb"].lower()
    tokens = [token for token in re.split(r"[\s,]+", head["rest"].strip()) if token]
    if not tokens:
        raise ApprovalSyntaxError(f"`{verb}` needs proposal ids (for example `{verb} w1 w3`) or `all`")
    if len(tokens) == 1 and tokens[0].lower() == "all":
        return ApprovalCommand(decision=verb, all=True)
    if len(tokens) > MAX_IDS:
        raise ApprovalSyntaxError(f"at most {MAX_IDS} proposal ids in one command")
    ids: list[str] = []
    hashes: dict[str, str] = {}
    for position, token in enumerate(tokens, start=1):
        item = _ITEM.match(token)
        if item is None:
            raise ApprovalSyntaxError(
                f"item {position} is not a proposal id: write `w<number>` or `w<number>@<first {SHORT_HASH} "
                "hex digits of its hash>`, or `all`")
        ident = item["id"].lower()
        if ident in ids:
            continue
        ids.append(ident)
        if item["hash"]:
            hashes[ident] = item["hash"].lower()
    return ApprovalCommand(decision=verb, ids=tuple(ids), hashes=hashes)


def may_decide(channel: Channel, association: str | None) -> str | None:
    """None when an actor on ``channel`` with ``association`` may approve or reject writes, else the reason."""
    if channel == "http":
        return None  # the function key is the authority
    if channel == "github":
        if (association or "").upper() in APPROVER_ASSOCIATIONS:
            return None
        return "only an owner, member or collaborator of the repository may approve or reject Reynolds' writes"
    return "approvals from Teams are not available yet"


def bind(command: ApprovalCommand, shown: Mapping[str, str], *, actor: str, association: str | None,
         channel: Channel, source: str = "", at: str = "") -> tuple[list[BoundApproval], list[str]]:
    """Bind ``command`` to hashes: the named prefix, else the hash ``shown`` (id → full hash) when it was made.

    Returns the bound decisions and the problems to answer (unknown ids). A named prefix that is not the shown
    hash's is bound as named: the decision then finds it stale. Authorisation is :func:`may_decide`'s, checked
    by the caller first (:func:`take_command` does both).
    """
    ids: Sequence[str] = tuple(shown) if command.all else command.ids
    bound: list[BoundApproval] = []
    problems: list[str] = []
    for ident in ids:
        if ident not in shown:
            problems.append(f"{ident} is not a proposal of this task")
            continue
        named = command.hashes.get(ident)
        bound.append(BoundApproval(decision=command.decision, proposal_id=ident, hash=named or shown[ident],
                                   actor=actor, association=association, channel=channel, source=source, at=at))
    return bound, problems


class Intake(BaseModel):
    """What one approve/reject command did: the decisions to store (none when refused) and the answer to post."""

    model_config = ConfigDict(frozen=True)

    decisions: tuple[BoundApproval, ...] = ()
    answer: str
    refused: bool = False


def take_command(text: str, shown: Mapping[str, str], *, actor: str, association: str | None, channel: Channel,
                 source: str = "", at: str = "") -> Intake | None:
    """Parse, authorise and bind one command (None when ``text`` is not an approve/reject command).

    The answer says what was decided, or why nothing was: malformed, not allowed (the association is named,
    never the input echoed), or no proposal shown yet.
    """
    try:
        command = parse_approval(text)
    except ApprovalSyntaxError as exc:
        return Intake(answer=str(exc), refused=True)
    if command is None:
        return None
    why_not = may_decide(channel, association)
    if why_not is not None:
        return Intake(answer=f"Not applied: {why_not}.", refused=True)
    if not shown:
        return Intake(answer="There is nothing to decide yet: no write has been proposed.", refused=True)
    decisions, problems = bind(command, shown, actor=actor, association=association, channel=channel,
                               source=source, at=at)
    verb = "Approved" if command.decision == "approve" else "Rejected"
    parts = []
    if decisions:
        parts.append(f"{verb}: " + ", ".join(f"{d.proposal_id}@{d.hash[:SHORT_HASH]}" for d in decisions) + ".")
    parts += [f"{problem}." for problem in problems]
    return Intake(decisions=tuple(decisions), answer=" ".join(parts), refused=not decisions)
