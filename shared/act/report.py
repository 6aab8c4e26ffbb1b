"""The proposals section of the status comment: what will be written where, in full, and what happened to it.

For each proposal: its id and short hash (what ``approve w1@<hash>`` names), the tool, the target, the state
(:mod:`shared.act.decide`'s verdict, or the writer's outcome once executed) and the full content — the title
and body of an issue, the body of a comment, the labels, the run to re-run. Texts are shown in a fenced block
whose fence is longer than any backtick run inside them, so nothing in a proposal can close the block and
render as part of Reynolds' own words. The section ends with the commands that decide.

A proposal whose text would not fit the comment (GitHub's 65,536 characters, shared with the rest of the status
comment) is shown truncated and marked so; it is then approved by hash only after being read in full
elsewhere (the HTTP API returns proposals whole). Pure: the caller posts the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from shared.act.decide import Verdict
from shared.act.proposals import Proposal
from shared.act.writers import Outcome

#: Characters of proposal text shown per proposal before truncation (the caller may pass its own budget).
DEFAULT_TEXT_BUDGET = 8_000

_STATE = {
    "wait": "waiting for approval",
    "stale": "changed since the decision: decide again",
    "execute": "approved, writing",
    "rejected": "rejected",
    "never": "not allowed by the repository policy",
    "expired": "expired without a decision",
    "done": "written",
    "refused": "not written",
}


def _fenced(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _shown(text: str, budget: int) -> str:
    if len(text) <= budget:
        return _fenced(text)
    return _fenced(text[:budget]) + f"\n_(truncated: {len(text):,} characters in full)_"


def describe(proposal: Proposal, budget: int = DEFAULT_TEXT_BUDGET) -> str:
    """The full content of one proposal in Markdown (labels and runs inline, texts fenced)."""
    content = proposal.content
    if proposal.tool == "add_labels":
        labels = ", ".join(f"`{label}`" for label in content["labels"])
        return f"add labels {labels} to {proposal.target}"
    if proposal.tool == "rerun_failed_jobs":
        return f"re-run the failed jobs of workflow run {content['run_id']} in {content['repo']}"
    if proposal.tool == "create_issue":
        return (f"open an issue in {proposal.target}\n\n**Title:**\n{_shown(content['title'], 300)}\n\n"
                f"**Body:**\n{_shown(content['body'], budget)}")
    if proposal.tool in ("create_review_comment", "create_comment"):
        return f"comment on {proposal.target}\n\n{_shown(content['body'], budget)}"
    if proposal.tool == "post_channel_message":
        return f"post in Teams channel {proposal.target}\n\n{_shown(content['text'], budget)}"
    attendees = ", ".join(content.get("attendees") or []) or "nobody else"
    return (f"create a calendar event for {content['user_id']}: {_shown(content['subject'], 300)}\n"
            f"from {content['start']} to {content['end']}, with {attendees}")


def render_proposals(proposals: Sequence[Proposal], verdicts: Sequence[Verdict],
                     outcomes: Mapping[str, Outcome] | None = None, *, policy_source: str = "defaults",
                     policy_error: str | None = None, budget: int = DEFAULT_TEXT_BUDGET) -> str:
    """The Markdown section listing every proposal with its state and full content, and how to decide."""
    if not proposals:
        return ""
    outcomes = outcomes or {}
    by_id = {v.proposal_id: v for v in verdicts}
    lines = ["#### Proposed writes", ""]
    if policy_error:
        lines += [f"> Repository policy: {policy_error}", ""]
    else:
        lines += [f"_Policy: {policy_source}._", ""]
    for proposal in proposals:
        verdict = by_id.get(proposal.id)
        outcome = outcomes.get(proposal.id)
        if outcome is not None:
            state = _STATE.get(outcome.status, outcome.status)
            if outcome.reason:
                state += f" ({outcome.reason})"
        elif verdict is not None:
            state = _STATE.get(verdict.action, verdict.action)
            if verdict.by and verdict.action in ("execute", "rejected"):
                state += " by " + ", ".join(f"@{who}" for who in verdict.by)
        else:
            state = _STATE["wait"]
        lines += [f"- **{proposal.id}** `{proposal.short_hash}` · `{proposal.tool}` · {state}", "",
                  "  " + describe(proposal, budget).replace("\n", "\n  "), ""]
    waiting = [p.id for p in proposals if (by_id.get(p.id) and by_id[p.id].action in ("wait", "stale"))
               and p.id not in outcomes]
    if waiting:
        example = " ".join(f"{ident}@{next(p.short_hash for p in proposals if p.id == ident)}" for ident in waiting)
        lines += [f"An owner, member or collaborator decides with `/reynolds approve {example}`, "
                  "`/reynolds approve all` or `/reynolds reject <id>`. An approval covers exactly the content "
                  "shown; a proposal that changes afterwards is asked again."]
    return "\n".join(lines).rstrip() + "\n"
