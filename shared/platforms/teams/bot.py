"""The Teams bot door's domain logic: authenticate, read and classify one Bot Connector activity.

``read_activity`` is what ``POST /api/messages`` does before admission, in this order: size (413 above
``MAX_BODY_BYTES``, nothing parsed), the Bot Framework JWT (401, ``bot_auth.BotTokenValidator``, nothing parsed),
then the JSON (400), then the checks that need the activity (the ``serviceurl`` claim, key endorsements; 401).
Nothing is stored before all of them pass. A message activity becomes the same Teams envelope the outgoing
webhook makes (``webhook.parse_teams_activity``: envelope id ``teams:<message id>``, so the bot door, the webhook
and Graph notifications deduplicate one message); install and conversation updates carry a conversation reference
(``bot_references``); every other activity type is acknowledged and ignored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.errors import ConfigurationError, IncomingRequestError
from shared.loop.envelope import EventEnvelope
from shared.platforms.limits import check_json, check_size
from shared.platforms.teams.bot_auth import BotTokenValidator, check_activity
from shared.platforms.teams.bot_references import ConversationReference, reference_of
from shared.platforms.teams.connector import BotConnector, managed_identity_token
from shared.platforms.teams.webhook import parse_teams_activity
from shared.settings import Settings

#: The Bot Connector's documented cap on an activity is far above what Teams sends; we accept up to 1 MB.
MAX_BODY_BYTES = 1024 * 1024
APP_ID_SETTING = "TEAMS_BOT_APP_ID"
REFERENCE_TYPES = frozenset({"conversationUpdate", "installationUpdate"})

Kind = Literal["message", "reference", "ignored"]


@dataclass(frozen=True)
class BotActivity:
    """An authenticated activity and what the door does with it."""

    kind: Kind
    activity: dict[str, Any]
    event: EventEnvelope | None = None

    @property
    def activity_id(self) -> str | None:
        value = self.activity.get("id")
        return value if isinstance(value, str) else None

    def reference(self) -> ConversationReference:
        """Where to answer this activity (its conversation, service URL and the bot's account)."""
        return reference_of(self.activity)


def _authorization(headers: Mapping[str, str]) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == "authorization"), None)


def read_activity(headers: Mapping[str, str], raw: bytes, validator: BotTokenValidator, *,
                  received_at: datetime) -> BotActivity:
    """Authenticate and classify one delivery; ``IncomingRequestError`` (401/413/400) when it is refused."""
    check_size(raw, MAX_BODY_BYTES, "activity")
    token = validator.verify_header(_authorization(headers))
    check_json(raw, what="activity")
    try:
        activity = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IncomingRequestError("activity is not valid JSON") from None
    if not isinstance(activity, dict):
        raise IncomingRequestError("activity must be a JSON object")
    check_activity(token, activity)
    kind = activity.get("type")
    if kind == "message":
        recipient = activity.get("recipient")
        name = recipient.get("name") if isinstance(recipient, dict) else None
        event = (parse_teams_activity(raw, received_at=received_at, mention_name=name)
                 if isinstance(name, str) and name else parse_teams_activity(raw, received_at=received_at))
        return BotActivity("message", activity, event)
    if kind in REFERENCE_TYPES:
        reference_of(activity)  # a reference activity without a conversation is a bad request, not a no-op
        return BotActivity("reference", activity)
    return BotActivity("ignored", activity)


@dataclass
class BotRuntime:
    """The long-lived pieces of the bot door: the token validator (its key cache) and the connector client."""

    validator: BotTokenValidator
    connector: BotConnector


_runtime: BotRuntime | None = None
_runtime_key: tuple[str, str] | None = None
_lock = threading.Lock()


def get_bot_runtime(settings: Settings) -> BotRuntime:
    """The runtime for these settings, built once (the key cache must outlive a request); 503 without an app id."""
    global _runtime, _runtime_key
    if _runtime is not None and _runtime_key is None:
        return _runtime  # installed by a test or tool: it carries its own app id
    app_id = settings.teams_bot_app_id
    if not app_id:
        raise ConfigurationError(APP_ID_SETTING)
    key = (app_id, settings.teams_bot_openid_url)
    with _lock:
        if _runtime is None or _runtime_key != key:
            _runtime = BotRuntime(BotTokenValidator(app_id, metadata_url=settings.teams_bot_openid_url),
                                  BotConnector(managed_identity_token(app_id)))
            _runtime_key = key
        return _runtime


def set_bot_runtime(runtime: BotRuntime | None, settings: Settings | None = None) -> None:
    """Install a runtime (tests and tools: a validator over the fake issuer, a connector to the fake)."""
    global _runtime, _runtime_key
    with _lock:
        _runtime = runtime
        _runtime_key = ((settings.teams_bot_app_id or "", settings.teams_bot_openid_url)
                        if runtime is not None and settings is not None else None)


def clear_bot_runtime(runtime: BotRuntime) -> None:
    """Uninstall ``runtime`` if it is still the installed one (a tool's stand-ins closing after another's started)."""
    global _runtime, _runtime_key
    with _lock:
        if _runtime is runtime:
            _runtime, _runtime_key = None, None
