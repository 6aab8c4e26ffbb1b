"""``/reynolds`` slash commands in issue comments: parsing and authorization (pure, no I/O).

Grammar (case-insensitive verb, one command per line)::

    /reynolds status
    /reynolds approve [subtask]
    /reynolds retry [subtask]
    /reynolds cancel
    /reynolds resume

A comment is a command only when its first non-blank line is one: a quoted reply (``> /reynolds approve``), a
code block or a mention of the command in the middle of a sentence never triggers anything. Anything that does
not match the grammar exactly (unknown verb, extra words, a malformed subtask id) is not a command.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

#: At most this many consecutive command lines are read from one comment.
MAX_COMMANDS = 5

_LINE = re.compile(r"^/reynolds(?:\s+(?P<verb>\S+)(?:\s+(?P<arg>\S+))?)?\s*$", re.IGNORECASE)
_SUBTASK_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ASSOCIATION = re.compile(r"^[A-Z_]{1,40}$")


class CommandName(StrEnum):
    """The verbs Reynolds understands."""

    STATUS = "status"
    APPROVE = "approve"
    RETRY = "retry"
    CANCEL = "cancel"
    RESUME = "resume"


_TAKES_SUBTASK = frozenset({CommandName.APPROVE, CommandName.RETRY})
#: Verbs that change what Reynolds does; only people with write-level standing may use them.
PRIVILEGED = frozenset({CommandName.APPROVE, CommandName.RETRY, CommandName.CANCEL, CommandName.RESUME})
#: ``author_association`` values trusted with privileged commands.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


class Command(BaseModel):
    """One parsed command; ``subtask`` is set only for approve/retry naming a subtask."""

    model_config = ConfigDict(frozen=True)

    name: CommandName
    subtask: str | None = None


class Decision(BaseModel):
    """Whether a command may run; ``reason`` is written for the person who asked (a polite reply on refusal)."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str


def parse_line(line: str) -> Command | None:
    """Parse one line as a command, or None when it is not exactly one."""
    match = _LINE.match(line.strip())
    if match is None or match.group("verb") is None:
        return None
    try:
        name = CommandName(match.group("verb").lower())
    except ValueError:
        return None
    arg = match.group("arg")
    if arg is None:
        return Command(name=name)
    if name not in _TAKES_SUBTASK or not _SUBTASK_ID.match(arg):
        return None
    return Command(name=name, subtask=arg)


def parse_commands(body: str | None) -> list[Command]:
    """The commands at the top of a comment: consecutive ``/reynolds`` lines from the first non-blank line.

    Reading stops at the first line that is not a command (or after :data:`MAX_COMMANDS`); an empty list means
    the comment is not addressed to Reynolds.
    """
    if not body:
        return []
    commands: list[Command] = []
    lines = body.replace("\r\n", "\n").split("\n")
    started = False
    for line in lines:
        if not started and not line.strip():
            continue
        started = True
        command = parse_line(line)
        if command is None:
            break
        commands.append(command)
        if len(commands) >= MAX_COMMANDS:
            break
    return commands


def parse_command(body: str | None) -> Command | None:
    """The first command of a comment body, or None when the comment does not start with one."""
    commands = parse_commands(body)
    return commands[0] if commands else None


def authorize(command: Command, author_association: str | None) -> Decision:
    """Decide whether the comment's author may run ``command``.

    ``status`` is open to anyone; approve, retry, cancel and resume need OWNER, MEMBER or COLLABORATOR (GitHub's
    ``author_association``). A refusal's reason is a polite reply that explains why and what to do instead.
    """
    association = (author_association or "NONE").strip().upper()
    if not _ASSOCIATION.match(association):
        # Only GitHub's enum values are echoed back into a public reply.
        association = "NONE"
    verb = command.name.value
    if command.name not in PRIVILEGED:
        return Decision(allowed=True, reason=f"anyone may ask for `/reynolds {verb}`")
    if association in TRUSTED_ASSOCIATIONS:
        return Decision(allowed=True, reason=f"{association} may use `/reynolds {verb}`")
    shown = association.lower().replace("_", " ")
    return Decision(
        allowed=False,
        reason=(
            f"Thanks for the nudge! `/reynolds {verb}` changes what Reynolds does, so it is reserved for "
            f"repository owners, organization members and collaborators, and GitHub lists your association with "
            f"this repository as _{shown}_. A maintainer can run it for you; `/reynolds status` works for "
            f"everyone."
        ),
    )
