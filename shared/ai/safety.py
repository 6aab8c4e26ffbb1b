"""Guards around the model: untrusted text goes in delimited, model text comes out defanged.

``delimit_untrusted`` wraps issue bodies, comments, logs and tool output in a labelled
``<untrusted source=".." id="..">`` block whose content cannot close or forge the block (OWASP LLM01).
``sanitize_output`` is the one sanitizer for every text Reynolds posts that a model or a requester wrote
(answers, schema-failure errors, task titles): no mass or team mentions, no mention storms, no links or images
except into the repository's own ``github.com/<owner>/<repo>`` (a URL is the classic exfiltration channel), no
HTML comments (so no text can carry or forge a Reynolds lineage marker), no active HTML, no invisible, Unicode
tag or bidirectional control characters, and secrets redacted. ``redact_secrets`` removes known secret values
in raw and common encoded forms (base64 at every byte alignment, standard and URL-safe; hex; URL-encoding)
and credential-shaped strings, from prompts and from output.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

from shared.settings import Settings

ZWJ = "\u200d"
LINK_REMOVED = "[link removed]"
REDACTED = "[redacted]"
DEFAULT_MAX_USER_MENTIONS = 3
#: GitHub refuses comment bodies above 65,536 characters; leave room for Reynolds' own framing.
DEFAULT_MAX_OUTPUT_CHARS = 60_000

# Zero-width, bidirectional control and Unicode tag characters hide or reorder text ("trojan source", "ASCII
# smuggling" through U+E0000..U+E007F); they have no business in data handed to a model or in what is posted.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000e0000-\U000e0fff\U0001d173-\U0001d17a]"
)
_DELIMITER = re.compile(r"<\s*(/?)\s*(untrusted)", re.IGNORECASE)
_CHAT_TOKENS = re.compile(r"<\|([A-Za-z_]{1,32})\|>")
_ATTRIBUTE = re.compile(r"[^A-Za-z0-9_.:/#@-]")

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_ENTITY_COMMENT = re.compile(
    r"&(?:lt|#0*60|#x0*3c);!--.*?(?:--(?:&(?:gt|#0*62|#x0*3e);|>)|$)", re.IGNORECASE | re.DOTALL
)
_ACTIVE_TAG = re.compile(
    r"</?\s*(?:a|img|script|iframe|picture|source|video|audio|object|embed|form|input|link|meta|style|svg|at|base)"
    r"\b[^>]*>",
    re.IGNORECASE,
)
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*([^)\s]*)[^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\(\s*([^)\s]*)[^)]*\)")
_REF_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*\S+.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto|data|javascript):[^>\s]*)>", re.IGNORECASE)
_BARE_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>()\[\]`'\"]+", re.IGNORECASE)
_SCHEME_URL = re.compile(r"\b(?:javascript|data|vbscript|file):[^\s<>()\[\]`'\"]+", re.IGNORECASE)
_MASS_MENTION = re.compile(r"(?<![\w`])@(everyone|here|channel|all|room)\b", re.IGNORECASE)
_TEAM_MENTION = re.compile(r"(?<![\w`/])@([A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9][A-Za-z0-9_.-]*)")
_USER_MENTION = re.compile(r"(?<![\w`/@])@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?)(?![\w/-])")

# Credentials that must never reach a model, even when a log or a file happens to contain one.
_SECRET_PATTERNS = (
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    re.compile(r"(?i)\b(AccountKey|SharedAccessKey|InstrumentationKey|client_secret)=[^;\s]+"),
)


@dataclass(frozen=True)
class UntrustedText:
    """A piece of text from outside (issue body, comment, log, tool output) and where it came from."""

    source: str
    id: str
    text: str


def _attribute(value: str) -> str:
    return _ATTRIBUTE.sub("_", value)[:80] or "unknown"


def neutralize_untrusted(text: str) -> str:
    """Make ``text`` unable to close or open a delimiter block or speak as a chat-template role."""
    text = strip_invisible(text)
    text = _DELIMITER.sub(lambda m: "&lt;" + m.group(1) + m.group(2), text)
    return _CHAT_TOKENS.sub(lambda m: "&lt;|" + m.group(1) + "|&gt;", text)


def delimit_untrusted(text: str, source: str, id: str) -> str:  # noqa: A002 - the brief's name
    """Wrap untrusted ``text`` in a labelled block the model is told to treat as data only."""
    return (
        f'<untrusted source="{_attribute(source)}" id="{_attribute(id)}">\n{neutralize_untrusted(text)}\n</untrusted>'
    )


def delimit_all(items: Sequence[UntrustedText]) -> str:
    """Several untrusted pieces, each in its own labelled block."""
    return "\n".join(delimit_untrusted(item.text, item.source, item.id) for item in items)


def secret_values(settings: Settings) -> list[str]:
    """Every secret value in ``settings`` (to redact from anything sent to a model)."""
    values: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    return values


def strip_invisible(text: str) -> str:
    """``text`` without invisible, tag, bidirectional control or other format characters (Unicode ``Cf``)."""
    text = _INVISIBLE.sub("", text)
    if text.isascii():
        return text
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


#: A base64 fragment shorter than this is too likely to occur by chance to be redacted.
_MIN_ENCODED_CHARS = 8


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 text of ``raw`` at each of the three byte alignments it can have inside a longer payload.

    Only the characters that depend on ``raw`` alone are kept: a secret encoded as part of a larger value
    (``token=<secret>`` base64-encoded in a CI log) contains one of these three strings.
    """
    cores: set[str] = set()
    skip_head = {0: 0, 1: 2, 2: 3}
    for offset in (0, 1, 2):
        total = offset + len(raw)
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode().rstrip("=")
            end = len(encoded) - (1 if total % 3 else 0)
            core = encoded[skip_head[offset]:end]
            if len(core) >= _MIN_ENCODED_CHARS:
                cores.add(core)
    return cores


@lru_cache(maxsize=64)
def _secret_forms(secret: str) -> tuple[str, ...]:
    """Every form of ``secret`` that is redacted: raw, base64 (3 alignments × 2 alphabets), hex, URL-encoded."""
    raw = secret.encode()
    forms = {secret, raw.hex(), raw.hex().upper(), quote(secret, safe=""), quote_plus(secret, safe="")}
    forms |= _base64_cores(raw)
    return tuple(sorted((form for form in forms if len(form) >= 6), key=len, reverse=True))


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values (raw or encoded) and credential-shaped strings with ``[redacted]``."""
    # Longest first, so a secret containing another is removed whole. Very short values would shred
    # ordinary text and are not credentials anyway.
    for secret in sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True):
        for form in _secret_forms(secret):
            if form in text:
                text = text.replace(form, REDACTED)
            elif form.isalnum() and form.lower() in text.lower():
                # Hex and percent-encoding are case-insensitive: ``4F9A`` is ``4f9a``.
                text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _allowed_link(url: str, allowed_repos: Sequence[str]) -> bool:
    lowered = url.lower()
    for repo in allowed_repos:
        prefix = f"https://github.com/{repo.lower()}"
        if lowered == prefix or (lowered.startswith(prefix) and lowered[len(prefix)] in "/#?"):
            return True
    return False


def sanitize_output(
    text: str,
    *,
    allowed_repos: Sequence[str] = (),
    max_user_mentions: int = DEFAULT_MAX_USER_MENTIONS,
    max_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    secrets: Iterable[str] = (),
) -> str:
    """Make model or requester text safe to post on GitHub or Teams.

    Removes invisible, tag and bidirectional control characters, HTML comments (so no forged or copied
    ``<!-- reynolds:`` marker survives; ``&lt;!--`` entity forms included) and active HTML tags; reduces links and
    images to their text (bare URLs to ``[link removed]``) unless they point into an allow-listed
    ``github.com/<owner>/<repo>``; neutralises ``@everyone``/``@here``/``@channel`` and team mentions with a
    zero-width joiner, and user mentions beyond ``max_user_mentions``; redacts ``secrets`` (raw and encoded)
    and credential-shaped strings.
    """
    text = redact_secrets(strip_invisible(text), secrets)
    text = _ENTITY_COMMENT.sub("", text)
    text = _HTML_COMMENT.sub("", text)
    text = text.replace("<!--", "&lt;!--")
    text = _ACTIVE_TAG.sub("", text)

    def keep_or_text(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if _allowed_link(url, allowed_repos):
            return match.group(0)
        return label or LINK_REMOVED

    text = _IMAGE.sub(keep_or_text, text)
    text = _MD_LINK.sub(keep_or_text, text)
    text = _REF_DEFINITION.sub(LINK_REMOVED, text)
    text = _AUTOLINK.sub(lambda m: m.group(0) if _allowed_link(m.group(1), allowed_repos) else LINK_REMOVED, text)
    text = _BARE_URL.sub(lambda m: m.group(0) if _allowed_link(m.group(0), allowed_repos) else LINK_REMOVED, text)
    text = _SCHEME_URL.sub(LINK_REMOVED, text)
    # Kept links (allow-listed) must not carry mentions through their paths; mentions are neutralised
    # after links, and the patterns skip "@" inside paths ("/@...").
    text = _MASS_MENTION.sub(lambda m: "@" + ZWJ + m.group(1), text)
    text = _TEAM_MENTION.sub(lambda m: "@" + ZWJ + m.group(1), text)
    seen: list[str] = []

    def limit_users(match: re.Match[str]) -> str:
        login = match.group(1).lower()
        if login not in seen:
            seen.append(login)
        if seen.index(login) < max_user_mentions:
            return match.group(0)
        return "@" + ZWJ + match.group(1)

    text = _USER_MENTION.sub(limit_users, text)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text
