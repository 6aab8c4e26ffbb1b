"""Size and nesting limits every door checks on raw bytes *before* it parses them.

``json.loads`` recurses once per nesting level: a body of ten thousand ``[`` is a few kilobytes and ends in a
``RecursionError`` (a 500 with a traceback over HTTP, a retried message on Service Bus). ``json_depth`` measures
the nesting without parsing: string literals are blanked with one regular expression (brackets inside strings
do not count) and the remaining brackets are summed, so the cost is linear and in C for the bulk of the work.

Platform-free on purpose: every platform package and the HTTP/MCP triggers use it.
"""

from __future__ import annotations

import re
from itertools import accumulate

from shared.errors import IncomingRequestError

#: Deeper than any payload Reynolds reads (GitHub webhooks nest about 6 levels, Teams activities and Graph
#: notifications about 5, CloudEvents with a task about 6); far below the interpreter's recursion limit.
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class BodyTooLarge(IncomingRequestError):
    """The body exceeds the door's size limit (HTTP 413)."""

    status_code = 413


class NestingTooDeep(IncomingRequestError):
    """The JSON nests deeper than :data:`MAX_JSON_DEPTH` (HTTP 400, or a dead-letter on Service Bus)."""

    status_code = 400


def json_depth(raw: bytes | str) -> int:
    """The deepest bracket nesting of JSON text ``raw`` (0 for a scalar), without parsing it."""
    data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw
    blanked = _STRING.sub(b'""', data)
    brackets = _BRACKETS.findall(blanked)
    if not brackets:
        return 0
    return max(0, max(accumulate(_STEP[b[0]] for b in brackets)))


def check_size(raw: bytes | str, max_bytes: int, what: str = "body") -> None:
    """Raise ``BodyTooLarge`` when ``raw`` is longer than ``max_bytes``."""
    size = len(raw.encode("utf-8", errors="surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise BodyTooLarge(f"{what} is larger than {max_bytes} bytes")


def check_json(raw: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH,
               what: str = "body") -> None:
    """Size (when ``max_bytes`` is given) and nesting checks on JSON text, before anyone parses it."""
    if max_bytes is not None:
        check_size(raw, max_bytes, what)
    if json_depth(raw) > max_depth:
        raise NestingTooDeep(f"{what} nests deeper than {max_depth} levels")
