"""The fake GitHub's diff model: a pull request's files against its base branch, as unified-diff patches, and the
lines a review comment may be anchored to.

What it models (GitHub's REST reference, operation ``pulls/list-files`` — "List pull requests files" — and
``pulls/create-review``, in github/rest-api-description ``descriptions/api.github.com/api.github.com.json``):

* each changed file is a ``diff-entry``: ``filename``, ``status`` (``added`` / ``removed`` / ``modified``),
  ``additions``, ``deletions``, ``changes`` and ``patch`` — the hunks of a unified diff *without* the ``---``/``+++``
  file header, each opening with ``@@ -a,b +c,d @@`` and keeping three lines of context (git's default);
* a review comment names ``line`` and ``side``: ``RIGHT`` is the file after the change (added and context lines
  of a hunk), ``LEFT`` the file before (removed and context lines). A line outside every hunk is "not part of the
  diff" and GitHub refuses the whole review with 422 (see ``pulls_api``).

Built with :mod:`difflib` (``SequenceMatcher.get_grouped_opcodes(3)``), independently of ``shared.pulls``, which
parses the ``patch`` text GitHub sends; the tests check the two agree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

Side = Literal["LEFT", "RIGHT"]
CONTEXT = 3


@dataclass(frozen=True)
class FileDiff:
    filename: str
    status: Literal["added", "removed", "modified"]
    patch: str
    additions: int
    deletions: int
    #: (side, line) pairs a review comment may name on this file.
    commentable: frozenset[tuple[Side, int]] = field(default_factory=frozenset)

    @property
    def changes(self) -> int:
        return self.additions + self.deletions


def _lines(text: str | None) -> list[str]:
    return [] if text is None else text.splitlines()


def _range(start: int, count: int) -> str:
    # unified-diff ranges: "start,count"; a count of one is written as just the start; an empty range starts one
    # line before (0 for an empty file).
    if count == 1:
        return f"{start + 1}"
    if count == 0:
        return f"{start},0"
    return f"{start + 1},{count}"


def file_diff(path: str, old: str | None, new: str | None) -> FileDiff | None:
    """The diff of one file (``old`` None = added, ``new`` None = removed); None when nothing changed."""
    if old == new:
        return None
    a, b = _lines(old), _lines(new)
    status: Literal["added", "removed", "modified"] = (
        "added" if old is None else "removed" if new is None else "modified")
    hunks: list[str] = []
    commentable: set[tuple[Side, int]] = set()
    additions = deletions = 0
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(CONTEXT):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        body: list[str] = []
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                for k in range(a2 - a1):
                    body.append(" " + a[a1 + k])
                    commentable.add(("LEFT", a1 + k + 1))
                    commentable.add(("RIGHT", b1 + k + 1))
                continue
            for k in range(a1, a2):
                body.append("-" + a[k])
                commentable.add(("LEFT", k + 1))
                deletions += 1
            for k in range(b1, b2):
                body.append("+" + b[k])
                commentable.add(("RIGHT", k + 1))
                additions += 1
        hunks.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n" + "\n".join(body))
    return FileDiff(path, status, "\n".join(hunks), additions, deletions, frozenset(commentable))


def diff_trees(base: dict[str, str], head: dict[str, str]) -> list[FileDiff]:
    """Every changed file between two snapshots (path → text), in path order."""
    out = []
    for path in sorted(set(base) | set(head)):
        d = file_diff(path, base.get(path), head.get(path))
        if d is not None:
            out.append(d)
    return out
