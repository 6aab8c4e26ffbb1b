"""Failure signatures: the same failure, whatever run, id, time or temp dir it happened in, gets one signature.

Sentry groups events by a fingerprint of the exception type and the normalised message; FlakyBot
(googleapis/repo-automation-bots, ``packages/flakybot``) keys one issue per failing test. Here a signature is
``kind`` (what failed: a workflow run, a subtask, an orchestration, a breaker, a poisoned or dead-lettered
item) + the normalised first error line(s) of its text + a short SHA-256 of both, so it can be a document id.

``normalise`` folds what varies between two occurrences of one failure and keeps what tells failures apart:

======================  ==========================================  ===============================
volatile part           example                                     folded to
======================  ==========================================  ===============================
ANSI colour codes       ``\\x1b[31mFAILED\\x1b[0m``                   (removed)
Actions log timestamps  ``2026-12-08T02:36:06.1234567Z ␠``          (removed, line start)
run / job ids in URLs   ``/actions/runs/123456/job/789``            ``/actions/runs/<run>/job/<job>``
temp dirs               ``/tmp/tmpab12cd``, ``/tmp/pytest-of-x/…``,  ``<tmp>``
                        ``/home/runner/work/_temp/…``, ``%TEMP%``
UUIDs                   ``0b3c…-…``                                 ``<uuid>``
timestamps              ISO 8601, RFC 1123 (``Tue, 08 Dec …GMT``),   ``<time>``
                        clock times ``02:36:06``
hex hashes / SHAs       ``9fceb02``, ``0x7f3a2c10``                 ``<hex>``
durations               ``3.21s``, ``1500 ms``, ``2 minutes``        ``<duration>``
host ports              ``localhost:53127``, ``127.0.0.1:8081``      ``localhost:<port>``
line:col                ``app.py:42:7``, ``line 42``                ``app.py:<line>``, ``line <n>``
long numbers (ids)      ``activity 3141592``, ``#123456``           ``<n>`` (3 digits or fewer kept)
======================  ==========================================  ===============================

Small numbers stay (``assert 1 == 2`` and ``exit code 1`` tell failures apart); a number of four digits or
more is an id, a count or a port, which vary. Failure texts are those of ``../shared/REFERENCE.md``: a
Durable activity failure arrives as ``Activity function '<name>' failed: <Type>: <msg>``; Cosmos throttling
and outages as 429 / 503 texts with an ``ActivityId`` GUID and ``RetryAfterInMs``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["workflow-run", "subtask", "orchestration", "breaker", "poison", "dead-letter", "store"]
KINDS: tuple[str, ...] = ("workflow-run", "subtask", "orchestration", "breaker", "poison", "dead-letter", "store")
#: How many error lines make a signature's head (the first states the error, a second often its cause).
HEAD_LINES = 2
#: A signature head is clipped to this many characters (a document field, and an issue title's source).
MAX_HEAD_CHARS = 400
DIGEST_CHARS = 16

_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\x1b\[[0-9;?]*[A-Za-z]"), ""),
    (re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ", re.MULTILINE), ""),
    (re.compile(r"/actions/runs/\d+"), "/actions/runs/<run>"),
    (re.compile(r"/job(s)?/\d+"), r"/job\1/<job>"),
    (re.compile(r"/attempts/\d+"), "/attempts/<n>"),
    (re.compile(r"/home/runner/work/_temp/[^\s:'\"),]+"), "<tmp>"),
    (re.compile(r"/tmp/pytest-of-[^/\s]+/pytest-\d+/[^\s:'\"),]*"), "<tmp>"),  # noqa: S108 - a pattern, not a path
    (re.compile(r"/(?:private/)?(?:tmp|var/folders)/[^\s:'\"),]+"), "<tmp>"),
    (re.compile(r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp\\[^\s:'\"),]+", re.IGNORECASE), "<tmp>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?", re.IGNORECASE),
     "<time>"),
    (re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\b"), "<time>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d\b"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]):\d+\b"), r"\1:<port>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|milliseconds?|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\b",
                re.IGNORECASE), "<duration>"),
    (re.compile(r"(\.[A-Za-z0-9]{1,5}):\d+(?::\d+)?\b"), r"\1:<line>"),
    (re.compile(r"\bline \d+(?:, column \d+)?", re.IGNORECASE), "line <n>"),
    (re.compile(r"\d{4,}"), "<n>"),
    (re.compile(r"[ \t]+"), " "),
)


def normalise(text: str) -> str:
    """``text`` with its volatile parts folded (see the module's table), each line stripped."""
    for pattern, replacement in _SUBS:
        text = pattern.sub(replacement, text)
    return "\n".join(line.strip() for line in text.splitlines())


_DURABLE = re.compile(r"Activity function '[^']+' failed: .+|Orchestrator function '[^']+' failed: .+")
_PYTEST_FAILED = re.compile(r"^(?:FAILED|ERROR) \S+")
_NPM = re.compile(r"^npm (?:ERR!|error) (?!\s*$)(?!A complete log)(?!Log files)")
_ACTIONS = re.compile(r"^##\[error\]|^::error\b")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure|Timeout)\b(?::|$)")
_ERRORISH = re.compile(r"\b(?:error|failed|failure|fatal|exception|refused|denied|timed out|too many requests"
                       r"|service unavailable)\b", re.IGNORECASE)


def error_lines(text: str, limit: int = HEAD_LINES) -> list[str]:
    """The line(s) that state the error, normalised, most telling first.

    In order: a Durable failure text; pytest's short summary (``FAILED``/``ERROR`` lines, sorted so the order
    tests ran in does not matter); npm's ``npm ERR!``/``npm error`` lines; Actions ``##[error]`` annotations;
    a traceback's exception line (the last one: the one that ended the program); any line that says error or
    failed; the first line.
    """
    lines = [line for line in normalise(text).splitlines() if line]
    if not lines:
        return []
    durable = [line for line in lines if _DURABLE.search(line)]
    if durable:
        return [_DURABLE.search(durable[0]).group()][:limit]  # type: ignore[union-attr]
    pytest = sorted({line for line in lines if _PYTEST_FAILED.match(line)})
    if pytest:
        return pytest[:limit]
    npm = [line for line in lines if _NPM.match(line)]
    if npm:
        return npm[:limit]
    actions = [line for line in lines if _ACTIONS.match(line)]
    if actions:
        return actions[:limit]
    exceptions = [line for line in lines if _EXCEPTION.match(line)]
    if exceptions:
        return exceptions[-1:]
    errorish = [line for line in lines if _ERRORISH.search(line)]
    return (errorish or lines)[:limit]


@dataclass(frozen=True)
class Signature:
    """A failure's stable identity: ``kind``, the normalised error ``head`` and a digest of both."""

    kind: str
    head: str
    digest: str

    @property
    def key(self) -> str:
        """``<kind>:<digest>``: the occurrence document's key (no characters Cosmos ids refuse)."""
        return f"{self.kind}:{self.digest}"

    @property
    def title(self) -> str:
        """A one-line title for the improvement issue."""
        first = self.head.splitlines()[0] if self.head else ""
        return f"[{self.kind}] {first[:120]}"


def signature(kind: str, text: str, *, where: str = "") -> Signature:
    """The signature of a failure of ``kind`` described by ``text``; ``where`` (a workflow name and job, an
    activity name, a breaker scope) keeps equal messages from different places apart. ``ValueError`` for an
    unknown kind or a text with nothing in it."""
    if kind not in KINDS:
        raise ValueError(f"unknown failure kind {kind!r} (one of {', '.join(KINDS)})")
    head = "\n".join(error_lines(text))[:MAX_HEAD_CHARS]
    if not head:
        raise ValueError("a failure needs a text to sign")
    basis = "\n".join((kind, normalise(where), head))
    return Signature(kind, head, hashlib.sha256(basis.encode()).hexdigest()[:DIGEST_CHARS])


def breaker_text(record: dict[str, object]) -> str:
    """The text of a breaker-open record (a ``shared.loop.breakers.BreakerState`` document: its ``reason``) to
    sign; pass the breaker key's first segment (what it counts: target, counterpart) as ``where``."""
    return f"breaker open: {record.get('reason') or 'no reason recorded'}"


def poison_text(item: dict[str, object]) -> str:
    """The text of a poisoned inbox item or dead-lettered message (its reason and description) to sign."""
    reason = item.get("poison_reason") or item.get("reason") or item.get("dead_letter_reason") or "poisoned"
    detail = item.get("error_description") or item.get("dead_letter_error_description") or ""
    return f"{reason}: {detail}".rstrip(": ")
