"""Long meetings within the model's context: cue chunks under a token budget, overlapping so that nothing said
across a boundary is lost, and the items said twice (in one chunk or in two) merged by Reynolds, not the model.

Chunking never splits a cue. Each chunk after the first starts with the last cues of the previous one, at least
``overlap_tokens`` of them: a request ("Bob, can you…?") and its acceptance ("Yes, by Friday") a few cues apart
land together in at least one chunk. Tokens are estimated (:func:`estimate_tokens`, about four characters a
token for English text, rounded up, plus the line's prefix) unless the caller passes a counter.

Merging (:func:`merge_items`): two items are the same when their owners are equal after normalising and their
actions are similar (:func:`shared.meetings.dedup.similarity` at least ``threshold``). The merged item keeps the
first phrasing of the action, the latest due date that was said (a later statement revises an earlier one), and
the *nearest* evidence: the quote most similar to the action (ties: the earliest), so the card cites the line
that says it best.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.meetings.dedup import normalize_title, similarity
from shared.meetings.extraction import render_cues
from shared.meetings.items import ActionItem
from shared.meetings.vtt import Cue, Transcript

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """About four characters a token (English), rounded up: a conservative estimate without a tokenizer."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Chunk:
    """Cues ``start`` (inclusive) to ``end`` (exclusive) of the transcript."""

    start: int
    end: int

    def cues(self, transcript: Transcript) -> tuple[Cue, ...]:
        """The chunk's cues."""
        return transcript.cues[self.start:self.end]


def chunk_transcript(transcript: Transcript, budget_tokens: int, overlap_tokens: int, *,
                     count: TokenCounter = estimate_tokens) -> list[Chunk]:
    """Chunks covering every cue, each at most ``budget_tokens`` (a single longer cue is a chunk of its own),
    consecutive chunks sharing at least ``overlap_tokens`` of cues. Raises ``ValueError`` for a budget that
    cannot make progress (overlap not below half the budget)."""
    if budget_tokens < 1 or overlap_tokens < 0 or overlap_tokens * 2 >= budget_tokens:
        raise ValueError("the overlap must be below half the chunk budget")
    sizes = [count(render_cues([cue])) + 1 for cue in transcript.cues]
    chunks: list[Chunk] = []
    start = 0
    while start < len(sizes):
        end, used = start, 0
        while end < len(sizes) and (end == start or used + sizes[end] <= budget_tokens):
            used += sizes[end]
            end += 1
        chunks.append(Chunk(start, end))
        if end >= len(sizes):
            break
        back, shared = end, 0
        while back > start + 1 and shared < overlap_tokens:
            back -= 1
            shared += sizes[back]
        start = back if back > start else end
    return chunks


def _owner(value: str) -> str:
    return normalize_title(value)


def merge_items(items: Sequence[ActionItem], *, threshold: float = 0.8) -> list[ActionItem]:
    """Items with the duplicates merged (see the module docstring), in order of first mention."""
    groups: list[list[ActionItem]] = []
    for item in items:
        for group in groups:
            head = group[0]
            if _owner(head.owner) == _owner(item.owner) and similarity(head.action, item.action) >= threshold:
                group.append(item)
                break
        else:
            groups.append([item])
    merged: list[ActionItem] = []
    for group in groups:
        head = group[0]
        best = max(group, key=lambda it: (similarity(head.action, it.evidence.quote), -_millis(it)))
        said = [it for it in group if it.due_date is not None]
        due = max(said, key=_millis).due_date if said else None
        merged.append(head.model_copy(update={"evidence": best.evidence, "speaker": best.speaker, "due_date": due}))
    return sorted(merged, key=_millis)


def _millis(item: ActionItem) -> int:
    from shared.meetings.vtt import parse_timestamp

    return parse_timestamp(item.evidence.timestamp)
