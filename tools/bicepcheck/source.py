"""A Bicep file as the checks see it: pycep's parse tree, a symbol table, expression walking and line lookup.

pycep (the parser the project already uses for checkov) gives a JSON-like tree without positions, and it writes
an identifier and a string literal alike as a Python ``str``. So this module:

* tells a reference from a literal by the file's symbol table (parameters, variables, resources, modules, loop
  variables): a ``str`` that names a symbol is a reference, any other ``str`` is a literal; ``${...}`` holes of
  an interpolated string are read with a small regex;
* flattens pycep's right-nested ``property_accessor``/``index_accessor``/``function_accessor`` nodes into
  chains such as ``['sb', 'properties', 'serviceBusEndpoint']``;
* finds line numbers by scanning the source text (declaration line, then each key inside the declaration's
  braces), so every finding names ``file:line``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

#: What ``evaluate`` returns for a value it cannot know before deployment (or does not model).
UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()

INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
CHAIN_IN_TEXT = re.compile(r"\b([A-Za-z_]\w*)((?:\s*\.\s*[A-Za-z_]\w*(?:\(\))?)*)")
DECLARATION = re.compile(r"^\s*(?:@\w+\([^\n]*\)\s*)*(param|var|resource|module|output)\s+([A-Za-z_]\w*)\b")


@dataclass(frozen=True)
class Finding:
    """One problem: file (relative to the repository), 1-based line, rule id and a sentence saying what to do."""

    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class Declaration:
    """A resource or module declaration, with its body unwrapped from pycep's loop/condition wrapper."""

    kind: str  # "resource" | "module"
    symbol: str
    node: Mapping[str, Any]
    body: Mapping[str, Any]
    loop_item: str | None = None
    loop_index: str | None = None

    @property
    def existing(self) -> bool:
        return bool(self.node.get("existing"))

    @property
    def type_name(self) -> str:
        return str(self.node.get("type", ""))

    @property
    def api_version(self) -> str:
        return str(self.node.get("api_version", ""))


def unwrap_body(config: Any) -> tuple[Mapping[str, Any], str | None, str | None]:
    """A declaration's body without pycep's ``{loop_type, condition, config}`` wrapper; plus loop variable names."""
    item = index = None
    while isinstance(config, Mapping) and "config" in config and ("loop_type" in config or "condition" in config):
        loop = config.get("loop_type") or {}
        detail = loop.get("detail") or {}
        item = detail.get("item_name", item)
        index = detail.get("index_name", index)
        config = config["config"]
    return (config if isinstance(config, Mapping) else {}), item, index


@dataclass
class BicepFile:
    """One parsed Bicep file; ``relative`` is how findings name it."""

    path: Path
    relative: str
    parsed: Mapping[str, Any]
    text: str
    lines: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()

    @classmethod
    def load(cls, path: Path, root: Path) -> BicepFile:
        text = path.read_text(encoding="utf-8")
        parsed = _parse(text)
        try:
            relative = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            relative = path.as_posix()
        return cls(path=path, relative=relative, parsed=parsed, text=text)

    # ---- symbols -----------------------------------------------------------------------------------------------
    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.parsed.get("parameters") or {}

    @property
    def variables(self) -> Mapping[str, Any]:
        return self.parsed.get("variables") or {}

    @property
    def outputs(self) -> Mapping[str, Any]:
        return self.parsed.get("outputs") or {}

    @cached_property
    def resources(self) -> dict[str, Declaration]:
        found = {}
        for symbol, node in (self.parsed.get("resources") or {}).items():
            body, item, index = unwrap_body(node.get("config"))
            found[symbol] = Declaration("resource", symbol, node, body, item, index)
        return found

    @cached_property
    def modules(self) -> dict[str, Declaration]:
        found = {}
        for symbol, node in (self.parsed.get("modules") or {}).items():
            body, item, index = unwrap_body(node.get("config"))
            found[symbol] = Declaration("module", symbol, node, body, item, index)
        return found

    @cached_property
    def loop_variables(self) -> set[str]:
        names: set[str] = set()
        for decl in [*self.resources.values(), *self.modules.values()]:
            names.update(n for n in (decl.loop_item, decl.loop_index) if n)
        for var in self.variables.values():
            _, item, index = unwrap_body(var.get("value"))
            names.update(n for n in (item, index) if n)
        names.update(re.findall(r"\[for\s+\(?\s*([A-Za-z_]\w*)", self.text))
        names.update(re.findall(r"\[for\s+\(\s*\w+\s*,\s*([A-Za-z_]\w*)", self.text))
        return names

    @cached_property
    def symbols(self) -> set[str]:
        return {*self.parameters, *self.variables, *self.resources, *self.modules, *self.loop_variables}

    def is_reference(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.symbols

    # ---- expressions -------------------------------------------------------------------------------------------
    def chains(self, expr: Any) -> Iterator[list[str]]:
        """Every access chain in ``expr``: ``['mod', 'outputs', 'name']``, ``['kv']`` for a bare symbol reference."""
        if isinstance(expr, str):
            if self.is_reference(expr):
                yield [expr]
            for hole in INTERPOLATION.findall(expr):
                for match in CHAIN_IN_TEXT.finditer(hole):
                    head = match.group(1)
                    if head in self.symbols:
                        rest = [p.strip() for p in match.group(2).split(".") if p.strip()]
                        yield [head, *rest]
            return
        if isinstance(expr, list):
            for item in expr:
                yield from self.chains(item)
            return
        if not isinstance(expr, Mapping):
            return
        operator = _operator(expr)
        if operator is not None and operator.get("type") in ACCESSORS:
            chain = self._flatten(expr)
            if chain and chain[0] in self.symbols:
                yield chain
            # Arguments and indexes inside an accessor are expressions too.
            yield from self._nested_chains(expr)
            return
        for value in expr.values():
            yield from self.chains(value)

    def _flatten(self, expr: Any) -> list[str]:
        if isinstance(expr, str):
            return [expr]
        if isinstance(expr, int):
            return [f"[{expr}]"]
        operator = _operator(expr)
        if operator is None or operator.get("type") not in ACCESSORS:
            return ["<expr>"]
        operands = operator.get("operands") or {}
        left = self._flatten(operands.get("operand_1"))
        if operator["type"] == "function_accessor":
            return [*left, f"{operands.get('func_name')}()"]
        right = operands.get("operand_2")
        if operator["type"] == "index_accessor":
            # r['sku'] is a property access in Bicep; r[0] indexes a collection.
            return [*left, right if isinstance(right, str) and not self.is_reference(right) else f"[{right}]"]
        return [*left, *self._flatten(right)]

    def _nested_chains(self, expr: Any) -> Iterator[list[str]]:
        operator = _operator(expr)
        if operator is None or operator.get("type") not in ACCESSORS:
            if not isinstance(expr, str | int):
                yield from self.chains(expr)
            return
        operands = operator.get("operands") or {}
        for key in ("operand_1", "operand_2"):
            value = operands.get(key)
            if isinstance(value, Mapping):
                yield from self._nested_chains(value)
            elif key == "operand_2" and operator["type"] == "index_accessor" and self.is_reference(value):
                yield [str(value)]

    def functions(self, expr: Any) -> Iterator[str]:
        """Names of the functions called in ``expr`` (pycep's snake_case names, e.g. ``resource_group``)."""
        if isinstance(expr, list):
            for item in expr:
                yield from self.functions(item)
        elif isinstance(expr, Mapping):
            function = _function(expr)
            if function is not None:
                yield str(function["type"])
            operator = _operator(expr)
            if operator is not None and operator.get("type") == "function_accessor":
                yield str((operator.get("operands") or {}).get("func_name"))
            for value in expr.values():
                yield from self.functions(value)

    def evaluate(self, expr: Any, _seen: frozenset[str] = frozenset()) -> Any:
        """The value of ``expr`` when it is a literal (through variables and ``union`` of objects), else UNKNOWN.

        Dicts and lists keep their shape with UNKNOWN leaves, so key checks still see literal keys.
        """
        if isinstance(expr, bool | int | float) or expr is None:
            return expr
        if isinstance(expr, str):
            if expr in self.variables and expr not in _seen:
                return self.evaluate(self.variables[expr].get("value"), _seen | {expr})
            if self.is_reference(expr) or "${" in expr:
                return UNKNOWN
            return expr
        if isinstance(expr, list):
            return [self.evaluate(item, _seen) for item in expr]
        if isinstance(expr, Mapping):
            if _operator(expr) is not None or ("loop_type" in expr and "config" in expr):
                return UNKNOWN
            function = _function(expr)
            if function is not None:
                if function.get("type") == "union":
                    parts = [self.evaluate(v, _seen) for v in (function.get("parameters") or {}).values()]
                    if parts and all(isinstance(p, dict) for p in parts):
                        merged: dict[str, Any] = {}
                        for part in parts:
                            merged.update(part)
                        return merged
                return UNKNOWN
            return {_unquote(key): self.evaluate(value, _seen) for key, value in expr.items()}
        return UNKNOWN

    # ---- lines -------------------------------------------------------------------------------------------------
    def declaration_line(self, kind: str, symbol: str) -> int:
        for number, line in enumerate(self.lines, start=1):
            match = DECLARATION.match(line)
            if match and match.group(1) == kind and match.group(2) == symbol:
                return number
        return 1

    def key_line(self, kind: str, symbol: str, path: list[str]) -> int:
        """Line of the key ``path`` (object keys, array positions skipped) inside a declaration; falls back to the
        deepest key found, then to the declaration line."""
        start = self.declaration_line(kind, symbol)
        end = self._block_end(start)
        line = start
        for key in path:
            found = self._find_key(key, line + (0 if line == start else 1), end)
            if found is None:
                return line
            line = found
            end = self._block_end(found)
        return line

    def text_line(self, needle: str, default: int = 1) -> int:
        """First line containing ``needle`` (a regex), else ``default``."""
        pattern = re.compile(needle)
        for number, line in enumerate(self.lines, start=1):
            if pattern.search(_strip_comment(line)):
                return number
        return default

    def _find_key(self, key: str, first: int, last: int) -> int | None:
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}|'{re.escape(key)}')\s*:")
        for number in range(first, min(last, len(self.lines)) + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return None

    def _block_end(self, start: int) -> int:
        """Last line of the bracketed value that opens on line ``start`` (or ``start`` itself when none opens)."""
        depth = 0
        opened = False
        for number in range(start, len(self.lines) + 1):
            for char in _strip_strings(_strip_comment(self.lines[number - 1])):
                if char in "{[(":
                    depth += 1
                    opened = True
                elif char in "}])":
                    depth -= 1
            if opened and depth <= 0:
                return number
            if not opened and number > start:
                return start
        return len(self.lines)


@lru_cache(maxsize=256)
def _parser() -> Any:
    from pycep import BicepParser

    return BicepParser()


@lru_cache(maxsize=256)
def _parse_cached(text: str) -> str:
    return json.dumps(_parser().parse(text=text), default=str)


def _parse(text: str) -> dict[str, Any]:
    """pycep's parse of ``text``; memoised by content (mutation tests parse many identical copies)."""
    return dict(json.loads(_parse_cached(text)))


ACCESSORS = frozenset({"property_accessor", "index_accessor", "function_accessor"})


def _operator(expr: Any) -> Mapping[str, Any] | None:
    """pycep's operator node ``{"operator": {"type": ..., "operands": ...}}`` (not an object literal that merely
    has a key named ``operator``)."""
    if isinstance(expr, Mapping) and len(expr) == 1:
        operator = expr.get("operator")
        if isinstance(operator, Mapping) and "type" in operator and "operands" in operator:
            return operator
    return None


def _function(expr: Any) -> Mapping[str, Any] | None:
    """pycep's function-call node ``{"function": {"type": ..., "parameters": ...}}``."""
    if isinstance(expr, Mapping) and len(expr) == 1:
        function = expr.get("function")
        if isinstance(function, Mapping) and "type" in function and "parameters" in function:
            return function
    return None


def _unquote(key: str) -> str:
    """pycep keeps the quotes of a quoted object key (``'odata.type'``)."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def _strip_comment(line: str) -> str:
    out, quoted = [], False
    for i, char in enumerate(line):
        if char == "'":
            quoted = not quoted
        if not quoted and line.startswith("//", i):
            break
        out.append(char)
    return "".join(out)


def _strip_strings(line: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", line)
