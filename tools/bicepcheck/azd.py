"""How ``azd provision`` turns ``infra/main.parameters.json`` into deployment parameters, modelled from source.

Azure/azure-dev ``cli/azd/pkg/infra/provisioning/bicep/bicep_provider.go``, ``BicepProvider.loadParameters``
(the path for parameters that are not object/array typed, "Path B"): for each parameter it

1. marshals the parameter object (``azure.ArmParameter``: ``{"value": ..., "reference": ...}``) back to JSON
   with Go's ``json.Marshal`` (which escapes ``<``, ``>``, ``&`` as ``\\u003c`` ...);
2. runs ``evalParamEnvSubst`` on that JSON *text*: ``github.com/drone/envsubst`` (v1.0.3, azd's go.mod) with a
   mapping that answers ``AZURE_PRINCIPAL_ID``/``AZURE_PRINCIPAL_TYPE`` itself and reads the azd environment
   otherwise, noting whether any variable was unset;
3. evaluates command substitutions (``cmdsubst.Eval`` with ``SecretOrRandomPasswordCommandExecutor``:
   ``$(secretOrRandomPassword <vault> <secret>)`` becomes the secret's value, pasted as is);
4. ``json.Unmarshal``s the result: an error there ("error unmarshalling Bicep template parameters") stops the
   provision. A value with a raw newline or quote pasted by step 2 or 3 is exactly such an error;
5. drops a parameter whose value is ``""`` when a variable it maps was unset (the template default applies).

The envsubst port below follows drone/envsubst v1.0.3 ``parse/scan.go`` (scanner with the ident/lbrack/rbrack/
escape modes: ``$$`` and ``\\\\``/``\\/`` are escapes), ``parse/parse.go`` (``parseAny``, ``parseFunc``,
``parseDefaultFunc``, ``parseParam``) and ``template.go``/``funcs.go`` (every default operator ``=``, ``:-``,
``:=``, ``-``, ``+``, ``:?``, ``:+`` is ``toDefault``: the arguments when the value is empty). The string
functions azd templates do not use (case, replace, trim, substring, length) raise ``Unsupported``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

EOF = None
_IDENT, _LBRACK, _RBRACK, _ESCAPE = 1, 2, 4, 8
_TOKEN_EOF, _TOKEN_IDENT, _TOKEN_LBRACK, _TOKEN_RBRACK, _TOKEN_ILLEGAL = range(5)

PRINCIPAL_ID = "AZURE_PRINCIPAL_ID"
PRINCIPAL_TYPE = "AZURE_PRINCIPAL_TYPE"
#: cmdsubst.commandInvocationRegex.
COMMAND_INVOCATION = re.compile(r"\$\(\s*(\w+)([\w\s-]*)\)")


class SubstitutionError(ValueError):
    """drone/envsubst's parse errors (``bad substitution``, ``missing closing brace``, ...)."""


class Unsupported(SubstitutionError):
    """An envsubst function this model does not implement."""


class ParametersError(ValueError):
    """What azd reports when a substituted parameter is not valid JSON."""


# ---- drone/envsubst: scanner -----------------------------------------------------------------------------------
def _accept_rune(r: str, i: int) -> bool:
    return True


def _accept_ident(r: str, i: int) -> bool:
    return r.isalpha() or r.isdigit() or r == "_"


def _accept_not_closing(r: str, i: int) -> bool:
    return r != "}"


def _accept_default_func(r: str, i: int) -> bool:
    return (i == 1 and r == ":") or (i == 2 and r in "=-?+")


def _accept_one_equal(r: str, i: int) -> bool:
    return i == 1 and r == "="


class _Scanner:
    def __init__(self, buf: str) -> None:
        self.buf, self.pos, self.start, self.width, self.mode = buf, 0, 0, 0, 0
        self.accept: Callable[[str, int], bool] = _accept_rune

    def read(self) -> str | None:
        if self.pos >= len(self.buf):
            self.width = 0
            return EOF
        r = self.buf[self.pos]
        self.width = 1
        self.pos += 1
        return r

    def unread(self) -> None:
        self.pos -= self.width

    def skip(self) -> None:
        self.buf = self.buf[: self.pos - 1] + self.buf[self.pos :]

    def peek(self) -> str | None:
        r = self.read()
        self.unread()
        return r

    def string(self) -> str:
        return self.buf[self.start : self.pos]

    def scan(self) -> int:
        self.start = self.pos
        r = self.read()
        if r is EOF:
            return _TOKEN_EOF
        if self._lbrack(r):
            return _TOKEN_LBRACK
        if self._rbrack(r):
            return _TOKEN_RBRACK
        if self._ident(r):
            return _TOKEN_IDENT
        return _TOKEN_ILLEGAL

    def _ident(self, r: str) -> bool:
        if not self.mode & _IDENT:
            return False
        if self._escaped(r):
            self.skip()
        elif not self.accept(r, self.pos - self.start):
            return False
        while True:
            nxt = self.read()
            if nxt is EOF:
                self.unread()
                break
            if self._lbrack(nxt):
                self.unread()
                self.unread()
                break
            if self._escaped(nxt):
                self.skip()
                continue
            if not self.accept(nxt, self.pos - self.start):
                self.unread()
                break
        return True

    def _lbrack(self, r: str) -> bool:
        if not self.mode & _LBRACK:
            return False
        if r == "$":
            if self.read() == "{":
                return True
            self.unread()
        return False

    def _rbrack(self, r: str) -> bool:
        return bool(self.mode & _RBRACK) and r == "}"

    def _escaped(self, r: str) -> bool:
        if not self.mode & _ESCAPE:
            return False
        if r == "$" and self.peek() == "$":
            return True
        if r != "\\":
            return False
        return self.peek() in ("/", "\\")


# ---- drone/envsubst: parser and template -----------------------------------------------------------------------
@dataclass
class _Text:
    value: str


@dataclass
class _Func:
    param: str
    name: str = ""
    args: list[Any] = field(default_factory=list)


_EMPTY = _Text("")


class _Parser:
    def __init__(self, buf: str) -> None:
        self.s = _Scanner(buf)

    def parse_any(self) -> list[Any]:
        nodes: list[Any] = []
        while True:
            self.s.accept = _accept_rune
            self.s.mode = _IDENT | _LBRACK | _ESCAPE
            token = self.s.scan()
            if token == _TOKEN_IDENT:
                nodes.append(_Text(self.s.string()))
            elif token == _TOKEN_EOF:
                return nodes
            elif token == _TOKEN_LBRACK:
                nodes.append(self.parse_func())
            else:
                raise SubstitutionError("bad substitution")

    def parse_func(self) -> _Func:
        if self.s.peek() == "#":
            raise Unsupported("${#var} (length)")
        self.s.accept = _accept_ident
        self.s.mode = _IDENT
        if self.s.scan() != _TOKEN_IDENT:
            raise SubstitutionError("unable to parse variable name")
        name = self.s.string()
        nxt = self.s.peek()
        if nxt == ":":
            return self.parse_default_or_substr(name)
        if nxt == "=":
            return self.parse_default_func(name)
        if nxt in (",", "^", "/", "#", "%"):
            raise Unsupported(f"${{{name}{nxt}...}}")
        self.s.accept = _accept_ident
        self.s.mode = _RBRACK
        if self.s.scan() != _TOKEN_RBRACK:
            raise SubstitutionError("missing closing brace")
        return _Func(name)

    def parse_param(self, accept: Callable[[str, int], bool], mode: int) -> Any:
        self.s.accept = accept
        self.s.mode = mode | _LBRACK
        token = self.s.scan()
        if token == _TOKEN_LBRACK:
            return self.parse_func()
        if token in (_TOKEN_IDENT, _TOKEN_RBRACK):
            return _Text(self.s.string())
        raise SubstitutionError("unable to parse substitution within function")

    def parse_default_or_substr(self, name: str) -> _Func:
        self.s.read()
        r = self.s.peek()
        self.s.unread()
        if r is not None and r in "=-?+":
            return self.parse_default_func(name)
        raise Unsupported(f"${{{name}:offset}} (substring)")

    def parse_default_func(self, name: str) -> _Func:
        node = _Func(name)
        self.s.accept = _accept_one_equal if self.s.peek() == "=" else _accept_default_func
        self.s.mode = _IDENT
        if self.s.scan() != _TOKEN_IDENT:
            raise SubstitutionError("unable to parse default function")
        node.name = self.s.string()
        while True:
            if self.s.peek() == "}":
                self.s.mode = _RBRACK
                if self.s.scan() != _TOKEN_RBRACK:
                    raise SubstitutionError("bad substitution")
                return node
            node.args.append(self.parse_param(_accept_not_closing, _IDENT))


def envsubst(text: str, mapping: Callable[[str], str]) -> str:
    """drone/envsubst ``Eval(text, mapping)``."""
    nodes = _Parser(text).parse_any()

    def render(node: Any) -> str:
        if isinstance(node, _Text):
            return node.value
        value = mapping(node.param)
        args = [render(arg) for arg in node.args]
        # lookupFunc: every operator azd templates use resolves to toDefault.
        return "".join(args) if value == "" and args else value

    return "".join(render(node) for node in nodes)


# ---- azd: one parameter ----------------------------------------------------------------------------------------
def go_json_marshal(value: Any) -> str:
    """Go ``json.Marshal`` of a decoded JSON value: compact, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@dataclass
class Resolved:
    """The outcome of ``loadParameters`` for the parameters file."""

    parameters: dict[str, Any]
    env_mapping: dict[str, list[str]]


class _EnvLookup:
    """evalParamEnvSubst's mapping function: principal id/type answered by azd, the rest from the environment."""

    def __init__(self, env: Mapping[str, str], principal_id: str, principal_type: str) -> None:
        self.env, self.principal_id, self.principal_type = env, principal_id, principal_type
        self.mapped: list[str] = []
        self.unset = False

    def __call__(self, variable: str) -> str:
        if variable == PRINCIPAL_ID:
            return self.principal_id
        if variable == PRINCIPAL_TYPE:
            return self.principal_type
        self.mapped.append(variable)
        if variable not in self.env:
            self.unset = True
            return ""
        return self.env[variable]


def load_parameters(
    parameters_file_text: str,
    env: Mapping[str, str],
    *,
    principal_id: str = "00000000-0000-0000-0000-000000000000",
    principal_type: str = "User",
    secrets: Mapping[tuple[str, str], str] | None = None,
) -> Resolved:
    """azd's ``loadParameters`` (Path B) over a parameters file; ``secrets`` answers secretOrRandomPassword
    (vault, secret) -> value, as the vault would on a re-provision. Raises ParametersError like azd does."""
    decoded = json.loads(parameters_file_text)
    resolved: dict[str, Any] = {}
    env_mapping: dict[str, list[str]] = {}
    for name, param in (decoded.get("parameters") or {}).items():
        marshalled = go_json_marshal({"value": param.get("value"), "reference": param.get("reference")})
        lookup = _EnvLookup(env, principal_id, principal_type)
        replaced = command_substitution(envsubst(marshalled, lookup), secrets or {})
        try:
            value = json.loads(replaced)
        except json.JSONDecodeError as exc:
            raise ParametersError(f"error unmarshalling Bicep template parameters ({name}): {exc}") from exc
        env_mapping[name] = lookup.mapped
        if value.get("value") is None and value.get("reference") is None:
            continue
        if value.get("value") == "" and lookup.unset:
            continue
        resolved[name] = value.get("value") if value.get("reference") is None else value
    return Resolved(resolved, env_mapping)


def command_substitution(text: str, secrets: Mapping[tuple[str, str], str]) -> str:
    """cmdsubst.Eval with the secretOrRandomPassword executor: the vault's value pasted as is; a missing secret
    becomes a generated password (letters and digits, as password.Generate with azd's config)."""

    def run(match: re.Match[str]) -> str:
        if match.group(1) != "secretOrRandomPassword":
            return match.group(0)
        args = match.group(2).split()
        if len(args) == 2 and (args[0], args[1]) in secrets and secrets[(args[0], args[1])].strip():
            return secrets[(args[0], args[1])]
        return "GeneratedPassw0rdAbcde12345"

    return COMMAND_INVOCATION.sub(run, text)
