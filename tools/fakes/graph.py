"""A stateful Microsoft Graph fake on 127.0.0.1 that msgraph-sdk reaches through its normal base URL.

Routes (all under ``/v1.0``): ``/subscriptions`` (POST, GET), ``/subscriptions/{id}`` (GET, PATCH, DELETE),
``/subscriptions/{id}/reauthorize`` (POST), ``/teams/{team}/channels/{channel}/messages`` (POST, GET by id, GET
list), ``…/messages/{id}/replies`` (POST, GET by id), ``/chats/{chat}/messages`` (POST, GET by id, GET list).
Lists follow "List channel messages" (learn.microsoft.com/graph/api/channel-list-messages: root messages only,
without replies; ``$top`` at most 50) and "List messages in a chat" (chat-list-messages: ``$top`` at most 50):
newest first, a page of ``$top`` (default 20) with ``@odata.nextLink`` carrying ``$skiptoken`` while more remain;
a ``$top`` above 50 or below 1 is refused 400 ``BadRequest``, an unknown ``$skiptoken`` 400 too. Errors use Graph's
shape ``{"error": {"code", "message", "innerError": {…}}}``. Anything else is a 404 recorded in ``unexpected``.

Meeting transcripts (added for the Platform specialist; nothing above changes when they are not used):
``GET /users/{organizer}/onlineMeetings/{meeting}/transcripts`` (graph/api/onlinemeeting-list-transcripts),
``…/transcripts/{id}`` and ``…/transcripts/{id}/content?$format=text/vtt`` (graph/api/calltranscript-get: the
WebVTT text; without ``$format=text/vtt`` or ``Accept: text/vtt`` Graph answers 400 "Invalid format …"),
``GET /users/{organizer}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='…')``
(graph/api/onlinemeeting-getalltranscripts), and subscriptions to ``communications/onlineMeetings/getAllTranscripts``
(graph/teams-changenotifications-callrecording-and-calltranscript: lifetime up to 4,230 minutes) whose
notifications (resource ``communications/onlineMeetings('{m}')/transcripts('{t}')``, ``#Microsoft.Graph.
callTranscript``) collect in ``outbox`` when ``add_transcript`` makes one available. Seeded with
``transcripts={"<meeting id>": "<WebVTT>"}`` (the ``tools.simulate`` key); a meeting of another organizer is 404.

Granted permissions: with ``graph_permissions=[...]`` (the application permissions the tenant granted, plus any
resource-specific consent permissions the app holds), reads and subscriptions need their permission and are
refused as Graph refuses them: 403 with code ``Forbidden`` (Teams and communications APIs answer ``Forbidden``;
learn.microsoft.com/graph/errors lists 403 for missing permissions) and a message naming the roles the API
requires. ``None`` (the default) grants everything, as before. Which call needs which permission:
``shared.platforms.teams.read_permissions.GRAPH_READS`` (channel messages ChannelMessage.Read.All or RSC
ChannelMessage.Read.Group; chat messages Chat.Read.All; transcripts OnlineMeetingTranscript.Read.All or RSC
OnlineMeetingTranscript.Read.Chat; getAllTranscripts OnlineMeetingTranscript.Read.All). Posting messages is
refused to applications as below, whatever was granted.

Refusals (besides the 400s and 404s above), each as Graph answers it:

=====  ============  =========================================================================================
status code          when (source)
=====  ============  =========================================================================================
401    Unauthorized  ``POST …/channels/{id}/messages``, ``…/messages/{id}/replies`` and ``POST /chats/{id}/messages``
                     with an application-only token (every token this fake sees: Reynolds has only its managed
                     identity), message "Message POST is allowed in application-only context only for import
                     purposes. Refer to https://learn.microsoft.com/microsoftteams/platform/graph-api/import-messages/
                     import-external-messages-to-teams for more details." — learn.microsoft.com/graph/api/
                     chatmessage-post and channel-post-messages (Permissions: Application ``Teamwork.Migrate.All``,
                     "Application permissions are only supported for migration"); the exact error body as Graph
                     returns it is quoted in Microsoft Q&A 1154651 ("send messages in channel apis…") and 1243927
                     ("Unable to send messages in channel"); ../shared/REFERENCE.md. Allowed only in a channel or
                     chat named in ``migration`` (created in migration mode, an import with ``Teamwork.Migrate.All``).
401    InvalidAuthenticationToken  a ``require_token`` is set and the request carries another bearer token
=====  ============  =========================================================================================

Bots speak through the Bot Connector instead (``tools.fakes.bot.FakeBotConnector``); ``post_as_bot`` stores what a
bot posted, as Teams shows it to Graph readers (``from.application``, ``applicationIdentityType: bot``).

Like Graph, every posted message (Reynolds' own included) becomes a change notification for each matching
subscription; the payloads collect in ``outbox`` and ``notifications_for(message)`` builds one on demand.
``lifecycle_notification`` builds lifecycle events, ``validation_request`` the validation handshake call, and
an optional ``validator`` callback plays the subscriber's endpoint during subscription creation.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

MAX_MESSAGE_LIFETIME = timedelta(minutes=60)
MAX_RICH_MESSAGE_LIFETIME = timedelta(minutes=4320)
MIN_LIFETIME = timedelta(minutes=45)
LIFECYCLE_REQUIRED_ABOVE = timedelta(hours=1)
MAX_CLIENT_STATE = 128
#: Maximum lifetime of a callTranscript subscription (graph/api/resources/subscription, "Subscription lifetime").
MAX_TRANSCRIPT_LIFETIME = timedelta(minutes=4230)
ALL_TRANSCRIPTS = "communications/onlineMeetings/getAllTranscripts"
TRANSCRIPT_ORGANIZER = "00000000-0000-0000-0000-0000000000a1"
#: Permissions (any one suffices) per gated call, from each API page's permission table.
TRANSCRIPT_PERMISSIONS = ("OnlineMeetingTranscript.Read.All", "OnlineMeetingTranscript.Read.Chat")
CHANNEL_READ_PERMISSIONS = ("ChannelMessage.Read.All", "ChannelMessage.Read.Group")
CHAT_READ_PERMISSIONS = ("Chat.Read.All",)
#: Graph's answer to an app-only message POST outside a migration (the Q&A threads in the module docstring).
APP_ONLY_POST_MESSAGE = ("Message POST is allowed in application-only context only for import purposes. Refer to "
                         "https://learn.microsoft.com/microsoftteams/platform/graph-api/import-messages/"
                         "import-external-messages-to-teams for more details.")
CHANGE_TYPES = {"created", "updated", "deleted"}

Validator = Callable[[str], tuple[int, str, str]]


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (HTTP header names are case-insensitive)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((str(k).lower(), v) for k, v in dict(items).items())

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: Any

    @property
    def json(self) -> Any:
        """The parsed JSON body (``None`` when there was none)."""
        return self.body


@dataclass
class ScriptedFailure:
    """Answer the next matching request(s) with ``status`` (and ``Retry-After`` when given)."""

    method: str | None
    path_pattern: str | None
    status: int
    retry_after: str | None
    code: str
    times: int


@dataclass(frozen=True)
class ValidationRequest:
    """The call Graph makes to ``notificationUrl`` when a subscription is created or its URL changes."""

    method: str
    url: str
    token: str
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain; charset=utf-8"})


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip().replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Raw:
    """A non-JSON answer (the WebVTT transcript content)."""

    content_type: str
    data: bytes


class GraphError(Exception):
    """Raised inside a route to answer with Graph's error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class FakeGraph:
    """Graph on loopback: subscriptions, channel/chat messages, notifications, scripted throttling."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        tenant_id: str = "tenant-0001",
        poster: dict[str, Any] | None = None,
        validator: Validator | None = None,
        require_token: str | None = None,
        graph_permissions: list[str] | tuple[str, ...] | None = None,
        transcripts: dict[str, str] | None = None,
        transcript_organizer: str = TRANSCRIPT_ORGANIZER,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tenant_id = tenant_id
        #: The identity Graph reports as author of messages posted through the API (a delegated account).
        self.poster = poster or {
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": "00000000-0000-0000-0000-00000000cafe",
                "displayName": "Reynolds Service",
                "userIdentityType": "aadUser",
                "tenantId": tenant_id,
            }
        }
        self.validator = validator
        self.require_token = require_token
        #: The permissions the tenant granted (``None``: everything, the historical behaviour).
        self.graph_permissions = None if graph_permissions is None else frozenset(graph_permissions)
        self.transcript_organizer = transcript_organizer
        #: meeting id → transcript id → {"meta": callTranscript, "content": WebVTT text}.
        self.transcripts: dict[str, dict[str, dict[str, Any]]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        #: Channels (``("channel", team, channel)``) and chats (``("chat", chat)``) in migration mode: the only
        #: places an app-only ``POST …/messages`` is accepted (an import with ``Teamwork.Migrate.All``).
        self.migration: set[tuple[str, ...]] = set()
        #: App ids of Reynolds' bots: their messages (``post_as_bot``) count as Reynolds' own in ``is_poster``.
        self.bot_apps: set[str] = set()
        #: Stored messages: ``("channel", team, channel)`` or ``("chat", chat)`` → id → message.
        self.messages: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self.outbox: list[dict[str, Any]] = []
        #: Called with every stored message (API posts and ``post_as``), after its notifications were built.
        self.on_message: list[Callable[[dict[str, Any]], None]] = []
        self._failures: list[ScriptedFailure] = []
        self._lock = threading.RLock()
        self._next_message = 1_700_000_000_000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for meeting_id, vtt in (transcripts or {}).items():
            self.add_transcript(meeting_id, vtt)

    # --- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGraph:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
                return

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-graph", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1.0``: what ``make_graph_client(base_url=…)`` takes."""
        assert self._server is not None, "use FakeGraph as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1.0"

    # --- scripting ---------------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 429,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: str | int | None = None,
        code: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``method``/``path`` (a regex) with ``status``."""
        default_code = {429: "TooManyRequests", 503: "ServiceNotAvailable", 504: "GatewayTimeout"}.get(status, "Error")
        with self._lock:
            self._failures.append(
                ScriptedFailure(
                    method.upper() if method else None,
                    path,
                    status,
                    str(retry_after) if retry_after is not None else None,
                    code or default_code,
                    times,
                )
            )

    def requests_to(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose method matches and whose path matches the regex."""
        return [r for r in self.requests if r.method == method.upper() and re.search(path_pattern, r.path)]

    # --- notifications -----------------------------------------------------------------------------------

    @staticmethod
    def message_resource(message: dict[str, Any]) -> str:
        """Graph's notification resource for a stored message."""
        ident = message.get("channelIdentity")
        if ident:
            base = f"teams('{ident['teamId']}')/channels('{ident['channelId']}')/messages"
            if message.get("replyToId"):
                return f"{base}('{message['replyToId']}')/replies('{message['id']}')"
            return f"{base}('{message['id']}')"
        return f"chats('{message['chatId']}')/messages('{message['id']}')"

    def _matches(self, sub: dict[str, Any], message: dict[str, Any], change_type: str) -> bool:
        if change_type not in sub["changeType"].split(","):
            return False
        resource = sub["resource"].strip("/").lower()
        ident = message.get("channelIdentity")
        if ident:
            exact = f"teams/{ident['teamId']}/channels/{ident['channelId']}/messages".lower()
            return resource in (exact, "teams/getallmessages")
        return resource in (f"chats/{message['chatId']}/messages".lower(), "chats/getallmessages")

    def notifications_for(self, message: dict[str, Any], change_type: str = "created") -> dict[str, Any]:
        """The change-notification POST Graph would send for ``message`` (``value`` empty when nothing matches)."""
        resource = self.message_resource(message)
        with self._lock:
            subs = [s for s in self.subscriptions.values() if self._matches(s, message, change_type)]
        return {
            "value": [
                {
                    "subscriptionId": sub["id"],
                    "clientState": sub.get("clientState"),
                    "changeType": change_type,
                    "resource": resource,
                    "subscriptionExpirationDateTime": sub["expirationDateTime"],
                    "resourceData": {
                        "id": message["id"],
                        "@odata.type": "#Microsoft.Graph.chatMessage",
                        "@odata.id": resource,
                    },
                    "tenantId": self.tenant_id,
                }
                for sub in subs
            ]
        }

    def lifecycle_notification(self, subscription_id: str, event: str) -> dict[str, Any]:
        """A lifecycle notification POST (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``)."""
        sub = self.subscriptions[subscription_id]
        return {
            "value": [
                {
                    "subscriptionId": sub["id"],
                    "subscriptionExpirationDateTime": sub["expirationDateTime"],
                    "tenantId": self.tenant_id,
                    "clientState": sub.get("clientState"),
                    "lifecycleEvent": event,
                    "resource": sub["resource"],
                }
            ]
        }

    @staticmethod
    def validation_request(notification_url: str, token: str | None = None) -> ValidationRequest:
        """The validation call: ``POST {notificationUrl}?validationToken=<url-encoded token>``, text/plain."""
        token = token or f"Validation: Testing client application reachability for subscription {uuid.uuid4()}"
        sep = "&" if "?" in notification_url else "?"
        return ValidationRequest("POST", f"{notification_url}{sep}validationToken={quote(token)}", token)

    def post_as_user(
        self, text_html: str, *, team: str | None = None, channel: str | None = None, chat: str | None = None
    ) -> dict[str, Any]:
        """A human posts in Teams (not through the API): stores the message and emits its notifications."""
        sender = {
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": "11111111-2222-3333-4444-555555555555",
                "displayName": "Ada Human",
                "userIdentityType": "aadUser",
                "tenantId": self.tenant_id,
            }
        }
        key: tuple[str, ...] = ("channel", team or "", channel or "") if team else ("chat", chat or "")
        return self._store_message(key, {"body": {"contentType": "html", "content": text_html}}, sender, None)

    def post_as(
        self,
        sender: dict[str, Any],
        text_html: str,
        *,
        team: str | None = None,
        channel: str | None = None,
        chat: str | None = None,
    ) -> dict[str, Any]:
        """Someone posts in Teams (not through the API) as ``sender`` (Graph's ``from``: ``{"user": {…}}`` or
        ``{"application": {…}}``): stores the message and emits its notifications."""
        key: tuple[str, ...] = ("channel", team or "", channel or "") if team else ("chat", chat or "")
        return self._store_message(key, {"body": {"contentType": "html", "content": text_html}}, sender, None)

    def post_as_bot(self, app_id: str, text_html: str, *, team: str | None = None, channel: str | None = None,
                    chat: str | None = None, reply_to: str | None = None, name: str = "Reynolds") -> dict[str, Any]:
        """A bot's message (posted through the Bot Connector) as Graph readers see it: ``from.application`` with
        ``applicationIdentityType: bot``; stores it (a reply when ``reply_to``) and emits its notifications."""
        sender = {"user": None, "application": {"@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
                                                "id": app_id, "displayName": name,
                                                "applicationIdentityType": "bot"}}
        key: tuple[str, ...] = ("channel", team or "", channel or "") if team else ("chat", chat or "")
        if reply_to is not None and reply_to not in self.messages.get(key, {}):
            reply_to = None  # a thread Graph does not know: the message is a new root, as the bot posted it
        return self._store_message(key, {"body": {"contentType": "html", "content": text_html}}, sender, reply_to)

    def is_poster(self, message: dict[str, Any]) -> bool:
        """True when ``message`` is Reynolds' own: posted through the API (by the identity in ``poster``) or by one
        of Reynolds' bots (``bot_apps``)."""
        sender = message.get("from") or {}
        if (sender.get("application") or {}).get("id") in self.bot_apps:
            return True
        return sender.get("user") == self.poster.get("user") and "user" in self.poster

    # --- transcripts -------------------------------------------------------------------------------------

    def add_transcript(self, meeting_id: str, vtt: str) -> dict[str, Any]:
        """A meeting's transcript becomes available: stored, and notified to ``getAllTranscripts`` subscribers."""
        with self._lock:
            store = self.transcripts.setdefault(meeting_id, {})
            transcript_id = f"MSMjMCMj{uuid.uuid5(uuid.NAMESPACE_URL, f'{meeting_id}/{len(store)}').hex}"
            now = _iso(self.clock())
            meta = {
                "id": transcript_id,
                "meetingId": meeting_id,
                "callId": str(uuid.uuid5(uuid.NAMESPACE_URL, meeting_id)),
                "contentCorrelationId": str(uuid.uuid5(uuid.NAMESPACE_URL, transcript_id)),
                "transcriptContentUrl": f"https://graph.microsoft.com/v1.0/users/{self.transcript_organizer}/"
                                        f"onlineMeetings/{meeting_id}/transcripts/{transcript_id}/content",
                "createdDateTime": now,
                "endDateTime": now,
                "meetingOrganizer": {"application": None, "device": None, "user": {
                    "id": self.transcript_organizer, "displayName": None, "userIdentityType": "aadUser",
                    "tenantId": self.tenant_id}},
            }
            store[transcript_id] = {"meta": meta, "content": vtt}
            notification = self.transcript_notification(meeting_id, transcript_id)
            if notification["value"]:
                self.outbox.append(notification)
        return dict(meta)

    def transcript_notification(self, meeting_id: str, transcript_id: str) -> dict[str, Any]:
        """The change notification Graph sends ``getAllTranscripts`` subscribers for one transcript."""
        resource = f"communications/onlineMeetings('{meeting_id}')/transcripts('{transcript_id}')"
        with self._lock:
            subs = [s for s in self.subscriptions.values()
                    if s["resource"].strip("/").lower() == ALL_TRANSCRIPTS.lower() and "created" in s["changeType"]]
        return {"value": [{
            "subscriptionId": sub["id"], "clientState": sub.get("clientState"), "changeType": "created",
            "resource": resource, "subscriptionExpirationDateTime": sub["expirationDateTime"],
            "resourceData": {"id": transcript_id, "@odata.type": "#Microsoft.Graph.callTranscript",
                             "@odata.id": resource},
            "tenantId": self.tenant_id,
        } for sub in subs]}

    def _require(self, permissions: tuple[str, ...]) -> None:
        if self.graph_permissions is None or self.graph_permissions & set(permissions):
            return
        raise GraphError(403, "Forbidden", "Missing role permissions on the request. API requires one of '"
                         + ", ".join(permissions) + "'. Roles on the request '"
                         + ", ".join(sorted(self.graph_permissions)) + "'.")

    def _meetings(self, method: str, seg: list[str], record: RecordedRequest) -> tuple[int, Any]:
        # seg: users/{user}/onlineMeetings/...
        if method != "GET":
            return self._unexpected(record)
        user, rest = seg[1], seg[3:]
        if rest and rest[0].startswith("getAllTranscripts("):
            self._require(TRANSCRIPT_PERMISSIONS[:1])
            match = re.search(r"meetingOrganizerUserId='([^']+)'", rest[0])
            if match is None or match[1] != user:
                raise GraphError(400, "BadRequest", "meetingOrganizerUserId is required and must be the user.")
            with self._lock:
                value = [t["meta"] for store in self.transcripts.values() for t in store.values()
                         if user == self.transcript_organizer]
            return 200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(callTranscript)",
                         "value": value}
        self._require(TRANSCRIPT_PERMISSIONS)
        if len(rest) < 2 or rest[1] != "transcripts":
            return self._unexpected(record)
        store = self.transcripts.get(rest[0]) if user == self.transcript_organizer else None
        if store is None:
            raise GraphError(404, "NotFound", f"Online meeting {rest[0]} was not found for user {user}.")
        if len(rest) == 2:
            return 200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#callTranscripts",
                         "value": [t["meta"] for t in store.values()]}
        entry = store.get(rest[2])
        if entry is None:
            raise GraphError(404, "NotFound", f"Transcript {rest[2]} was not found.")
        if len(rest) == 3:
            return 200, entry["meta"]
        if len(rest) == 4 and rest[3] == "content":
            wanted = (record.query.get("$format") or [""])[0] or record.headers.get("Accept", "")
            if "text/vtt" not in wanted:
                raise GraphError(400, "BadRequest", f"Invalid format '{wanted or 'application/octet-stream'}' "
                                 "specified.")
            return 200, _Raw("text/vtt", entry["content"].encode("utf-8"))
        return self._unexpected(record)

    # --- internals ---------------------------------------------------------------------------------------

    def _store_message(
        self, key: tuple[str, ...], body: dict[str, Any], sender: dict[str, Any], reply_to: str | None
    ) -> dict[str, Any]:
        with self._lock:
            self._next_message += 1
            message_id = str(self._next_message)
            now = _iso(self.clock())
            message: dict[str, Any] = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#chatMessage",
                "id": message_id,
                "replyToId": reply_to,
                "etag": message_id,
                "messageType": "message",
                "createdDateTime": now,
                "lastModifiedDateTime": now,
                "lastEditedDateTime": None,
                "deletedDateTime": None,
                "subject": body.get("subject"),
                "summary": None,
                "importance": "normal",
                "locale": "en-us",
                "webUrl": None,
                "from": {"application": None, "device": None, **sender},
                "body": body.get("body") or {"contentType": "text", "content": ""},
                "attachments": body.get("attachments") or [],
                "mentions": [],
                "reactions": [],
            }
            if key[0] == "channel":
                message["channelIdentity"] = {"teamId": key[1], "channelId": key[2]}
            else:
                message["chatId"] = key[1]
            self.messages.setdefault(key, {})[message_id] = message
            notification = self.notifications_for(message)
            if notification["value"]:
                self.outbox.append(notification)
        for callback in list(self.on_message):
            callback(message)
        return message

    def _error(self, status: int, code: str, message: str) -> GraphError:
        return GraphError(status, code, message)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        record = RecordedRequest(
            handler.command,
            split.path,
            parse_qs(split.query),
            Headers(handler.headers.items()),
            body,
        )
        with self._lock:
            self.requests.append(record)
        status, payload, headers = 500, None, {}
        try:
            self._check_auth(record)
            self._scripted(record)
            status, payload = self._route(record)
        except GraphError as exc:
            status, headers = exc.status, exc.headers
            payload = {
                "error": {
                    "code": exc.code,
                    "message": exc.message,
                    "innerError": {
                        "date": _iso(self.clock()),
                        "request-id": str(uuid.uuid4()),
                        "client-request-id": record.headers.get("client-request-id", str(uuid.uuid4())),
                    },
                }
            }
        answer = payload if isinstance(payload, _Raw) else None
        data = answer.data if answer else b"" if payload is None else json.dumps(payload).encode("utf-8")
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if answer:
            handler.send_header("Content-Type", answer.content_type)
        elif data:
            handler.send_header("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if data:
            handler.wfile.write(data)

    def _check_auth(self, record: RecordedRequest) -> None:
        if self.require_token is None:
            return
        if record.headers.get("Authorization") != f"Bearer {self.require_token}":
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")

    def _scripted(self, record: RecordedRequest) -> None:
        with self._lock:
            for failure in self._failures:
                if failure.method and failure.method != record.method:
                    continue
                if failure.path_pattern and not re.search(failure.path_pattern, record.path):
                    continue
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                raise GraphError(failure.status, failure.code, "Scripted failure.", headers)

    def _route(self, record: RecordedRequest) -> tuple[int, Any]:
        segments = [unquote(s) for s in record.path.split("/") if s]
        if not segments or segments[0] != "v1.0":
            return self._unexpected(record)
        seg = segments[1:]
        method = record.method
        if seg[:1] == ["subscriptions"]:
            return self._subscriptions(method, seg[1:], record)
        if len(seg) >= 4 and seg[0] == "users" and seg[2] == "onlineMeetings":
            return self._meetings(method, seg, record)
        if len(seg) >= 5 and seg[0] == "teams" and seg[2] == "channels" and seg[4] == "messages":
            if method == "GET":
                self._require(CHANNEL_READ_PERMISSIONS)
            key: tuple[str, ...] = ("channel", seg[1], seg[3])
            return self._messages(method, key, seg[5:], record)
        if len(seg) >= 3 and seg[0] == "chats" and seg[2] == "messages":
            if method == "GET":
                self._require(CHAT_READ_PERMISSIONS)
            return self._messages(method, ("chat", seg[1]), seg[3:], record)
        return self._unexpected(record)

    def _unexpected(self, record: RecordedRequest) -> tuple[int, Any]:
        with self._lock:
            self.unexpected.append(record)
        raise GraphError(404, "UnknownRoute", f"No fake route for {record.method} {record.path}")

    # --- subscriptions -----------------------------------------------------------------------------------

    def _lifetime_ok(self, sub: dict[str, Any], expiry: datetime) -> datetime:
        now = self.clock()
        if expiry <= now:
            raise GraphError(400, "InvalidRequest", "Subscription expiration can only be in the future.")
        limit = MAX_RICH_MESSAGE_LIFETIME if sub.get("includeResourceData") else MAX_MESSAGE_LIFETIME
        if str(sub.get("resource", "")).strip("/").lower() == ALL_TRANSCRIPTS.lower():
            limit = MAX_TRANSCRIPT_LIFETIME
        if expiry - now > limit + timedelta(seconds=30):
            raise GraphError(
                400,
                "ExtensionError",
                f"Subscription expiration exceeds the maximum of {int(limit.total_seconds() // 60)} minutes.",
            )
        if expiry - now > LIFECYCLE_REQUIRED_ABOVE and not sub.get("lifecycleNotificationUrl"):
            raise GraphError(
                400,
                "ValidationError",
                "lifecycleNotificationUrl is required for subscriptions with an expiration above 1 hour.",
            )
        # Graph silently moves anything under 45 minutes to 45 minutes.
        return max(expiry, now + MIN_LIFETIME)

    def _validate_url(self, url: Any, name: str) -> None:
        if not isinstance(url, str) or not url.lower().startswith("https://"):
            raise GraphError(400, "ValidationError", f"{name} must be an https URL.")
        if self.validator is not None:
            request = self.validation_request(url)
            status, text, content_type = self.validator(request.token)
            if status != 200 or text != request.token or not content_type.startswith("text/plain"):
                raise GraphError(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Response must exactly match validationToken query "
                    "parameter.",
                )

    def _subscriptions(self, method: str, rest: list[str], record: RecordedRequest) -> tuple[int, Any]:
        if not rest and method == "POST":
            return self._create_subscription(record.body)
        if not rest and method == "GET":
            with self._lock:
                return 200, {
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
                    "value": [dict(s) for s in self.subscriptions.values()],
                }
        sub_id = rest[0] if rest else ""
        with self._lock:
            sub = self.subscriptions.get(sub_id)
        if sub is None:
            if len(rest) in (1, 2):
                raise GraphError(404, "ResourceNotFound", f"The object was not found: subscription {sub_id}.")
            return self._unexpected(record)
        if len(rest) == 2 and rest[1] == "reauthorize" and method == "POST":
            with self._lock:
                sub["reauthorizedCount"] = sub.get("reauthorizedCount", 0) + 1
            return 204, None
        if len(rest) != 1:
            return self._unexpected(record)
        if method == "GET":
            return 200, dict(sub)
        if method == "DELETE":
            with self._lock:
                del self.subscriptions[sub_id]
            return 204, None
        if method == "PATCH":
            body = record.body if isinstance(record.body, dict) else {}
            allowed = {"expirationDateTime", "notificationUrl", "@odata.type"}
            if set(body) - allowed:
                raise GraphError(400, "InvalidRequest", f"Only {sorted(allowed)} can be updated.")
            if "notificationUrl" in body:
                self._validate_url(body["notificationUrl"], "notificationUrl")
            expiry = _parse_time(body.get("expirationDateTime"))
            if expiry is None:
                raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
            with self._lock:
                sub["expirationDateTime"] = _iso(self._lifetime_ok(sub, expiry))
                if "notificationUrl" in body:
                    sub["notificationUrl"] = body["notificationUrl"]
            return 200, dict(sub)
        return self._unexpected(record)

    def _create_subscription(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise GraphError(400, "InvalidRequest", "A subscription body is required.")
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(name):
                raise GraphError(400, "InvalidRequest", f"Property {name} is required.")
        change_types = {c.strip() for c in str(body["changeType"]).split(",")}
        if not change_types or not change_types <= CHANGE_TYPES:
            raise GraphError(400, "InvalidRequest", f"Unsupported changeType {body['changeType']!r}.")
        resource = str(body["resource"]).strip("/")
        if not (
            re.fullmatch(r"teams/[^/]+/channels/[^/]+/messages", resource)
            or re.fullmatch(r"chats/[^/]+/messages", resource)
            or resource in ("teams/getAllMessages", "chats/getAllMessages")
            or resource.lower() == ALL_TRANSCRIPTS.lower()
        ):
            raise GraphError(400, "InvalidRequest", f"Resource {resource!r} is not supported by the fake.")
        if resource.lower() == ALL_TRANSCRIPTS.lower():
            self._require(TRANSCRIPT_PERMISSIONS[:1])
        elif resource.startswith("teams/"):
            self._require(CHANNEL_READ_PERMISSIONS[:1] if resource == "teams/getAllMessages"
                          else CHANNEL_READ_PERMISSIONS)
        else:
            self._require(CHAT_READ_PERMISSIONS)
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
            raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
        if body.get("includeResourceData") and not body.get("encryptionCertificate"):
            raise GraphError(400, "InvalidRequest", "encryptionCertificate is required with includeResourceData.")
        expiry = _parse_time(body["expirationDateTime"])
        if expiry is None:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a valid date.")
        self._validate_url(body["notificationUrl"], "notificationUrl")
        if body.get("lifecycleNotificationUrl"):
            self._validate_url(body["lifecycleNotificationUrl"], "lifecycleNotificationUrl")
        sub = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": str(uuid.uuid4()),
            "resource": body["resource"],
            "applicationId": "app-0001",
            "changeType": ",".join(sorted(change_types)),
            "clientState": client_state,
            "notificationUrl": body["notificationUrl"],
            "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
            "includeResourceData": bool(body.get("includeResourceData")),
            "latestSupportedTlsVersion": "v1_2",
            "creatorId": "creator-0001",
        }
        sub["expirationDateTime"] = _iso(self._lifetime_ok(sub, expiry))
        with self._lock:
            self.subscriptions[sub["id"]] = sub
        return 201, dict(sub)

    # --- messages ----------------------------------------------------------------------------------------

    def _messages(self, method: str, key: tuple[str, ...], rest: list[str], record: RecordedRequest) -> tuple[int, Any]:
        store = self.messages.get(key, {})
        if method == "POST" and key not in self.migration:
            raise GraphError(401, "Unauthorized", APP_ONLY_POST_MESSAGE)
        if not rest and method == "POST":
            return 201, self._post_message(key, record.body, None)
        if not rest and method == "GET":
            return 200, self._list_messages(key, store, record)
        if len(rest) == 1 and method == "GET":
            message = store.get(rest[0])
            if message is None:
                raise GraphError(404, "NotFound", f"Message {rest[0]} not found.")
            return 200, message
        if len(rest) >= 2 and rest[1] == "replies" and key[0] == "channel":
            root = store.get(rest[0])
            if root is None:
                raise GraphError(404, "NotFound", f"Message {rest[0]} not found.")
            if len(rest) == 2 and method == "POST":
                return 201, self._post_message(key, record.body, rest[0])
            if len(rest) == 3 and method == "GET":
                reply = store.get(rest[2])
                if reply is None or reply.get("replyToId") != rest[0]:
                    raise GraphError(404, "NotFound", f"Reply {rest[2]} not found.")
                return 200, reply
        return self._unexpected(record)

    def _list_messages(self, key: tuple[str, ...], store: dict[str, Any], record: RecordedRequest) -> dict[str, Any]:
        query = {k: v[-1] for k, v in record.query.items()}
        try:
            top = int(query.get("$top", "20"))
        except ValueError:
            raise GraphError(400, "BadRequest", "Invalid value for $top.") from None
        if not 1 <= top <= 50:
            raise GraphError(400, "BadRequest", "The page size must be between 1 and 50.")
        with self._lock:
            items = sorted((m for m in store.values() if key[0] != "channel" or m.get("replyToId") is None),
                           key=lambda m: int(m["id"]), reverse=True)
        token = query.get("$skiptoken")
        if token is not None:
            if not token.isdigit():
                raise GraphError(400, "BadRequest", "Invalid $skiptoken.")
            items = [m for m in items if int(m["id"]) < int(token)]
        page = items[:top]
        body: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#chatMessages",
                                "value": page}
        if len(items) > top:
            root = self.base_url.removesuffix("/v1.0")
            body["@odata.nextLink"] = f"{root}{record.path}?$top={top}&$skiptoken={page[-1]['id']}"
        return body

    def _post_message(self, key: tuple[str, ...], body: Any, reply_to: str | None) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("body"), dict):
            raise GraphError(400, "BadRequest", "A chatMessage with a body is required.")
        content = body["body"].get("content")
        if not isinstance(content, str) or not content:
            raise GraphError(400, "BadRequest", "Message body content is required.")
        for attachment in body.get("attachments") or []:
            att_id = attachment.get("id")
            if not att_id or f'<attachment id="{att_id}"></attachment>' not in content:
                raise GraphError(400, "BadRequest", "Each attachment must be referenced in the body by id.")
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
                try:
                    json.loads(attachment.get("content") or "")
                except json.JSONDecodeError:
                    raise GraphError(400, "BadRequest", "Adaptive card content must be JSON.") from None
        return self._store_message(key, body, self.poster, reply_to)
