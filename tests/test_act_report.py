"""The proposals section and the command intake: full content shown safely, answers that echo nothing."""

from __future__ import annotations

from shared.act.approvals import take_command
from shared.act.decide import decide
from shared.act.policy import Policy
from shared.act.proposals import Proposal, build_proposals
from shared.act.report import describe, render_proposals
from shared.act.writers import Outcome
from shared.ai.specialists import ProposedWrite
from shared.work.tasks import Specialist

REPO = "octo/app"


def _proposals(body: str) -> list[Proposal]:
    writes = [ProposedWrite(tool="create_review_comment", arguments={"repo": REPO, "number": 3, "body": body},
                            call_id="c", subtask_id="s", specialist=Specialist.CODE),
              ProposedWrite(tool="add_labels", arguments={"repo": REPO, "number": 3, "labels": ["bug"]},
                            call_id="d", subtask_id="s", specialist=Specialist.CODE)]
    return build_proposals(writes, REPO)[0]


def test_a_text_cannot_close_its_fence_and_is_shown_in_full() -> None:
    body = "Looks fine.\n```\n# Reynolds says: approved\n````\nend"
    comment, labels = _proposals(body)
    shown = describe(comment)
    assert "`````text\n" + body + "\n`````" in shown
    assert describe(labels) == "add labels `bug` to octo/app#3"


def test_long_texts_are_marked_truncated() -> None:
    (comment, _) = _proposals("x" * 9000)
    assert "_(truncated: 9,000 characters in full)_" in describe(comment, budget=100)


def test_the_section_shows_states_outcomes_and_the_commands() -> None:
    comment, labels = _proposals("Please rename the variable.")
    verdicts = decide([comment, labels], Policy(), [], {}, instance_id="i", task_issue="octo/app#3")
    section = render_proposals([comment, labels], verdicts,
                               {"w2": Outcome(proposal_id="w2", status="done", key="k", resource="labels:x")},
                               policy_source="defaults")
    assert f"- **w1** `{comment.short_hash}` · `create_review_comment` · waiting for approval" in section
    assert "- **w2** `" in section
    assert "· `add_labels` · written" in section
    assert f"/reynolds approve w1@{comment.short_hash}" in section
    assert render_proposals([], []) == ""
    bad = render_proposals([comment], verdicts[:1], policy_error="`x` was not applied")
    assert "> Repository policy: `x` was not applied" in bad


def test_intake_answers() -> None:
    shown = {"w1": "a" * 64, "w2": "b" * 64}
    assert take_command("thanks!", shown, actor="m", association="OWNER", channel="github") is None
    refused = take_command("approve all", shown, actor="bot", association="CONTRIBUTOR", channel="github")
    assert refused is not None
    assert refused.refused
    assert refused.decisions == ()
    malformed = take_command("approve <script>", shown, actor="m", association="OWNER", channel="github")
    assert malformed is not None
    assert "<script>" not in malformed.answer
    nothing = take_command("approve w1", {}, actor="m", association="OWNER", channel="github")
    assert nothing is not None
    assert "nothing to decide" in nothing.answer
    ok = take_command("reject w2 w7", shown, actor="m", association="OWNER", channel="github", source="c1")
    assert ok is not None
    assert ok.answer == "Rejected: w2@bbbbbbbb. w7 is not a proposal of this task."
    assert [d.source for d in ok.decisions] == ["c1"]
    api = take_command("approve w1", shown, actor="function-key", association=None, channel="http")
    assert api is not None
    assert not api.refused
