"""Occurrences: one bounded document per failure signature, counted exactly once per failure event.

Document ``occ:<kind>:<digest>`` (its own partition, like the agent statistics of ``shared.work.agents``),
written with ``shared.store.base.update_document`` (a create, or a replace with the read ETag; a lost race
reads again and re-applies the change), so concurrent instances count every failure and none twice::

    {"kind": "occurrence", "signature": "workflow-run:<digest>", "failure_kind": "workflow-run",
     "head": "<normalised error line(s)>", "repo": "octo/app", "count": 5,
     "first_seen": ISO, "last_seen": ISO, "times": [ISO, …],            # newest last, capped: the window's input
     "recent": [{"at": ISO, "link": "https://…/actions/runs/1", "failure_id": "…"}, …],   # capped, newest last
     "seen": ["<failure id>", …],                                        # capped: exactly-once counting
     "state": "none" | "open" | "closed" | "muted" | "flaky", "issue_number": 12 | null, "comment_id": … | null,
     "closed_at": ISO | null, "closed_as": "completed" | "not_planned" | null, "since_close": 0,
     "passed_on_retry": 0, "reopened": 0, "filed_at": ISO | null}

Exactly once: a failure event carries its own id (a workflow run id and attempt, an orchestration instance
id, a poison queue message id); a redelivery of it finds the id in ``seen`` and changes nothing. ``seen``
keeps the last ``SEEN_IDS`` ids: a redelivery older than that many later failures of the same signature is
counted again (GitHub redelivers for 3 days; 500 failures of one signature in between is an outage the count
no longer describes anyway). The lists are capped, so the document stays small however often a failure recurs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import NotFound
from shared.learning.signatures import Signature
from shared.store.base import DocumentStore, safe_id, update_document

#: Failure ids remembered per signature (exactly-once counting of redeliveries).
SEEN_IDS = 500
#: Occurrence times kept (the threshold window reads them; more than any threshold needs).
TIMES_KEPT = 100
#: Links listed in the issue's comment.
RECENT_LINKS = 10
STATES = ("none", "open", "closed", "muted", "flaky")


def doc_id(signature_key: str) -> str:
    """The occurrence document's id (and partition key) for a signature key."""
    return safe_id(f"occ:{signature_key}")


@dataclass(frozen=True)
class Recorded:
    """The document after recording one failure, and whether this call counted it (False: seen before)."""

    doc: dict[str, Any]
    counted: bool


def _fresh(signature: Signature, repo: str) -> dict[str, Any]:
    return {"kind": "occurrence", "signature": signature.key, "failure_kind": signature.kind,
            "head": signature.head, "repo": repo, "count": 0, "first_seen": None, "last_seen": None,
            "times": [], "recent": [], "seen": [], "state": "none", "issue_number": None, "comment_id": None,
            "closed_at": None, "closed_as": None, "since_close": 0, "passed_on_retry": 0, "reopened": 0,
            "filed_at": None}


def record_failure(store: DocumentStore, signature: Signature, *, failure_id: str, at: datetime, repo: str,
                   link: str | None = None) -> Recorded:
    """Count one failure of ``signature`` (once per ``failure_id``), in the repository its issue belongs to."""
    if not failure_id:
        raise ValueError("a failure needs its own id (exactly-once counting)")
    when = at.isoformat()
    counted = False

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal counted
        body = dict(doc) if doc is not None else _fresh(signature, repo)
        if failure_id in body.get("seen", []):
            counted = False
            return None
        counted = True
        body["count"] = int(body.get("count") or 0) + 1
        body["first_seen"] = body.get("first_seen") or when
        body["last_seen"] = max(str(body.get("last_seen") or ""), when)
        body["times"] = sorted([*body.get("times", []), when])[-TIMES_KEPT:]
        body["recent"] = [*body.get("recent", []), {"at": when, "link": link, "failure_id": failure_id}][
            -RECENT_LINKS:]
        body["seen"] = [*body.get("seen", []), failure_id][-SEEN_IDS:]
        if body.get("state") == "closed":
            body["since_close"] = int(body.get("since_close") or 0) + 1
        return body

    key = doc_id(signature.key)
    written = update_document(store, key, change)
    return Recorded(written if written is not None else read(store, signature.key) or {}, counted)


def record_pass_on_retry(store: DocumentStore, signature_key: str, *, failure_id: str) -> dict[str, Any] | None:
    """Note that the failure ``failure_id`` passed when retried (a rerun of the same run/attempt succeeded):
    the signature is flaky. Once per failure id; None when the signature is unknown."""
    marker = f"retry-pass:{failure_id}"

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or marker in doc.get("seen", []):
            return None
        return {**doc, "passed_on_retry": int(doc.get("passed_on_retry") or 0) + 1,
                "seen": [*doc.get("seen", []), marker][-SEEN_IDS:]}

    update_document(store, doc_id(signature_key), change)
    return read(store, signature_key)


def update_state(store: DocumentStore, signature_key: str,
                 change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any] | None:
    """Apply ``change`` (pure; None = leave as is) to an existing document with an ETag-conditional write:
    how the improvements step records the issue it filed, a close, a reopen, a mute."""
    def guarded(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if doc is None else change(dict(doc))

    update_document(store, doc_id(signature_key), guarded)
    return read(store, signature_key)


def read(store: DocumentStore, signature_key: str) -> dict[str, Any] | None:
    """The occurrence document of a signature (without store keys), or None."""
    key = doc_id(signature_key)
    try:
        doc = store.read(key, key)
    except NotFound:
        return None
    return {k: v for k, v in doc.items() if k not in ("_etag", "pk", "id", "ttl")}
