"""Items already tracked: an action item whose text is close to an open issue's title is not proposed again.

Pure functions over the titles of the tracking repository's open issues (the activity lists them). Similarity is
the larger of two measures on normalised text (case folded, punctuation dropped, whitespace collapsed): the
``difflib.SequenceMatcher`` ratio (character order) and the Jaccard index of the word sets (word order), so
"Migrate the billing DB to Postgres" matches "Postgres migration of billing DB: migrate" in either phrasing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.meetings.items import ActionItem

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
#: Words that say nothing about the work; dropped before comparing word sets.
_STOP = frozenset({"a", "an", "the", "to", "of", "for", "and", "on", "in", "by", "with", "our", "we", "will"})
DEFAULT_THRESHOLD = 0.8


def normalize_title(text: str) -> str:
    """Case folded, punctuation removed, whitespace collapsed."""
    return " ".join(_PUNCT.sub(" ", text.casefold()).split())


def similarity(a: str, b: str) -> float:
    """0..1: the larger of the character-sequence ratio and the content-word Jaccard index."""
    left, right = normalize_title(a), normalize_title(b)
    if not left or not right:
        return 0.0
    ratio = SequenceMatcher(None, left, right).ratio()
    words_l = set(left.split()) - _STOP or set(left.split())
    words_r = set(right.split()) - _STOP or set(right.split())
    jaccard = len(words_l & words_r) / len(words_l | words_r)
    return max(ratio, jaccard)


def drop_open_issues(items: Sequence[ActionItem], open_titles: Sequence[str], *,
                     threshold: float = DEFAULT_THRESHOLD) -> tuple[list[ActionItem], list[tuple[ActionItem, str]]]:
    """``(new items, [(item, the open issue title it duplicates)])``."""
    new: list[ActionItem] = []
    duplicates: list[tuple[ActionItem, str]] = []
    for item in items:
        best = max(open_titles, key=lambda title: similarity(item.action, title), default=None)
        if best is not None and similarity(item.action, best) >= threshold:
            duplicates.append((item, best))
        else:
            new.append(item)
    return new, duplicates
