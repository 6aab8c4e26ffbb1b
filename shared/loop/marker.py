"""Signed lineage markers: how Reynolds recognises its own writes and their consequences.

Every text Reynolds writes carries a marker with the chain id, the event it answers and the automated
depth, signed with an HMAC so nobody can forge one to make Reynolds drop or re-parent events. On GitHub and
in Teams HTML it is a hidden HTML comment (``<!-- reynolds:v1 … -->``), which survives quote-replies that
copy markup; on Service Bus the same fields travel in application properties.

A valid marker found in someone else's text proves causality (they copied Reynolds' words), never
authorship: the loop guard treats it as evidence for joining a chain, not as proof that Reynolds wrote it.
An invalid (forged or tampered) marker is ignored as evidence and reported.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

_SIG_HEX = 24
_ID = r"[A-Za-z0-9_.:-]{1,120}"
_HIDDEN = re.compile(
    rf"<!--\s*reynolds:v1\s+chain=(?P<chain>{_ID})\s+event=(?P<event>{_ID})\s+depth=(?P<depth>\d{{1,4}})"
    rf"\s+sig=(?P<sig>[0-9a-f]{{{_SIG_HEX}}})\s*-->"
)
_ANY_HIDDEN = re.compile(r"<!--\s*reynolds:.*?-->", re.DOTALL)


@dataclass(frozen=True)
class Marker:
    """A parsed marker and whether its signature holds under the configured key."""

    chain_id: str
    event_id: str
    depth: int
    valid: bool


def _signature(key: str, chain_id: str, event_id: str, depth: int) -> str:
    message = f"v1|{chain_id}|{event_id}|{depth}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:_SIG_HEX]


def hidden_marker(key: str, chain_id: str, event_id: str, depth: int) -> str:
    """The HTML-comment marker to embed in Markdown/HTML text."""
    sig = _signature(key, chain_id, event_id, depth)
    return f"<!-- reynolds:v1 chain={chain_id} event={event_id} depth={depth} sig={sig} -->"


def sign_text(key: str, text: str, chain_id: str, event_id: str, depth: int) -> str:
    """Append the lineage marker to ``text`` (after removing any lineage marker it already carried).

    Only v1 lineage markers are removed: other hidden Reynolds comments in Reynolds' own text (the status
    comment's ``<!-- reynolds:status … -->``) stay.
    """
    body = _HIDDEN.sub("", text or "").rstrip()
    return f"{body}\n\n{hidden_marker(key, chain_id, event_id, depth)}"


def find_markers(text: str, key: str | None) -> list[Marker]:
    """Every marker in ``text``, each with ``valid`` telling whether its signature verifies."""
    found: list[Marker] = []
    seen: set[tuple[str, str, int, str]] = set()
    for match in _HIDDEN.finditer(text or ""):
        chain, event, depth, sig = match["chain"], match["event"], int(match["depth"]), match["sig"]
        if (chain, event, depth, sig) in seen:
            continue
        seen.add((chain, event, depth, sig))
        valid = key is not None and hmac.compare_digest(sig, _signature(key, chain, event, depth))
        found.append(Marker(chain, event, depth, valid))
    return found


def has_marker_syntax(text: str) -> bool:
    """True when ``text`` contains anything shaped like a marker, valid or not."""
    return bool(_ANY_HIDDEN.search(text or ""))


def strip_markers(text: str) -> str:
    """``text`` without any marker (what a person sees, and what fingerprints are taken of)."""
    return _ANY_HIDDEN.sub("", text or "").strip()
