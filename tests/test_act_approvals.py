"""Approval commands: parsed strictly, bound to the hash the person saw, accepted only from those who may."""

from __future__ import annotations

import pytest

from shared.act.approvals import ApprovalSyntaxError, bind, may_decide, parse_approval

H1, H2, H3 = "a" * 64, "b" * 64, "c" * 64
SHOWN = {"w1": H1, "w2": H2, "w3": H3}


@pytest.mark.parametrize(("text", "decision", "all_", "ids", "hashes"), [
    ("approve w1 w3", "approve", False, ("w1", "w3"), {}),
    ("/reynolds approve w1, w3", "approve", False, ("w1", "w3"), {}),
    ("/Reynolds APPROVE W1@AAAAAAAA w3", "approve", False, ("w1", "w3"), {"w1": "aaaaaaaa"}),
    ("approve all", "approve", True, (), {}),
    ("reject w2", "reject", False, ("w2",), {}),
    ("approve w1 w1", "approve", False, ("w1",), {}),
    ("approve w1\nthanks!", "approve", False, ("w1",), {}),
])
def test_commands_parse(text: str, decision: str, all_: bool, ids: tuple, hashes: dict) -> None:
    command = parse_approval(text)
    assert command is not None
    assert (command.decision, command.all, command.ids, command.hashes) == (decision, all_, ids, hashes)


@pytest.mark.parametrize("text", ["status", "/reynolds retry", "approved, thanks", "please approve w1", ""])
def test_other_text_is_not_a_command(text: str) -> None:
    assert parse_approval(text) is None


@pytest.mark.parametrize("text", ["approve", "approve w0", "approve x1", "approve w1@abc", "approve w1@zzzzzzzz",
                                  "reject all w1", "approve " + " ".join(f"w{i}" for i in range(1, 60))])
def test_malformed_commands_are_refused_without_echoing_input(text: str) -> None:
    with pytest.raises(ApprovalSyntaxError) as caught:
        parse_approval(text)
    assert "zzzz" not in str(caught.value)
    assert "x1" not in str(caught.value)


def test_ids_bind_to_the_hash_shown_and_all_covers_only_what_was_shown() -> None:
    command = parse_approval("approve w1 w3@cccccccc w9")
    assert command is not None
    bound, problems = bind(command, SHOWN, actor="mona", association="MEMBER", channel="github", source="c1")
    assert [(b.proposal_id, b.hash) for b in bound] == [("w1", H1), ("w3", "cccccccc")]
    assert problems == ["w9 is not a proposal of this task"]
    everything = parse_approval("approve all")
    assert everything is not None
    bound, _ = bind(everything, {"w1": H1}, actor="mona", association="OWNER", channel="github")
    assert [b.proposal_id for b in bound] == ["w1"]


@pytest.mark.parametrize(("channel", "association", "allowed"), [
    ("github", "OWNER", True), ("github", "MEMBER", True), ("github", "COLLABORATOR", True),
    ("github", "CONTRIBUTOR", False), ("github", "NONE", False), ("github", None, False),
    ("http", None, True), ("teams", "OWNER", False),
])
def test_who_may_decide(channel: str, association: str | None, allowed: bool) -> None:
    assert (may_decide(channel, association) is None) is allowed  # type: ignore[arg-type]
