"""The one status comment Reynolds keeps per orchestration, and the ``reynolds:*`` labels that mirror its state.

Rendering is pure: the report activity calls :func:`render_status_comment` and writes the result (creating the
comment once, editing it in place afterwards). Text that comes from content (titles, summaries, errors written by
an LLM or copied from an issue) is neutralised so that the comment cannot ping people (``@user``), cross-reference
or close issues (``#123``, ``Fixes #123``) or smuggle HTML into the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from shared.ai.safety import sanitize_output
from shared.work.tasks import SubtaskOutcome, SubtaskState

#: GitHub rejects comment bodies longer than this.
MAX_COMMENT_CHARS = 65_536
#: One checklist line never carries more than this much content text.
MAX_ITEM_TEXT = 300

LABEL_RUNNING = "reynolds:running"
LABEL_NEEDS_APPROVAL = "reynolds:needs-approval"
LABEL_SUCCEEDED = "reynolds:succeeded"
LABEL_FAILED = "reynolds:failed"
#: Every label Reynolds manages; the report activity removes those of this set that ``labels_for`` leaves out.
ALL_LABELS = frozenset({LABEL_RUNNING, LABEL_NEEDS_APPROVAL, LABEL_SUCCEEDED, LABEL_FAILED})

_ZWSP = "\u200b"
_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")
_ISSUE_REF = re.compile(r"#(?=\d)")
_WHITESPACE = re.compile(r"\s+")
_SAFE_URL = re.compile(r"^https://[^\s()<>\"']+$")


class ReportPhase(StrEnum):
    """Where the orchestration stands when it reports (one status-comment write per phase at most)."""

    STARTED = "started"
    NEEDS_APPROVAL = "needs_approval"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


_STATE_MARK: dict[SubtaskState, tuple[str, str]] = {
    SubtaskState.PENDING: ("⏸️", "pending"),
    SubtaskState.RUNNING: ("🔄", "running"),
    SubtaskState.WAITING: ("✋", "waiting for approval"),
    SubtaskState.SUCCEEDED: ("✅", "succeeded"),
    SubtaskState.FAILED: ("❌", "failed"),
    SubtaskState.SKIPPED: ("⏭️", "skipped"),
}

_PHASE_HEADLINE: dict[ReportPhase, str] = {
    ReportPhase.STARTED: "🔄 Working on it",
    ReportPhase.NEEDS_APPROVAL: "✋ Waiting for approval",
    ReportPhase.SUCCEEDED: "✅ Done",
    ReportPhase.PARTIAL: "⚠️ Done, with failures",
    ReportPhase.FAILED: "❌ Failed",
    ReportPhase.CANCELLED: "⏹️ Cancelled",
}


def escape_content(text: str, limit: int = MAX_ITEM_TEXT) -> str:
    """Make untrusted text safe for one line of a comment: no mentions, issue references, HTML or line breaks.

    The text first goes through the one output sanitizer (``shared.ai.safety.sanitize_output``: no links or
    images, no markers, no invisible or tag characters, credentials redacted), then ``@name`` and ``#123`` get a
    zero-width space after the sigil (GitHub then neither notifies nor cross-references), ``<``/``>``/``&``
    become entities, newlines collapse to spaces, and the result is cut to ``limit`` characters.
    """
    # Every mention is neutralised below with a zero-width space; the sanitizer's own joiner is dropped first.
    clean = sanitize_output(text[: limit * 4 + 1000], max_user_mentions=0).replace("@\u200d", "@")
    flat = _WHITESPACE.sub(" ", clean).strip()
    if len(flat) > limit:
        flat = flat[: max(0, limit - 1)].rstrip() + "…"
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MENTION.sub("@" + _ZWSP, flat)
    return _ISSUE_REF.sub("#" + _ZWSP, flat)


def _outcome_map(outcomes: Iterable[SubtaskOutcome | Mapping[str, Any]] | None) -> dict[str, SubtaskOutcome]:
    result: dict[str, SubtaskOutcome] = {}
    for item in outcomes or ():
        outcome = item if isinstance(item, SubtaskOutcome) else SubtaskOutcome.model_validate(item)
        result[outcome.id] = outcome
    return result


def _item_line(subtask_id: str, state: SubtaskState, outcome: SubtaskOutcome | None) -> str:
    emoji, text = _STATE_MARK[state]
    box = "x" if state is SubtaskState.SUCCEEDED else " "
    line = f"- [{box}] {emoji} **{escape_content(subtask_id, 64)}** — {text}"
    if outcome is not None:
        if outcome.attempts > 1:
            line += f" after {outcome.attempts} attempts"
        detail = outcome.error if state in (SubtaskState.FAILED, SubtaskState.SKIPPED) else outcome.summary
        if detail:
            line += f": {escape_content(detail)}"
    return line


def _instance_marker(instance_id: str) -> str:
    # "--" would end the HTML comment early; instance ids are ours, but the marker must survive any of them.
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "_", instance_id).replace("--", "_-")
    return f"<!-- reynolds:status instance={safe} -->"


def render_status_comment(
    title: str,
    instance_id: str,
    states: Mapping[str, SubtaskState | str],
    outcomes: Iterable[SubtaskOutcome | Mapping[str, Any]] | None = None,
    links: Mapping[str, str] | None = None,
    *,
    phase: ReportPhase | str | None = None,
    chain_id: str | None = None,
    chain_url: str | None = None,
) -> str:
    """Render the status comment: headline, counts, one checklist line per subtask, instance and chain ids, links.

    ``chain_id`` names the lineage chain (what ``GET /api/chains/{id}`` and ``tools.explore`` draw);
    ``chain_url``, when it is ``https://``, links it to the explorer page.

    ``states`` lists the subtasks in display order; ``outcomes`` add attempts, summaries and errors where known.
    Only ``https://`` links are shown. The body never exceeds :data:`MAX_COMMENT_CHARS`: when the checklist
    does not fit, the tail is replaced by a count of the subtasks left out.
    """
    by_id = _outcome_map(outcomes)
    ordered: dict[str, SubtaskState] = {sid: SubtaskState(state) for sid, state in states.items()}
    for sid, outcome in by_id.items():
        ordered.setdefault(sid, outcome.status)

    counts = dict.fromkeys(SubtaskState, 0)
    for state in ordered.values():
        counts[state] += 1
    done = counts[SubtaskState.SUCCEEDED] + counts[SubtaskState.FAILED] + counts[SubtaskState.SKIPPED]

    head: list[str] = [_instance_marker(instance_id)]
    headline = _PHASE_HEADLINE[ReportPhase(phase)] if phase is not None else "Reynolds"
    head.append(f"### {headline} — {escape_content(title, 200)}")
    head.append("")
    head.append(
        f"**{done}/{len(ordered)} done** · {counts[SubtaskState.SUCCEEDED]} succeeded · "
        f"{counts[SubtaskState.RUNNING]} running · {counts[SubtaskState.WAITING]} waiting for approval · "
        f"{counts[SubtaskState.FAILED]} failed · {counts[SubtaskState.SKIPPED]} skipped"
    )
    head.append("")

    tail: list[str] = ["", f"Instance: `{escape_content(instance_id, 200).replace('`', '')}`"]
    if chain_id:
        chain = f"`{escape_content(chain_id, 100).replace('`', '')}`"
        if chain_url and _SAFE_URL.match(chain_url):
            chain = f"[{chain}]({chain_url})"
        tail[-1] += f" · Chain: {chain}"
    safe_links = [
        f"[{escape_content(label, 80).replace('[', '(').replace(']', ')')}]({url})"
        for label, url in (links or {}).items()
        if _SAFE_URL.match(url)
    ]
    if safe_links:
        tail.append("Links: " + " · ".join(safe_links))
    if counts[SubtaskState.WAITING]:
        tail.append("")
        tail.append("Reply `/reynolds approve <subtask>` (or `/reynolds approve` for all) to let waiting subtasks run.")

    items = [_item_line(sid, state, by_id.get(sid)) for sid, state in ordered.items()]
    budget = MAX_COMMENT_CHARS - len("\n".join(head)) - len("\n".join(tail)) - 2
    reserve = 80  # room for the "and N more" line
    kept: list[str] = []
    used = 0
    for index, line in enumerate(items):
        remaining_after = len(items) - index - 1
        need = len(line) + 1 + (reserve if remaining_after else 0)
        if used + need > budget:
            kept.append(f"- … and {len(items) - index} more subtasks (see the orchestration's status)")
            break
        kept.append(line)
        used += len(line) + 1

    body = "\n".join([*head, *kept, *tail])
    # Belt and braces: the arithmetic above keeps us inside the limit; never let a bug post an oversized body.
    return body[:MAX_COMMENT_CHARS]


def labels_for(outcome: ReportPhase | str) -> set[str]:
    """The ``reynolds:*`` labels an issue should carry in a phase (the report activity removes the others).

    A partial result and a failure both ask for attention (``reynolds:failed``); a cancelled run carries none.
    """
    phase = ReportPhase(outcome)
    if phase is ReportPhase.STARTED:
        return {LABEL_RUNNING}
    if phase is ReportPhase.NEEDS_APPROVAL:
        return {LABEL_RUNNING, LABEL_NEEDS_APPROVAL}
    if phase is ReportPhase.SUCCEEDED:
        return {LABEL_SUCCEEDED}
    if phase in (ReportPhase.PARTIAL, ReportPhase.FAILED):
        return {LABEL_FAILED}
    return set()
