"""GitHub webhook ingress: verify, decode and project a delivery into an ``EventEnvelope``.

Pure functions over raw bytes and headers, so the HTTP trigger, ``tools.simulate`` and the arena share one
code path. Failures raise ``IncomingRequestError`` subclasses carrying the HTTP status to answer with.

An event's identity comes from what it is, not from ``X-GitHub-Delivery``: the signature covers the body only,
so a captured body resent under a new delivery id must still be recognised as the same event. Comment events
are ``issue_comment.<action>:<comment id>:<updated_at>``, issue events ``issues.<action>:<issue id>:<updated_at>``
(plus the label, assignee or milestone a ``labeled``/``assigned``/… action is about); anything else is the
event, action and a digest of the canonical payload. The delivery id stays in ``data["delivery"]``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from githubkit import webhooks

from shared.errors import ConfigurationError, IncomingRequestError, SignatureError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target, truncate
from shared.platforms.limits import check_json

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_EVENT = re.compile(r"^[a-z0-9_]{1,64}$")
# Events whose fields Reynolds reads: parsed with githubkit's typed models as a shape check.
_TYPED_EVENTS = frozenset({"issues", "issue_comment"})


@dataclass(frozen=True)
class Delivery:
    """A verified, decoded webhook delivery."""

    event: str
    delivery_id: str
    payload: dict[str, Any]
    hook_id: str | None = None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def signature_for(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the value GitHub puts in ``X-Hub-Signature-256`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Check ``X-Hub-Signature-256`` over the raw body in constant time; the SHA-1 header alone is refused."""
    signature = header(headers, "X-Hub-Signature-256")
    if not signature:
        if header(headers, "X-Hub-Signature"):
            raise SignatureError("X-Hub-Signature (SHA-1) alone is not accepted; send X-Hub-Signature-256")
        raise SignatureError("missing X-Hub-Signature-256")
    if not signature.startswith("sha256=") or len(signature) != 71:
        raise SignatureError("malformed X-Hub-Signature-256")
    if not hmac.compare_digest(signature.encode(), signature_for(secret, body).encode()):
        raise SignatureError("X-Hub-Signature-256 does not match the body")


def read_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """The event name and delivery id; 400 when either is missing or malformed."""
    event = header(headers, "X-GitHub-Event")
    delivery = header(headers, "X-GitHub-Delivery")
    if not event:
        raise IncomingRequestError("missing X-GitHub-Event header")
    if not delivery:
        raise IncomingRequestError("missing X-GitHub-Delivery header")
    if not _EVENT.match(event):
        raise IncomingRequestError("malformed X-GitHub-Event header")
    if not _DELIVERY.match(delivery):
        raise IncomingRequestError("malformed X-GitHub-Delivery header")
    return event, delivery


def decode_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The JSON payload of a delivery sent as ``application/json`` or form-encoded ``payload=``."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media == "application/json":
        raw = body
    elif media == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise IncomingRequestError("malformed form body") from None
        values = form.get("payload")
        if not values or len(values) != 1:
            raise IncomingRequestError("form body without a single 'payload' field")
        raw = values[0].encode()
    else:
        raise IncomingRequestError(f"unsupported content type {media!r}", status_code=415)
    check_json(raw, what="the JSON body")  # nesting checked before json.loads can recurse
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise IncomingRequestError("malformed JSON body") from None
    if not isinstance(payload, dict):
        raise IncomingRequestError("the JSON body is not an object")
    return payload


def read_delivery(secret: str, body: bytes, headers: Mapping[str, str]) -> Delivery:
    """Everything the trigger checks before it decides: size, headers, signature, content type, JSON."""
    if len(body) > MAX_BODY_BYTES:
        raise IncomingRequestError("body larger than 25 MB", status_code=413)
    if not secret.strip():
        raise ConfigurationError("GITHUB_WEBHOOK_SECRET", "is blank")
    event, delivery = read_headers(headers)
    verify_signature(secret, body, headers)
    payload = decode_body(body, header(headers, "Content-Type"))
    return Delivery(event=event, delivery_id=delivery, payload=payload, hook_id=header(headers, "X-GitHub-Hook-ID"))


def typed_check(event: str, payload: dict[str, Any]) -> bool:
    """Validate events Reynolds reads with githubkit's typed models; unknown events and fields are fine."""
    if event not in _TYPED_EVENTS:
        return True
    try:
        webhooks.parse_obj(event, payload)
    except Exception as exc:  # githubkit raises pydantic or its own errors; the shape is all we ask about
        logger.warning("payload of %s does not match githubkit's model: %s", event, type(exc).__name__)
        return False
    return True


def _obj(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _actor_kind(
    sender: Mapping[str, Any], payload: Mapping[str, Any], bot_login: str, bot_app_id: str | None
) -> ActorKind:
    login = str(sender.get("login") or "")
    if login and login.lower() == bot_login.lower():
        return ActorKind.SELF
    # The object the event is about (the comment of a comment event, else the issue) says whether an app
    # wrote it, even through a user's token: that is an automation, whatever the sender's account type.
    subject = _obj(payload, "comment") or _obj(payload, "issue")
    app = _obj(subject, "performed_via_github_app")
    if app.get("id") is not None:
        if bot_app_id and str(app.get("id")) == bot_app_id:
            return ActorKind.SELF
        return ActorKind.BOT
    if sender.get("type") == "Bot" or login.endswith("[bot]"):
        return ActorKind.BOT
    if sender.get("type") == "Organization":
        return ActorKind.SYSTEM
    return ActorKind.HUMAN


def _detail(payload: Mapping[str, Any]) -> str:
    """What a ``labeled``/``unlabeled``/``assigned``/``milestoned``… action is about (two labels added in the
    same second are two events with the same ``updated_at``)."""
    for key, field in (("label", "name"), ("assignee", "login"), ("milestone", "id"), ("changes", None)):
        value = payload.get(key)
        if isinstance(value, dict) and value:
            if field is None:
                return "changes-" + _digest(value)[:12]
            return f"{key}-{str(value.get(field))[:100]}"
    return ""


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_identity(event: str, payload: Mapping[str, Any]) -> str:
    """The payload-derived identity of a delivery (see the module docstring); stable across redeliveries and
    replays under any delivery id, different for every distinct thing that happened."""
    action = payload.get("action") if isinstance(payload.get("action"), str) else ""
    name = f"{event}.{action}" if action else event
    subject = None
    if event == "issue_comment":
        subject = _obj(payload, "comment")
    elif event == "issues":
        subject = _obj(payload, "issue")
    if subject and isinstance(subject.get("id"), int) and isinstance(subject.get("updated_at"), str):
        detail = _detail(payload) if event == "issues" else ""
        ident = f"{name}:{subject['id']}:{subject['updated_at']}" + (f":{detail}" if detail else "")
        if len(ident) <= 180:
            return ident
    return f"{name}:{_digest(payload)[:40]}"


def _stamp(value: Any) -> datetime | None:
    """GitHub's ISO 8601 timestamp (``2026-12-08T02:00:00Z``) as an aware datetime, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_envelope(delivery: Delivery, *, received_at: datetime, bot_login: str, bot_app_id: str | None) -> EventEnvelope:
    """Project a delivery into the envelope (small: ids, target, truncated text; never the whole payload)."""
    payload = delivery.payload
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    repo_obj = _obj(payload, "repository")
    repo = repo_obj.get("full_name") if isinstance(repo_obj.get("full_name"), str) else None
    sender = _obj(payload, "sender")
    issue = _obj(payload, "issue")
    comment = _obj(payload, "comment")
    installation = _obj(payload, "installation")
    installation_id = installation.get("id") if isinstance(installation.get("id"), int) else None

    number = issue.get("number") if issue and isinstance(issue.get("number"), int) else None
    target = None
    if repo and number is not None:
        target = Target(platform=Platform.GITHUB, key=f"{repo}#{number}", repo=repo, number=number,
                        installation_id=installation_id)
    elif repo:
        target = Target(platform=Platform.GITHUB, key=repo, repo=repo, installation_id=installation_id)

    resource_id: str | None = None
    text = ""
    association: str | None = None
    if delivery.event == "issue_comment" and comment:
        resource_id = f"comment:{comment.get('id')}"
        text = str(comment.get("body") or "")
        association = comment.get("author_association")
    elif delivery.event == "issues" and issue and repo and number is not None:
        resource_id = f"issue:{repo}#{number}"
        text = f"{issue.get('title') or ''}\n\n{issue.get('body') or ''}".strip()
        association = issue.get("author_association")

    actor = Actor(
        login=sender["login"] if isinstance(sender.get("login"), str) else None,
        id=str(sender["id"]) if sender.get("id") is not None else None,
        kind=_actor_kind(sender, payload, bot_login, bot_app_id),
        account_type=sender["type"] if isinstance(sender.get("type"), str) else None,
        association=association if isinstance(association, str) else None,
    )
    data: dict[str, Any] = {"repo": repo, "number": number, "installation_id": installation_id,
                            "delivery": delivery.delivery_id}
    if issue:
        data["title"] = truncate(str(issue.get("title") or ""), 300)
        data["html_url"] = issue.get("html_url")
    if comment:
        data["comment_id"] = comment.get("id")
        for key in ("created_at", "updated_at"):
            if isinstance(comment.get(key), str):
                data[f"comment_{key}"] = comment[key]
    stamped = comment if delivery.event == "issue_comment" and comment else issue
    stamp_key = "created_at" if delivery.event == "issue_comment" or action == "opened" else "updated_at"
    return EventEnvelope(
        id=f"github:{event_identity(delivery.event, payload)}",
        source=f"https://github.com/{repo}" if repo else "https://github.com",
        type=f"com.github.{delivery.event}" + (f".{action}" if action else ""),
        subject=target.key if target else None,
        time=received_at,
        occurred_at=_stamp(stamped.get(stamp_key) if stamped else None),
        data=data,
        platform=Platform.GITHUB,
        event=delivery.event,
        action=action,
        actor=actor,
        target=target,
        resource_id=resource_id,
        text=truncate(text),
    )
