"""A strict reader for the small YAML subset ``.github/reynolds.yml`` needs (the app ships no YAML library).

``requirements.txt`` (what the app deploys) holds no YAML parser, so the policy file is read by this module
instead. It reads block mappings and block sequences by indentation, flow sequences of scalars (``[a, b]``),
the empty flow mapping ``{}``, comments, and scalars: plain, ``'single'`` and ``"double"`` quoted (JSON escapes),
integers, ``true``/``false`` and ``null``/``~`` (YAML 1.2's core schema). Everything else is refused with the
line number, never guessed: anchors and aliases (``&``/``*``, the "billion laughs" shape), tags (``!``),
block scalars (``|``/``>``), several documents, complex keys (``?``), tabs in indentation, duplicate keys
(YAML 1.2 requires unique keys; PyYAML silently keeps the last), and YAML 1.1's ``yes``/``no``/``on``/``off``
(a boolean in PyYAML, a string in YAML 1.2: ambiguous, so it must be quoted or written ``true``/``false``).

Every document this module accepts parses to the same value under PyYAML's ``safe_load``
(``tests/test_act_policy.py`` checks the documented examples against PyYAML from the tools environment).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 64_000
MAX_DEPTH = 16
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_AMBIGUOUS = frozenset({"yes", "no", "on", "off", "y", "n"})
_KEY = re.compile(r"^(?P<key>[A-Za-z0-9_][A-Za-z0-9_.-]*|\"[^\"]*\"|'[^']*')\s*:(?:\s+(?P<value>.*))?$")


class YamlSubsetError(ValueError):
    """The text is not in the subset; ``line`` is 1-based (0 when the whole document is at fault)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass(frozen=True)
class _Line:
    number: int
    indent: int
    text: str


def _strip_comment(raw: str, number: int) -> str:
    """The line without its comment (``#`` at the start or after whitespace, outside quotes)."""
    quote: str | None = None
    for index, char in enumerate(raw):
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                continue
        elif char in "\"'" and (index == 0 or raw[index - 1] in " \t:[{,-"):
            quote = char
        elif char == "#" and (index == 0 or raw[index - 1] in " \t"):
            return raw[:index].rstrip()
    if quote:
        raise YamlSubsetError(number, "a quoted string is not closed on its line")
    return raw.rstrip()


def _lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if number == 1 and raw.startswith("\ufeff"):
            raw = raw[1:]
        body = _strip_comment(raw, number)
        if not body.strip():
            continue
        stripped = body.lstrip(" ")
        if stripped.startswith("\t") or "\t" in body[: len(body) - len(stripped) + 1]:
            raise YamlSubsetError(number, "tabs are not allowed in indentation")
        if stripped in ("---", "...") or stripped.startswith(("--- ", "%")):
            if stripped == "---" and not lines:
                continue  # one leading document marker is fine
            raise YamlSubsetError(number, "only one YAML document, without directives, is read")
        lines.append(_Line(number, len(body) - len(stripped), stripped))
    return lines


def _scalar(token: str, number: int) -> Any:
    token = token.strip()
    if not token:
        return None
    first = token[0]
    if first in "&*!|>?@`%":
        raise YamlSubsetError(number, f"'{first}' (anchors, aliases, tags, block scalars, complex keys) is not read")
    if first == '"':
        try:
            value = json.loads(token)
        except ValueError:
            raise YamlSubsetError(number, "a double-quoted string is malformed") from None
        if not isinstance(value, str):
            raise YamlSubsetError(number, "a double-quoted string is malformed")  # pragma: no cover
        return value
    if first == "'":
        if len(token) < 2 or not token.endswith("'"):
            raise YamlSubsetError(number, "a single-quoted string is malformed")
        inner = token[1:-1]
        if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
            raise YamlSubsetError(number, "a single-quoted string is malformed")
        return inner.replace("''", "'")
    if first == "[":
        return _flow_sequence(token, number)
    if first == "{":
        if token.replace(" ", "") == "{}":
            return {}
        raise YamlSubsetError(number, "flow mappings other than {} are not read; use an indented block")
    lowered = token.lower()
    if lowered in ("null", "~"):
        return None
    if lowered in ("true", "false"):
        if token not in ("true", "false", "True", "False", "TRUE", "FALSE"):
            raise YamlSubsetError(number, f"write {lowered} in lower case")
        return lowered == "true"
    if lowered in _AMBIGUOUS:
        raise YamlSubsetError(number, f"'{token}' means a boolean in YAML 1.1 and a string in 1.2: quote it or "
                                      "write true/false")
    if _INT.match(token):
        return int(token)
    if re.match(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$", token) or lowered in (
            ".inf", "-.inf", "+.inf", ".nan") or token.startswith(("0x", "0o")):
        raise YamlSubsetError(number, "only whole numbers are read; quote other numbers")
    if ": " in token or token.endswith(":"):
        raise YamlSubsetError(number, "a plain value may not contain ': ' (quote it)")
    if " #" in token:
        raise YamlSubsetError(number, "a plain value may not contain ' #' (quote it)")  # pragma: no cover
    return token


def _flow_sequence(token: str, number: int) -> list[Any]:
    if not token.endswith("]"):
        raise YamlSubsetError(number, "a flow sequence must close on its line")
    inner = token[1:-1].strip()
    if not inner:
        return []
    if any(char in inner for char in "[]{}"):
        raise YamlSubsetError(number, "nested flow collections are not read")
    items: list[str] = []
    current = ""
    quote: str | None = None
    for char in inner:
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current += char
        elif char == ",":
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    if any(not item.strip() for item in items):
        raise YamlSubsetError(number, "a flow sequence has an empty item")
    return [_scalar(item, number) for item in items]


def _key(raw: str, number: int) -> str:
    if raw.startswith(('"', "'")):
        value = _scalar(raw, number)
        return str(value)
    return raw


def _block(lines: list[_Line], start: int, indent: int, depth: int) -> tuple[Any, int]:
    """Parse the block whose lines start at ``start`` with exactly ``indent``; return (value, next index)."""
    if depth > MAX_DEPTH:
        raise YamlSubsetError(lines[start].number, f"nesting deeper than {MAX_DEPTH} levels")
    if lines[start].text.startswith("- ") or lines[start].text == "-":
        return _sequence(lines, start, indent, depth)
    return _mapping(lines, start, indent, depth)


def _child(lines: list[_Line], index: int, parent: _Line, depth: int, *,
           sequence_item: bool = False) -> tuple[Any, int]:
    """The nested block under ``parent`` (a key or ``-`` with no inline value), or null when there is none."""
    if index < len(lines) and lines[index].indent > parent.indent:
        return _block(lines, index, lines[index].indent, depth + 1)
    # "key:" followed by "- item" at the same indentation is a sequence value (YAML allows it for mappings).
    if (not sequence_item and index < len(lines) and lines[index].indent == parent.indent
            and (lines[index].text.startswith("- ") or lines[index].text == "-")):
        return _sequence(lines, index, parent.indent, depth + 1)
    return None, index


def _mapping(lines: list[_Line], start: int, indent: int, depth: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    index = start
    while index < len(lines) and lines[index].indent >= indent:
        line = lines[index]
        if line.indent > indent:
            raise YamlSubsetError(line.number, "unexpected indentation")
        if line.text.startswith("- ") or line.text == "-":
            raise YamlSubsetError(line.number, "a sequence item where a key was expected")
        match = _KEY.match(line.text)
        if match is None:
            if line.text.startswith("?"):
                raise YamlSubsetError(line.number, "complex keys ('?') are not read")
            raise YamlSubsetError(line.number, "expected 'key: value'")
        key = _key(match["key"], line.number)
        if key in result:
            raise YamlSubsetError(line.number, f"duplicate key '{key[:40]}'")
        index += 1
        inline = match["value"]
        if inline is not None and inline.strip():
            result[key] = _scalar(inline, line.number)
        else:
            result[key], index = _child(lines, index, line, depth)
    return result, index


def _sequence(lines: list[_Line], start: int, indent: int, depth: int) -> tuple[list[Any], int]:
    result: list[Any] = []
    index = start
    while index < len(lines) and lines[index].indent == indent and (
            lines[index].text.startswith("- ") or lines[index].text == "-"):
        line = lines[index]
        rest = line.text[1:].strip()
        index += 1
        if not rest:
            value, index = _child(lines, index, line, depth, sequence_item=True)
            result.append(value)
        elif _KEY.match(rest):
            raise YamlSubsetError(line.number, "mappings inside sequence items are not read")
        else:
            result.append(_scalar(rest, line.number))
    if index < len(lines) and lines[index].indent > indent:
        raise YamlSubsetError(lines[index].number, "unexpected indentation")
    return result, index


def load(text: str) -> Any:
    """The value of the YAML document ``text`` (None when it is empty), or :class:`YamlSubsetError`."""
    if len(text) > MAX_CHARS:
        raise YamlSubsetError(0, f"the file is longer than {MAX_CHARS} characters")
    lines = _lines(text)
    if not lines:
        return None
    if len(lines) == 1 and not _KEY.match(lines[0].text) and not lines[0].text.startswith("-"):
        return _scalar(lines[0].text, lines[0].number)
    value, index = _block(lines, 0, lines[0].indent, 0)
    if index < len(lines):
        raise YamlSubsetError(lines[index].number, "unexpected indentation")
    return value
