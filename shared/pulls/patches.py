"""Reading GitHub's unified-diff ``patch`` text (``pulls/list-files``, ``repos/compare-commits``): which lines a
review comment may be anchored to, and which lines a change actually touched.

GitHub's rule for ``pulls/create-review`` comments (REST reference, "Create a review for a pull request", and the
422 "Pull request review thread line must be part of the diff"): ``line`` on ``side`` RIGHT must be an added or
context line of a hunk of that file, on LEFT a removed or context line. A hunk opens with ``@@ -a,b +c,d @@``
(``,b`` omitted when 1); ``\\ No newline at end of file`` lines belong to neither side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Side = Literal["LEFT", "RIGHT"]
Anchor = tuple[str, Side, int]  # (path, side, line)

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class PatchLines:
    """The lines of one file's patch: ``commentable`` (GitHub accepts a comment there) and ``changed`` (added on
    RIGHT, removed on LEFT; a subset of ``commentable``)."""

    commentable: frozenset[tuple[Side, int]]
    changed: frozenset[tuple[Side, int]]
    added_text: tuple[tuple[int, str], ...]  # (RIGHT line, text) of each added line


def read_patch(patch: str | None) -> PatchLines:
    """Parse one file's ``patch``; None (binary or too large, GitHub omits it) has no lines."""
    commentable: set[tuple[Side, int]] = set()
    changed: set[tuple[Side, int]] = set()
    added: list[tuple[int, str]] = []
    left = right = 0
    in_hunk = False
    for raw in (patch or "").split("\n"):
        m = _HUNK.match(raw)
        if m:
            left, right, in_hunk = int(m.group(1)), int(m.group(3)), True
            continue
        if not in_hunk or raw.startswith("\\"):
            continue
        kind, text = raw[:1], raw[1:]
        if kind == "+":
            commentable.add(("RIGHT", right))
            changed.add(("RIGHT", right))
            added.append((right, text))
            right += 1
        elif kind == "-":
            commentable.add(("LEFT", left))
            changed.add(("LEFT", left))
            left += 1
        elif kind == " ":
            commentable.add(("LEFT", left))
            commentable.add(("RIGHT", right))
            left += 1
            right += 1
    return PatchLines(frozenset(commentable), frozenset(changed), tuple(added))


def anchors(files: Mapping[str, str | None], *, changed_only: bool) -> set[Anchor]:
    """Every (path, side, line) of ``files`` (path → patch): the changed ones, or all commentable ones."""
    out: set[Anchor] = set()
    for path, patch in files.items():
        lines = read_patch(patch)
        for side, line in lines.changed if changed_only else lines.commentable:
            out.add((path, side, line))
    return out


def lines_changed_since(pr_files: Mapping[str, str | None], *, compare_files: Mapping[str, str | None] | None = None,
                        previous_pr_files: Mapping[str, str | None] | None = None) -> set[Anchor]:
    """The anchors the commits since the last review changed, within the pull request's diff.

    Best source: ``compare_files`` — the patches of ``repos/compare-commits`` from the last reviewed SHA to the new
    head (their RIGHT lines are the head's lines, the same coordinates as the PR's RIGHT side). Without it,
    ``previous_pr_files`` — the PR's files at the last review: an added line is new when its text was not added
    at that review (by occurrence count per file), and a file whose patch did not change is skipped. With neither,
    every changed line of the PR (a first review).
    """
    pr_changed = anchors(pr_files, changed_only=True)
    if compare_files is not None:
        since = {(p, s, n) for p, s, n in anchors(compare_files, changed_only=True) if s == "RIGHT"}
        return pr_changed & since
    if previous_pr_files is None:
        return pr_changed
    out: set[Anchor] = set()
    for path, patch in pr_files.items():
        before = previous_pr_files.get(path)
        if before == patch:
            continue
        seen: dict[str, int] = {}
        for _, text in read_patch(before).added_text:
            seen[text] = seen.get(text, 0) + 1
        for line, text in read_patch(patch).added_text:
            if seen.get(text, 0) > 0:
                seen[text] -= 1
            else:
                out.add((path, "RIGHT", line))
    return out & pr_changed


def paths_of(anchors_: Iterable[Anchor]) -> set[str]:
    return {path for path, _, _ in anchors_}
