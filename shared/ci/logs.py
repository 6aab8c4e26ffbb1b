"""Reading a GitHub Actions job log (pure): strip what is noise, keep the error lines with their context.

The job log (``actions/download-job-logs-for-workflow-run``, plain text) prefixes every line with an ISO-8601 UTC
timestamp (``2026-03-04T05:06:07.1234567Z ``), may carry ANSI colour codes, and marks structure with the runner's
commands (GitHub's "Workflow commands for GitHub Actions": ``::group::``/``::endgroup::``, ``::error ...::msg``
written by the job, echoed in the log as ``##[group]``, ``##[endgroup]``, ``##[error]``, ``##[warning]``). A
step's output sits in a group named after it (``##[group]Run pytest -q``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_STAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_MARK = re.compile(r"^##\[(group|endgroup|error|warning|notice|debug|command|section)\]")
_WORKFLOW_CMD = re.compile(r"^::(error|warning|notice|group|endgroup)(?: [^:]*)?::")
#: Lines that say something failed, beyond the runner's own ``##[error]`` marks.
_ERROR = re.compile(
    r"(?:^|\s)(?:error|fatal|panic|failed|failure|exception)(?:\b|:)|Traceback \(most recent call last\)"
    r"|^E\s{2,}|^FAILED |npm ERR!|\berror\[E\d+\]|\berror TS\d+|\bAssertionError\b|exit code [1-9]",
    re.IGNORECASE)
#: Lines that look like errors but are not (summaries of nothing failing).
_NOT_ERROR = re.compile(r"\b0 (?:errors?|failed|failures)\b|no errors?\b", re.IGNORECASE)
_GENERIC = re.compile(r"^Process completed with exit code \d+\.?$")


@dataclass(frozen=True)
class LogLine:
    number: int  # 1-based, in the cleaned log
    text: str
    group: str | None  # the enclosing ##[group] (the step's command), if any
    mark: str | None  # "error" / "warning" / … from ##[mark] or ::mark::, else None


def clean(raw: str) -> list[LogLine]:
    """The log without timestamps and ANSI codes, each line with its group and marker."""
    out: list[LogLine] = []
    group: str | None = None
    for raw_line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        text = _ANSI.sub("", _STAMP.sub("", raw_line)).rstrip()
        mark = None
        m = _MARK.match(text) or _WORKFLOW_CMD.match(text)
        if m:
            mark = m.group(1)
            text = text[m.end():].strip()
            if mark == "group":
                group = text or group
                continue
            if mark == "endgroup":
                continue
        out.append(LogLine(len(out) + 1, text, group, mark))
    while out and not out[-1].text:
        out.pop()
    return out


def is_error(line: LogLine) -> bool:
    if line.mark == "error":
        return True
    return bool(_ERROR.search(line.text)) and not _NOT_ERROR.search(line.text)


def excerpt(lines: list[LogLine], *, before: int = 3, after: int = 2, max_lines: int = 40) -> list[LogLine]:
    """The error lines with ``before``/``after`` lines of context, windows merged, at most ``max_lines``.

    The runner's closing ``Process completed with exit code N`` says nothing about the cause, so it only counts
    when nothing else looks like an error. When there are too many, the *last* errors win: the first failure of a
    cascade is usually echoed again in the summary at the end, and the end is what people scroll to.
    """
    errors = [i for i, line in enumerate(lines) if is_error(line) and not _GENERIC.match(line.text)]
    if not errors:
        errors = [i for i, line in enumerate(lines) if is_error(line)]
    keep: set[int] = set()
    for i in reversed(errors):
        window = set(range(max(0, i - before), min(len(lines), i + after + 1)))
        if keep and len(keep | window) > max_lines:
            break
        keep |= window
    return [lines[i] for i in sorted(keep)][-max_lines:]


def render(lines: list[LogLine]) -> str:
    """Excerpt lines as text, a ``…`` where lines were skipped."""
    out: list[str] = []
    prev = None
    for line in lines:
        if prev is not None and line.number != prev + 1:
            out.append("…")
        out.append(line.text)
        prev = line.number
    return "\n".join(out)
