"""Where ``make bench`` may write in ``docs/benchmarks.md``: only between its markers.

The page mixes measured tables with paragraphs people wrote (what a figure means, a comparison with an earlier
design, the first-run measurement). Each generated block sits between two HTML comments, invisible on GitHub::

    <!-- bench:loop-guard:begin (written by `make bench WRITE=1`; edit tools/bench.py, not this block) -->
    …
    <!-- bench:loop-guard:end -->

``replace_blocks`` swaps what is between a block's markers and nothing else; a block whose markers are missing
(or out of order, or doubled) is an error naming it, and the file is left as it was: a hand-written paragraph is
never dropped. ``make bench`` without ``WRITE=1`` prints the blocks and writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path


class MarkerError(ValueError):
    """A generated block's markers are missing, doubled or out of order."""


def begin_marker(name: str) -> str:
    """The comment that opens block ``name``."""
    return f"<!-- bench:{name}:begin (written by `make bench WRITE=1`; edit tools/bench.py, not this block) -->"


def end_marker(name: str) -> str:
    """The comment that closes block ``name``."""
    return f"<!-- bench:{name}:end -->"


def _span(text: str, name: str) -> tuple[int, int]:
    begins = [m.end() for m in re.finditer(re.escape(f"<!-- bench:{name}:begin") + r"[^\n]*-->", text)]
    ends = [m.start() for m in re.finditer(re.escape(end_marker(name)), text)]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise MarkerError(f"docs/benchmarks.md: block {name!r} needs exactly one {begin_marker(name)!r} followed by "
                          f"one {end_marker(name)!r} (found {len(begins)} and {len(ends)}); nothing was written")
    return begins[0], ends[0]


def replace_blocks(text: str, blocks: Mapping[str, str]) -> str:
    """``text`` with the body of each named block replaced (every block checked before anything changes)."""
    for name in blocks:
        _span(text, name)
    for name, body in blocks.items():
        start, end = _span(text, name)
        text = text[:start] + "\n" + body.strip("\n") + "\n" + text[end:]
    return text


def write_blocks(path: Path, blocks: Mapping[str, str]) -> str:
    """Replace the blocks in the file at ``path``; the new text (``MarkerError`` leaves the file untouched)."""
    text = replace_blocks(path.read_text(encoding="utf-8"), blocks)
    path.write_text(text, encoding="utf-8")
    return text
