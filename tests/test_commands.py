"""/reynolds commands: parsing and who may run them."""

from __future__ import annotations

import pytest

from shared.work.commands import Command, CommandName, authorize, parse_command, parse_commands


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/reynolds status", Command(name=CommandName.STATUS)),
        ("/Reynolds STATUS\n\nthanks!", Command(name=CommandName.STATUS)),
        ("  /reynolds approve  ", Command(name=CommandName.APPROVE)),
        ("/reynolds approve deploy-prod", Command(name=CommandName.APPROVE, subtask="deploy-prod")),
        ("\r\n\n/reynolds retry s01\r\n", Command(name=CommandName.RETRY, subtask="s01")),
        ("/reynolds cancel", Command(name=CommandName.CANCEL)),
        ("/reynolds resume", Command(name=CommandName.RESUME)),
    ],
)
def test_parses_commands(body: str, expected: Command) -> None:
    assert parse_command(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "LGTM",
        "/reynolds",
        "/reynoldsapprove",
        "/reynolds deploy",
        "/reynolds cancel now",
        "/reynolds status please",
        "/reynolds approve a b",
        "/reynolds approve ../../etc",
        "/reynolds approve @octocat",
        "> /reynolds approve",
        "please /reynolds approve",
        "Thanks!\n/reynolds approve",
        "```\n/reynolds approve\n```",
    ],
)
def test_anything_else_is_not_a_command(body: str | None) -> None:
    assert parse_command(body) is None


def test_consecutive_command_lines_are_read_until_the_first_other_line() -> None:
    body = "/reynolds approve a\n/reynolds approve b\nthanks\n/reynolds cancel"
    assert parse_commands(body) == [
        Command(name=CommandName.APPROVE, subtask="a"),
        Command(name=CommandName.APPROVE, subtask="b"),
    ]
    assert len(parse_commands("\n".join(["/reynolds status"] * 20))) == 5


@pytest.mark.parametrize("association", ["OWNER", "MEMBER", "COLLABORATOR", "member"])
@pytest.mark.parametrize("verb", ["approve", "retry", "cancel", "resume"])
def test_trusted_associations_may_steer(verb: str, association: str) -> None:
    decision = authorize(Command(name=CommandName(verb)), association)
    assert decision.allowed


@pytest.mark.parametrize("association", ["CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "NONE", None, ""])
def test_others_get_a_polite_refusal(association: str | None) -> None:
    decision = authorize(Command(name=CommandName.APPROVE, subtask="deploy"), association)
    assert not decision.allowed
    assert "`/reynolds approve`" in decision.reason
    assert "owners, organization members and collaborators" in decision.reason
    assert "`/reynolds status` works for everyone" in decision.reason


def test_status_is_open_to_anyone() -> None:
    assert authorize(Command(name=CommandName.STATUS), None).allowed
    assert authorize(Command(name=CommandName.STATUS), "NONE").allowed


def test_refusal_never_echoes_arbitrary_text() -> None:
    decision = authorize(Command(name=CommandName.CANCEL), "NONE @everyone <b>")
    assert not decision.allowed
    assert "@everyone" not in decision.reason
    assert "<b>" not in decision.reason
