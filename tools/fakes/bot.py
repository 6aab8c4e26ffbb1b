"""Loopback fakes of the Bot Framework: the token issuer (OpenID metadata + JWKS) and the Bot Connector.

``FakeTokenIssuer`` plays ``login.botframework.com`` for the bot door: it publishes OpenID metadata
(``/v1/.well-known/openidconfiguration``) naming its JWKS (``/v1/.well-known/keys``, RSA keys with
``endorsements: ["msteams"]``) and signs channel tokens with test keys the way the Bot Connector does
(Bot Framework REST API reference, "Authentication with the Bot Connector API", *Connector to Bot*: ``iss``
``https://api.botframework.com``, ``aud`` the bot's app id, ``serviceurl``, RS256, ``kid`` in the header). It also
signs the bot's own outbound tokens (*Bot to Connector*: an Entra token with ``aud`` ``https://api.botframework.com``
and the bot's id in ``appid``), which ``FakeBotConnector`` checks. ``channel_token(..., overrides)`` implements the
``token_claims`` of ``tools.simulate`` bot items: a key with value ``None`` removes a claim, ``"alg": "none"`` makes
an unsigned token, ``"kid": "unknown"`` signs with a key the JWKS does not list, ``"expired_seconds": n`` makes it
expired ``n`` seconds ago; any other key sets that claim.

``FakeBotConnector`` plays ``{serviceUrl}/v3/conversations``: Send to conversation, Reply to activity and Update
activity (the three operations ``shared.platforms.teams.connector`` calls; the Agents SDK's
``microsoft_agents/hosting/core/connector/client/connector_client.py``, ``ConversationsOperations``, calls the same
paths, and a service URL may carry a path prefix such as ``/amer/``). Everything posted is kept in
``activities``. It refuses what the real service refuses:

=====  ============================  ======================================================================
status code                          when (source)
=====  ============================  ======================================================================
401    Unauthorized                  no ``Authorization: Bearer``, a token not signed by the issuer's keys, the
                                     wrong ``aud`` or an expired token (REST API reference, "Authentication":
                                     the connector only accepts a valid bot token; "HTTP status codes": 401)
401    Unauthorized                  ``appid`` is not the bot the conversation belongs to (same page: the token
                                     identifies the bot; Agents SDK ``connector/client`` sends the bot's token)
404    ConversationNotFound          the conversation id is unknown to the bot (REST API reference, "Error codes":
                                     404 the requested resource was not found)
404    ActivityNotFound              update or reply naming an activity that does not exist in the conversation
400    BadArgument                   body not a JSON object, no ``type``, a message with neither ``text`` nor
                                     ``attachments`` (REST API reference, "Activity object"; "Error codes": 400)
413    MessageSizeTooBig             activity over 28 KB (Teams platform docs, "Send and receive messages":
                                     bot messages are limited to about 28 KB, larger ones get 413)
429    TooManyRequests + Retry-After per conversation above 7 / 1 s, 60 / 30 s or 1,800 / 3,600 s (Teams platform
                                     docs, "Optimize your bot with rate limiting", per bot per thread limits;
                                     ../shared/REFERENCE.md); ``throttle_next(seconds)`` scripts one (the
                                     thread's limits spent by other senders)
=====  ============================  ======================================================================

Anything else (another path or method) is a 404 recorded in ``unexpected``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
CONNECTOR_AUDIENCE = "https://api.botframework.com"
METADATA_PATH = "/v1/.well-known/openidconfiguration"
KEYS_PATH = "/v1/.well-known/keys"
MAX_ACTIVITY_BYTES = 28 * 1024
#: Per bot per conversation: (requests, window seconds), from Teams' rate-limit page.
RATE_LIMITS = ((7, 1.0), (60, 30.0), (1800, 3600.0))
TOKEN_LIFETIME_SECONDS = 3600


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class _Loopback:
    """A ThreadingHTTPServer on 127.0.0.1 that hands every request to ``handle``."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra = owner.handle(self.command, self.path, headers, body)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - BaseHTTPRequestHandler's names

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serving loop to notice (0.5 s by default, per world).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


class FakeTokenIssuer(_Loopback):
    """OpenID metadata + JWKS on loopback, and a signer of channel and bot tokens with test keys."""

    def __init__(self, *, clock: Callable[[], float] = time.time, endorsements: tuple[str, ...] = ("msteams",)
                 ) -> None:
        super().__init__()
        self.clock = clock
        self.endorsements = endorsements
        self.kid = "reynolds-fake-key-1"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests: list[str] = []

    def __enter__(self) -> FakeTokenIssuer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def metadata_url(self) -> str:
        return self.base_url + METADATA_PATH

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64url_uint(numbers.n),
                          "e": _b64url_uint(numbers.e), "endorsements": list(self.endorsements)}]}

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        self.requests.append(f"{method} {path}")
        if method == "GET" and path == METADATA_PATH:
            return 200, {"issuer": BOT_FRAMEWORK_ISSUER, "authorization_endpoint": "https://invalid.botframework.com",
                         "jwks_uri": self.base_url + KEYS_PATH, "id_token_signing_alg_values_supported": ["RS256"],
                         "token_endpoint_auth_methods_supported": ["private_key_jwt"]}, {}
        if method == "GET" and path == KEYS_PATH:
            return 200, self.jwks(), {}
        return 404, {"error": {"code": "NotFound", "message": path}}, {}

    def _sign(self, claims: dict[str, Any], *, alg: str = "RS256", kid: str | None = None) -> str:
        if alg == "none":
            return jwt.encode(claims, key="", algorithm="none")
        key = self._stranger if kid == "unknown" else self._key
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid or self.kid})

    def channel_token(self, app_id: str, service_url: str | None, overrides: dict[str, Any] | None = None) -> str:
        """A Connector → bot token (``token_claims`` overrides as in the module docstring)."""
        now = int(self.clock())
        claims: dict[str, Any] = {"iss": BOT_FRAMEWORK_ISSUER, "aud": app_id, "serviceurl": service_url,
                                  "nbf": now - 5, "iat": now - 5, "exp": now + TOKEN_LIFETIME_SECONDS}
        if service_url is None:
            claims.pop("serviceurl")
        alg, kid = "RS256", None
        for name, value in (overrides or {}).items():
            if name == "alg":
                alg = str(value)
            elif name == "kid":
                kid = str(value)
            elif name == "expired_seconds":
                claims["exp"] = now - int(value)
                claims["nbf"] = claims["iat"] = claims["exp"] - TOKEN_LIFETIME_SECONDS
            elif value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self._sign(claims, alg=alg, kid=kid)

    def bot_token(self, app_id: str, *, audience: str = CONNECTOR_AUDIENCE) -> str:
        """A bot → Connector token: what ``ManagedIdentityCredential.get_token`` returns for the bot's identity."""
        now = int(self.clock())
        return self._sign({"iss": "https://sts.windows.net/fake-tenant/", "aud": audience, "appid": app_id,
                           "nbf": now - 5, "iat": now - 5, "exp": now + TOKEN_LIFETIME_SECONDS})

    def check_bot_token(self, token: str) -> dict[str, Any]:
        """Claims of a valid bot → Connector token; ``jwt.PyJWTError`` otherwise."""
        return jwt.decode(token, self._key.public_key(), algorithms=["RS256"], audience=CONNECTOR_AUDIENCE,
                          leeway=300, options={"require": ["exp", "aud"]})


@dataclass
class PostedActivity:
    """One activity the connector accepted."""

    conversation_id: str
    activity_id: str
    method: str
    activity: dict[str, Any]
    reply_to_id: str | None = None


@dataclass
class _Conversation:
    bot_id: str
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: deque[float] = field(default_factory=deque)


_ROUTE = re.compile(r"^(?:/[A-Za-z0-9_.-]+)*/v3/conversations/(?P<conv>[^/]+)/activities(?:/(?P<aid>[^/]+))?$")


class FakeBotConnector(_Loopback):
    """The Bot Connector's conversation operations, with the refusals of the module docstring."""

    def __init__(self, issuer: FakeTokenIssuer, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.issuer = issuer
        self.clock = clock
        self.conversations: dict[str, _Conversation] = {}
        self.activities: list[PostedActivity] = []
        self.refusals: list[tuple[int, str]] = []
        self.unexpected: list[str] = []
        #: Teams itself: called with (conversation id, activity, reply-to id) for a new message and answers the id
        #: Teams gives it (a world mirrors it into the fake Graph, where a bot's message id is its activity id).
        self.on_post: Callable[[str, dict[str, Any], str | None], str] | None = None
        self._throttle_next: list[float] = []
        self._lock = threading.Lock()

    def __enter__(self) -> FakeBotConnector:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_conversation(self, conversation_id: str, bot_id: str) -> None:
        """A conversation the bot is a member of (Teams knows it once the app is installed there)."""
        self.conversations.setdefault(conversation_id, _Conversation(bot_id))

    def throttle_next(self, retry_after: float) -> None:
        """Answer the next post 429 with ``Retry-After`` (Teams' per-thread limits reached by other senders too)."""
        self._throttle_next.append(retry_after)

    def receive(self, conversation_id: str, activity: dict[str, Any]) -> None:
        """An activity Teams delivered to the bot: the connector knows it, so the bot may reply to it."""
        conversation = self.conversations.get(conversation_id)
        if conversation is not None and isinstance(activity.get("id"), str):
            conversation.activities.setdefault(activity["id"], activity)

    def _refuse(self, status: int, code: str, message: str, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.refusals.append((status, code))
        return status, {"error": {"code": code, "message": message}}, headers or {}

    def _throttled(self, conversation: _Conversation) -> float | None:
        now = self.clock()
        calls = conversation.calls
        while calls and now - calls[0] >= RATE_LIMITS[-1][1]:
            calls.popleft()
        for limit, window in RATE_LIMITS:
            recent = [t for t in calls if now - t < window]
            if len(recent) >= limit:
                return max(1.0, window - (now - recent[-limit]))
        calls.append(now)
        return None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        match = _ROUTE.match(urlsplit(path).path)
        if match is None or method not in ("POST", "PUT") or (method == "PUT" and not match.group("aid")):
            self.unexpected.append(f"{method} {path}")
            return 404, {"error": {"code": "NotFound", "message": "no such operation"}}, {}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._refuse(401, "Unauthorized", "Authorization has been denied for this request.")
        try:
            claims = self.issuer.check_bot_token(token.strip())
        except jwt.PyJWTError:
            return self._refuse(401, "Unauthorized", "Authorization has been denied for this request.")
        conversation_id, activity_id = unquote(match.group("conv")), match.group("aid")
        activity_id = unquote(activity_id) if activity_id else None
        with self._lock:
            conversation = self.conversations.get(conversation_id)
            if conversation is None:
                return self._refuse(404, "ConversationNotFound", "Conversation not found.")
            if claims.get("appid") != conversation.bot_id.removeprefix("28:"):
                return self._refuse(401, "Unauthorized", "The bot is not part of the conversation roster.")
            if len(body) > MAX_ACTIVITY_BYTES:
                return self._refuse(413, "MessageSizeTooBig", "Message size too big.")
            try:
                activity = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return self._refuse(400, "BadArgument", "The request body is not valid JSON.")
            if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
                return self._refuse(400, "BadArgument", "Activity must have a type.")
            if activity["type"] == "message" and not (activity.get("text") or activity.get("attachments")):
                return self._refuse(400, "BadArgument", "A message needs text or attachments.")
            if activity_id is not None and activity_id not in conversation.activities:
                return self._refuse(404, "ActivityNotFound", "Activity not found.")
            wait = self._throttle_next.pop(0) if self._throttle_next else self._throttled(conversation)
            if wait is not None:
                return self._refuse(429, "TooManyRequests", "Too many requests.",
                                    {"Retry-After": str(int(wait + 0.999))})
            if method == "PUT":
                assert activity_id is not None
                conversation.activities[activity_id] = activity
                self.activities.append(PostedActivity(conversation_id, activity_id, "PUT", activity))
                return 200, {"id": activity_id}, {}
            new_id = (self.on_post(conversation_id, activity, activity_id) if self.on_post is not None
                      else f"1{uuid.uuid4().int % 10**12:012d}")
            conversation.activities[new_id] = activity
            self.activities.append(PostedActivity(conversation_id, new_id, "POST", activity, activity_id))
            return 201, {"id": new_id}, {}
