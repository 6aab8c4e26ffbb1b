"""Repository policy: ``.github/reynolds.yml``, validated against the published schema, never half-applied.

The file (schema: ``docs/reynolds.schema.json``; examples in the README, "Acting on proposals")::

    version: 1
    tools:
      add_labels: auto
      create_issue: approve
      rerun_failed_jobs: never
    approvals:
      remind_after_hours: 24
      expire_after_hours: 72

Where it is read from, as GitHub finds default community health files ("Creating a default community health
file", docs.github.com/communities/setting-up-your-project-for-healthy-contributions/
creating-a-default-community-health-file: a public repository named ``.github`` of the account holds defaults
used by every repository of that account *that has no file of its own*; Probot's ``context.config`` reads
``.github/<name>`` from that repository the same way):

1. ``<owner>/<repo>``: ``.github/reynolds.yml`` through the contents API;
2. when that is 404, ``<owner>/.github``: ``.github/reynolds.yml``;
3. when that is 404 too, the defaults.

A repository's own file replaces the organisation's entirely (no merging, as for community files).

Defaults are conservative: every tool waits for an approval, except ``add_labels`` on the task's own issue,
which runs (``auto``) unless the file names ``add_labels``. A file that does not parse or validate gives a
:class:`PolicyError` whose message is posted on the issue; *none* of the file applies and nothing runs ``auto``
— not even the labels exception — until it is fixed.

Reading the YAML: PyYAML's ``SafeLoader``, subclassed as :class:`_PolicyLoader`. Every refusal carries its line
from PyYAML's marks, and so does every schema problem (the composed node tree is walked to the key or value
pydantic names). Refused, and why:

- more than 64 KiB of UTF-8, checked before parsing (the line is where the limit is crossed);
- anchors ``&a`` and aliases ``*a``: the "billion laughs" expansion, and a policy needs no sharing;
- any explicit tag (``!!map``, ``!custom``, the bare ``!``): no types beyond the schema's;
- duplicate keys: YAML requires unique keys (YAML 1.2.2 §3.2.1.1) but PyYAML keeps the last one silently,
  which would hide a second, contradicting entry;
- keys that are not text: the schema is JSON, whose object keys are strings;
- nesting deeper than 16: PyYAML's composer recurses once per level, a deep ``[[[[…`` must not crash it;
- a plain scalar that YAML 1.1 and 1.2 read differently (below).

YAML 1.1 vs 1.2 (the decision): PyYAML implements YAML 1.1, where ``yes``/``no``/``on``/``off`` are booleans,
``010`` is octal 8, ``1_000``, ``0b101`` and ``1:30`` are numbers, ``2026-01-01`` is a date, ``<<`` merges and
``1e3`` is text; YAML 1.2's core schema (yaml.org/spec/1.2.2 §10.3.2, "Tag Resolution") reads the first ones
as text, ``010`` as 10 and ``1e3`` as a number, and the YAML 1.1 type repository also lists ``y``/``n`` as
booleans. An editor validating against ``docs/reynolds.schema.json`` may use either, so a *plain* (unquoted)
key or value the two read as a different type or value is refused with its line and the hint to quote it or
write ``true``/``false`` — never guessed. No valid file needs one (the schema's modes are the words
``auto``/``approve``/``never`` and its numbers plain integers); ``tools: {create_issue: yes}`` would otherwise
become ``True`` and be refused with a baffling message. Quoted scalars are always text. So everything accepted
reads the same under ``yaml.safe_load`` and a YAML 1.2 reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from shared.act.proposals import WRITE_TOOLS, ProposalLike

Mode = Literal["auto", "approve", "never"]
POLICY_PATH = ".github/reynolds.yml"
#: The organisation-wide fallback repository, as for community health files.
ORG_REPOSITORY = ".github"
DEFAULT_REMIND_AFTER_HOURS = 24
DEFAULT_EXPIRE_AFTER_HOURS = 72
#: Top-level keys later capabilities own: accepted (objects) and not read here.
RESERVED_KEYS = ("reviews", "improvements")

#: ``(owner/repo, path) -> text | None`` (None: GitHub answered 404). A ``ValueError`` means "there, but not a
#: readable file" (reported as a bad file); any other exception means "could not read" and propagates.
FileReader = Callable[[str, str], "str | None"]


class PolicyError(ValueError):
    """A ``.github/reynolds.yml`` that cannot apply; ``str()`` is the report posted on the issue."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"- {problem}" for problem in problems[:10])
        super().__init__(f"`{source}` was not applied (every write waits for an approval until it is fixed):\n"
                         f"{listed}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ToolModes(_Strict):
    """``tools:``: one mode per write tool; unnamed tools keep the default."""

    create_issue: Mode | None = None
    add_labels: Mode | None = None
    rerun_failed_jobs: Mode | None = None
    create_review_comment: Mode | None = None
    create_comment: Mode | None = None
    post_channel_message: Mode | None = None
    create_calendar_event: Mode | None = None


class ApprovalTimes(_Strict):
    """``approvals:``: when a pending proposal is reminded once, and when it expires (hours)."""

    remind_after_hours: int = Field(DEFAULT_REMIND_AFTER_HOURS, ge=1, le=720)
    expire_after_hours: int = Field(DEFAULT_EXPIRE_AFTER_HOURS, ge=1, le=720)


class PolicyFile(_Strict):
    """The file's content, as ``docs/reynolds.schema.json`` publishes it."""

    version: Literal[1] = 1
    tools: ToolModes = ToolModes()
    approvals: ApprovalTimes = ApprovalTimes()
    reviews: dict[str, Any] | None = None
    improvements: dict[str, Any] | None = None


class Policy(BaseModel):
    """The policy in force for one repository, and where it came from."""

    model_config = ConfigDict(frozen=True)

    file: PolicyFile = PolicyFile()
    #: ``owner/repo:.github/reynolds.yml``, ``owner/.github:.github/reynolds.yml`` or ``defaults``.
    source: str = "defaults"
    #: The report of a bad file (then ``file`` is the defaults and nothing is ``auto``).
    error: str | None = None

    def mode(self, proposal: ProposalLike, task_issue: str | None) -> Mode:
        """How ``proposal`` may run: the file's mode for its tool, else the default.

        ``task_issue`` is the tracking issue as ``owner/repo#n``: labels there are ``auto`` by default.
        """
        if self.error is not None:
            return "approve"
        named: Mode | None = getattr(self.file.tools, proposal.tool, None)
        if named is not None:
            return named
        own_issue = task_issue is not None and proposal.target.lower() == task_issue.lower()
        return "auto" if proposal.tool == "add_labels" and own_issue else "approve"


#: The largest file read (UTF-8 bytes), checked before parsing.
MAX_BYTES = 64 * 1024
#: The deepest nesting read (PyYAML's composer recurses once per level).
MAX_DEPTH = 16
_AMBIGUOUS_TAG = "tag:reynolds,2026:yaml-1.1-vs-1.2"
_STR, _NULL, _BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "null", "bool", "int", "float"))
# YAML 1.2 core schema (yaml.org/spec/1.2.2, §10.3.2 "Tag Resolution"), with the forms PyYAML reads differently.
_CORE_NULL = re.compile(r"~|null|Null|NULL|")
_CORE_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")  # 1.2: decimal; 1.1 (PyYAML): octal
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_YAML_11_ONLY_BOOL = frozenset({"y", "Y", "n", "N"})  # booleans in the YAML 1.1 type repository, strings in PyYAML


def _core_tag(value: str) -> str:
    """The tag YAML 1.2's core schema gives the plain scalar ``value`` (``_AMBIGUOUS_TAG`` for ``010``)."""
    if _CORE_NULL.fullmatch(value):
        return _NULL
    if _CORE_BOOL.fullmatch(value):
        return _BOOL
    if _LEADING_ZERO.fullmatch(value):
        return _AMBIGUOUS_TAG
    if _CORE_INT.fullmatch(value):
        return _INT
    if _CORE_FLOAT.fullmatch(value):
        return _FLOAT
    return _STR


class _PolicyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what a policy file must not contain (the table in the module docstring).

    Hooks (PyYAML 6, lib/yaml): ``Composer.compose_node`` sees every node's event first (anchor, alias, tag,
    depth); ``Resolver.resolve`` gives plain scalars their implicit type; ``SafeConstructor.construct_mapping``
    builds every mapping. A refusal is a ``MarkedYAMLError`` with the offending node's mark, like PyYAML's own.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise ComposerError(None, None, f"an alias (*{event.anchor}) is not read: write the value out",
                                event.start_mark)
        if event.anchor is not None:
            raise ComposerError(None, None, f"an anchor (&{event.anchor}) is not read: anchors and aliases are "
                                            "refused", event.start_mark)
        if event.tag is not None:
            raise ComposerError(None, None, f"a tag ({event.tag}) is not read: write the value without it",
                                event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            node: Node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        pyyaml: str = super().resolve(kind, value, implicit)
        plain = kind is ScalarNode and implicit[0]  # a plain scalar: YAML 1.1 (PyYAML) and 1.2 must agree
        if plain and (pyyaml != _core_tag(value) or value in _YAML_11_ONLY_BOOL):
            return _AMBIGUOUS_TAG
        return pyyaml

    def construct_ambiguous(self, node: ScalarNode) -> None:
        raise ConstructorError(None, None, f"'{str(node.value)[:40]}' reads differently in YAML 1.1 and 1.2 "
                                           "(a boolean, number, date or merge in one, text in the other): quote "
                                           "it, or write true/false or a plain decimal number", node.start_mark)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise ConstructorError(None, None, "a key must be text (the schema's objects have string keys)",
                                       key_node.start_mark)
            if key in first_line:
                raise ConstructorError(None, None, f"duplicate key '{key[:40]}' (first on line "
                                                   f"{first_line[key]})", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_PolicyLoader.add_constructor(_AMBIGUOUS_TAG, _PolicyLoader.construct_ambiguous)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """One line: where (1-based, from PyYAML's mark) and what."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
    else:  # pragma: no cover - every PyYAML error raised while loading a string carries a mark or a position
        line = 1
    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or exc.context or "not valid YAML"
        context_mark = exc.context_mark
        if exc.problem and exc.context and context_mark is not None and context_mark.line + 1 != line:
            what = f"{exc.context} (line {context_mark.line + 1}), {exc.problem}"
    else:
        what = str(exc).splitlines()[0] if str(exc) else "not valid YAML"
    return f"line {line}: {what[:200]}"


def _load(text: str) -> tuple[Any, Node | None]:
    """The document's value and its node tree (for line numbers), or :class:`ValueError` with ``line N: …``."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BYTES:
        line = data[:MAX_BYTES].count(b"\n") + 1
        raise ValueError(f"line {line}: the file is larger than {MAX_BYTES // 1024} KiB (the limit is crossed on "
                         "this line); nothing of it was read")
    loader: _PolicyLoader | None = None
    try:
        loader = _PolicyLoader(text)  # the reader refuses control characters here already
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_problem(exc, text)) from None
    finally:
        if loader is not None:
            loader.dispose()
    return value, node


def _line_of(root: Node | None, loc: tuple[int | str, ...], *, key: bool) -> int | None:
    """The 1-based line of the value at ``loc`` (of its key, when ``key``), walking the composed nodes."""
    node = root
    for position, part in enumerate(loc):
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == part:
                    if key and position == len(loc) - 1:
                        return int(key_node.start_mark.line) + 1
                    node = value_node
                    break
            else:
                return None
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return None
    return None if node is None else int(node.start_mark.line) + 1


def parse_policy(text: str, source: str) -> PolicyFile:
    """The validated file, or :class:`PolicyError` listing every problem, each with its line."""
    try:
        data, root = _load(text)
    except ValueError as exc:
        raise PolicyError(source, [str(exc)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        line = _line_of(root, (), key=False) or 1
        raise PolicyError(source, [f"line {line}: the file must be a mapping (`tools:`, `approvals:` …)"])
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = ".".join(str(part) for part in loc) or "(top level)"
            extra = error["type"] == "extra_forbidden"
            found = _line_of(root, loc, key=extra)
            at = f"line {found}: " if found is not None else ""
            if extra:
                known = ", ".join(WRITE_TOOLS) if loc[:1] == ("tools",) else \
                    "version, tools, approvals, " + ", ".join(RESERVED_KEYS)
                problems.append(f"{at}`{where[:80]}` is not a known key (known: {known})")
            elif error["type"] == "literal_error" and loc[:1] == ("tools",):
                problems.append(f"{at}`{where[:80]}` must be auto, approve or never")
            else:
                problems.append(f"{at}`{where[:80]}`: {error['msg'][:120]}")
        raise PolicyError(source, problems) from None


def load_policy(read: FileReader, repo: str) -> Policy:
    """The policy of ``repo`` (``owner/name``): its own file, else its organisation's ``.github`` repository's,
    else the defaults. A bad file yields a policy whose ``error`` is the report and under which nothing is
    ``auto``; a read failure (not a 404) propagates, so the caller retries rather than acting on defaults."""
    owner, _, name = repo.partition("/")
    places = [repo] if name.lower() == ORG_REPOSITORY else [repo, f"{owner}/{ORG_REPOSITORY}"]
    for where in places:
        source = f"{where}:{POLICY_PATH}"
        try:
            text = read(where, POLICY_PATH)
        except ValueError as exc:  # there, but not a readable text file (a directory, too large, not UTF-8)
            return Policy(source=source, error=str(PolicyError(source, [str(exc)[:200]])))
        if text is None:
            continue
        try:
            return Policy(file=parse_policy(text, source), source=source)
        except PolicyError as exc:
            return Policy(source=source, error=str(exc))
    return Policy()
