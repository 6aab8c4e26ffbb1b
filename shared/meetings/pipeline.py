"""The meeting pipeline as the activities will run it, with the model injected: transcript → chunks → the model's
items per chunk (structured output) → cited items only → merged → minus open issues → proposals.

``complete`` is the one model call (messages in, the answer's text out): the activity passes a closure over
:func:`shared.ai.client.create_chat_completion` with ``response_format=ACTION_ITEMS_RESPONSE_FORMAT``; tests pass
a scripted function. Everything else is pure, so a redelivered notification or a replayed activity computes the
same proposals (same slots, ids and hashes: :func:`shared.act.proposals.build_proposals`), and nothing is
proposed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.act.proposals import Proposal, RefusedProposal, build_proposals
from shared.meetings.chunks import Chunk, chunk_transcript, merge_items
from shared.meetings.dedup import drop_open_issues
from shared.meetings.extraction import extraction_messages, parse_answer
from shared.meetings.items import ActionItem, RejectedItem
from shared.meetings.recap import item_write
from shared.meetings.vtt import Transcript

Complete = Callable[[list[dict[str, str]]], str | None]
#: Room for the system prompt, the answer and the untrusted-block wrapper within a model's context.
DEFAULT_CHUNK_TOKENS = 12_000
DEFAULT_OVERLAP_TOKENS = 600


@dataclass
class Extraction:
    """What the model found, after Reynolds' checks."""

    items: list[ActionItem]
    rejected: list[RejectedItem]
    chunks: list[Chunk] = field(default_factory=list)


def extract(transcript: Transcript, meeting_id: str, complete: Complete, *, meeting_date: str | None = None,
            budget_tokens: int = DEFAULT_CHUNK_TOKENS, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS) -> Extraction:
    """Run the model over every chunk and keep the cited items, merged (said twice → once)."""
    chunks = chunk_transcript(transcript, budget_tokens, overlap_tokens)
    found: list[ActionItem] = []
    rejected: list[RejectedItem] = []
    for chunk in chunks:
        answer = complete(extraction_messages(chunk.cues(transcript), meeting_id, meeting_date))
        accepted, refused = parse_answer(answer, transcript)
        found.extend(accepted)
        rejected.extend(refused)
    return Extraction(items=merge_items(found), rejected=rejected, chunks=chunks)


@dataclass
class Recap:
    """The proposals for the recap card, and what was left out and why."""

    entries: list[tuple[ActionItem, Proposal]]
    already_open: list[tuple[ActionItem, str]]
    refused: list[RefusedProposal]


def propose(items: Sequence[ActionItem], open_titles: Sequence[str], repo: str, meeting_title: str,
            meeting_id: str, existing: Sequence[Proposal] = ()) -> Recap:
    """Items not already open become ``create_issue`` proposals in ``repo`` (ids continue ``existing``)."""
    new, already_open = drop_open_issues(items, open_titles)
    writes = [item_write(item, repo, meeting_title, n, meeting_id) for n, item in enumerate(new)]
    proposals, refused = build_proposals(writes, repo, existing)
    by_call = {p.call_id: p for p in proposals}
    entries = [(item, by_call[w.call_id]) for item, w in zip(new, writes, strict=True) if w.call_id in by_call]
    return Recap(entries=entries, already_open=already_open, refused=refused)
