"""Microsoft Teams outgoing webhook: verify the HMAC, parse the activity into an envelope, build the reply.

Teams signs every outgoing-webhook call with ``Authorization: HMAC <base64(HMAC-SHA256(key, raw body))>`` where
the key is the base64-decoded security token Teams showed when the webhook was created. Teams waits 5 s for
the synchronous reply and an outgoing webhook cannot call other APIs, so the trigger answers with
``build_ack_reply`` and everything else (results, cards) is posted later through Graph.

Lineage markers travel in the HTML of the messages Reynolds posts as an HTML comment (``embed_marker``).
Teams may sanitize HTML, so the marker is evidence only: the effect ledger, keyed by the message id Graph
returned when Reynolds posted, is the primary way a notification about Reynolds' own message is recognised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from shared.errors import ConfigurationError, IncomingRequestError, SignatureError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target, truncate
from shared.platforms.limits import check_json, check_size

TOKEN_SETTING = "TEAMS_OUTGOING_WEBHOOK_TOKEN"  # noqa: S105 - the setting's name, not a secret
TEAMS_MESSAGE_TYPE = "com.microsoft.teams.message.created"
TEAMS_SOURCE_PREFIX = "/teams"
#: The name the outgoing webhook was registered with; Teams puts ``<at>Reynolds</at>`` in the text.
DEFAULT_MENTION_NAME = "Reynolds"
#: Keep the synchronous reply short: Teams shows it in the thread right away.
MAX_ACK_CHARS = 280
#: An outgoing-webhook activity carries one message (Teams caps messages at about 28 KB of text); anything much
#: larger is not Teams. Checked before the HMAC is computed.
MAX_ACTIVITY_BYTES = 256 * 1024
#: Longest activity id accepted (Teams message ids are 13 digits; the envelope id ``teams:<id>`` holds 200).
MAX_ACTIVITY_ID_CHARS = 190
#: Longest conversation or sender id accepted (conversation ids run to a few hundred characters).
MAX_ID_CHARS = 512
#: Bot accounts in Teams have ids of the form ``28:<app id>``; users ``29:…`` (or an AAD object id).
_BOT_ID_PREFIX = "28:"

# Markers from ``shared.loop.marker`` are HTML comments ``<!-- reynolds:v1 … -->``; a bare token is wrapped as
# ``<!-- reynolds-marker: … -->``. Either way the whole comment is what the loop guard verifies.
_MARKER_COMMENT = re.compile(r"<!--\s*reynolds[:-].*?-->", re.IGNORECASE | re.DOTALL)
_AT_MENTION = re.compile(r"<at\b[^>]*>(?P<name>.*?)</at>", re.IGNORECASE | re.DOTALL)


def verify_teams_hmac(token_b64: str | None, raw_body: bytes, authorization: str | None) -> None:
    """Check the outgoing-webhook ``Authorization: HMAC <sig>`` header against the raw body.

    ``token_b64`` is the security token as Teams shows it (base64). Raises ``ConfigurationError`` when no
    token is configured (a missing secret never means "accept") and ``SignatureError`` (401) when the header
    is missing, malformed or does not match. The comparison is constant-time.
    """
    if not token_b64 or not token_b64.strip():
        raise ConfigurationError(TOKEN_SETTING)
    check_size(raw_body, MAX_ACTIVITY_BYTES, "activity")
    try:
        key = base64.b64decode(token_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(TOKEN_SETTING, "is not valid base64") from None
    if not key:
        raise ConfigurationError(TOKEN_SETTING)
    if not authorization:
        raise SignatureError("missing Authorization header")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "hmac" or not value.strip():
        raise SignatureError("Authorization header is not an HMAC signature")
    try:
        provided = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("HMAC signature is not valid base64") from None
    expected = hmac.new(key, raw_body, hashlib.sha256).digest()
    if not hmac.compare_digest(provided, expected):
        raise SignatureError("HMAC signature does not match")


def teams_signature(token_b64: str, raw_body: bytes) -> str:
    """The ``Authorization`` header value Teams would send for ``raw_body`` (fakes, tests, the arena)."""
    key = base64.b64decode(token_b64, validate=True)
    digest = hmac.new(key, raw_body, hashlib.sha256).digest()
    return "HMAC " + base64.b64encode(digest).decode("ascii")


class _TextExtractor(HTMLParser):
    """Collects the visible text of a Teams HTML fragment; block elements become line breaks."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment: tags and comments dropped, entities decoded, blank runs collapsed."""
    parser = _TextExtractor()
    parser.feed(fragment)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def strip_mention(fragment: str, name: str = DEFAULT_MENTION_NAME) -> str:
    """Remove ``<at>name</at>`` mentions of Reynolds from Teams HTML; other mentions keep their text."""
    wanted = name.strip().casefold()

    def replace(match: re.Match[str]) -> str:
        inner = html.unescape(re.sub(r"<[^>]+>", "", match.group("name"))).strip().casefold()
        return "" if inner == wanted else match.group(0)

    return _AT_MENTION.sub(replace, fragment)


def extract_markers(fragment: str) -> list[str]:
    """Lineage marker comments (``<!-- reynolds… -->``) found in Teams/Graph HTML, in order, without repeats.

    Graph may return the comment HTML-escaped inside the body; both forms are found. The loop guard checks
    their signatures with ``shared.loop.marker.find_markers``.
    """
    candidates = [fragment]
    if "&lt;!--" in fragment:
        candidates.append(html.unescape(fragment))
    found = [m.group(0) for text in candidates for m in _MARKER_COMMENT.finditer(text)]
    return list(dict.fromkeys(found))


def embed_marker(html_content: str, marker: str) -> str:
    """Append the lineage marker to HTML as an invisible comment (never shown to readers).

    ``marker`` is either the ready-made comment from ``shared.loop.marker.hidden_marker`` or a bare token, which
    is wrapped as ``<!-- reynolds-marker: token -->``.
    """
    if not marker:
        return html_content
    marker = marker.strip()
    if marker.startswith("<!--") and marker.endswith("-->"):
        if "--" in marker[4:-3] or ">" in marker[4:-3]:
            raise ValueError("marker comment contains '--' or '>' inside")
        return f"{html_content}{marker}"
    if "--" in marker or any(ch in marker for ch in "<>\r\n\t "):
        raise ValueError("marker contains characters that cannot live in an HTML comment")
    return f"{html_content}<!-- reynolds-marker: {marker} -->"


def _obj(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IncomingRequestError(f"activity field {field} must be an object")
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_time(value: Any, fallback: datetime) -> datetime:
    if not isinstance(value, str) or not value:
        return fallback
    text = value.strip().replace("Z", "+00:00")
    # Teams sends seven fractional digits (.NET ticks); Python accepts at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return fallback
    return parsed if parsed.tzinfo else fallback


def parse_teams_activity(
    raw_body: bytes, *, received_at: datetime, mention_name: str = DEFAULT_MENTION_NAME
) -> EventEnvelope:
    """Turn a Teams outgoing-webhook activity into an envelope; malformed input raises ``IncomingRequestError``.

    Envelope id ``teams:<activity id>`` (the activity id is the Teams message id, so a Graph notification
    about the same message maps to the same id and is deduplicated). The actor is the AAD object id of the
    sender; target ``teams:<team>/<channel>`` or, outside a team, the conversation id. The text is the
    visible text with the ``<at>Reynolds</at>`` mention removed; markers found in the HTML go to
    ``data["markers"]`` for the loop guard.
    """
    check_json(raw_body, max_bytes=MAX_ACTIVITY_BYTES, what="activity")
    try:
        activity = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IncomingRequestError("activity is not valid JSON") from None
    if not isinstance(activity, dict):
        raise IncomingRequestError("activity must be a JSON object")
    if activity.get("type") != "message":
        raise IncomingRequestError("only message activities are supported")
    activity_id = _str(activity.get("id"))
    if activity_id is None:
        raise IncomingRequestError("activity has no id")
    if len(activity_id) > MAX_ACTIVITY_ID_CHARS:
        raise IncomingRequestError("activity id is too long")

    sender = _obj(activity.get("from"), "from")
    sender_id = _str(sender.get("id"))
    if sender_id is None:
        raise IncomingRequestError("activity has no from.id")
    conversation = _obj(activity.get("conversation"), "conversation")
    conversation_id = _str(conversation.get("id"))
    if conversation_id is None:
        raise IncomingRequestError("activity has no conversation.id")
    if len(conversation_id) > MAX_ID_CHARS or len(sender_id) > MAX_ID_CHARS:
        raise IncomingRequestError("activity ids are too long")
    channel_data = _obj(activity.get("channelData"), "channelData")
    team = _obj(channel_data.get("team"), "channelData.team")
    channel = _obj(channel_data.get("channel"), "channelData.channel")
    tenant = _obj(channel_data.get("tenant"), "channelData.tenant")

    # Graph addresses a team by its group id; prefer it so both ingress paths name the same target.
    team_id = _str(team.get("aadGroupId")) or _str(channel_data.get("teamsTeamId")) or _str(team.get("id"))
    channel_id = _str(channel_data.get("teamsChannelId")) or _str(channel.get("id"))
    tenant_id = _str(conversation.get("tenantId")) or _str(tenant.get("id"))
    target_key = f"teams:{team_id}/{channel_id}" if team_id and channel_id else conversation_id

    aad_id = _str(sender.get("aadObjectId"))
    is_bot = sender_id.startswith(_BOT_ID_PREFIX) or str(sender.get("role", "")).lower() == "bot"
    actor = Actor(
        login=_str(sender.get("name")),
        id=aad_id or sender_id,
        kind=ActorKind.BOT if is_bot else ActorKind.HUMAN,
        account_type="bot" if is_bot else "user",
    )

    raw_text = activity.get("text")
    if raw_text is not None and not isinstance(raw_text, str):
        raise IncomingRequestError("activity text must be a string")
    fragment = raw_text or ""
    text = html_to_text(strip_mention(fragment, mention_name))

    data: dict[str, Any] = {
        "conversation_id": conversation_id,
        "conversation_type": _str(conversation.get("conversationType")),
        "tenant_id": tenant_id,
        "team_id": team_id,
        "channel_id": channel_id,
        "reply_to_id": _str(activity.get("replyToId")),
        "markers": extract_markers(fragment),
    }
    return EventEnvelope(
        id=f"teams:{activity_id}",
        source=f"{TEAMS_SOURCE_PREFIX}/{tenant_id or 'unknown-tenant'}",
        type=TEAMS_MESSAGE_TYPE,
        subject=target_key,
        time=_parse_time(activity.get("timestamp"), received_at),
        occurred_at=_parse_time(activity.get("timestamp"), received_at),
        data={key: value for key, value in data.items() if value is not None},
        platform=Platform.TEAMS,
        event="teams_message",
        action="created",
        actor=actor,
        target=Target(platform=Platform.TEAMS, key=target_key),
        resource_id=activity_id,
        text=truncate(text),
    )


def build_ack_reply(text: str) -> dict[str, Any]:
    """The synchronous reply activity Teams shows in the thread (plain, short, no I/O to build it)."""
    return {"type": "message", "text": truncate(text.strip(), MAX_ACK_CHARS) or "On it."}
