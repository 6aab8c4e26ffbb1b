"""Verify the Bot Connector's JWT on ``POST /api/messages`` (Bot Framework channel → bot authentication).

What the Bot Framework documents ("Authentication with the Bot Connector API", section *Authenticate requests from
the Bot Connector service to your bot*, learn.microsoft.com/azure/bot-service/rest-api/
bot-framework-rest-connector-authentication; the Bot Framework JS connector does the same in
``botframework-connector/src/auth/jwtTokenExtractor.ts``, ``JwtTokenExtractor``, with ``EndorsementsValidator``):

1. the request carries ``Authorization: Bearer <JWT>``;
2. the JWT is signed (RS256) by a key listed in the JWKS that the OpenID metadata document
   ``https://login.botframework.com/v1/.well-known/openidconfiguration`` names in ``jwks_uri``; a key's
   ``endorsements``, when present, must include the activity's ``channelId``;
3. ``iss`` is ``https://api.botframework.com``; ``aud`` is the bot's Microsoft App id;
4. the token is within its ``nbf``/``exp`` lifetime, with 5 minutes of clock skew;
5. the ``serviceurl`` claim equals the activity's ``serviceUrl``.

Library choice. The Microsoft 365 Agents SDK for Python (microsoft/Agents-for-python) validates with PyJWT too:
``libraries/microsoft-agents-hosting-core/microsoft_agents/hosting/core/authorization/jwt/jwt_token_validator.py``,
``JwtTokenValidator.validate_token`` decodes with ``jwt.decode(..., algorithms=["RS256"], leeway=300,
options={"verify_aud": False})`` and checks the audience itself, the keys coming from a ``PyJWKClient`` per JWKS
URI (``_JwkClientManager.get_signing_key``), and ``jwt/_authorize_request.py``, ``_authorize_request`` answers 401
for a missing or non-Bearer header. It does not check ``iss`` (the issuer only picks the JWKS URI, hard-coded to
login.botframework.com), nor the ``serviceurl`` claim, nor key endorsements; it needs the SDK's
``AgentAuthConfiguration`` and pulls in the SDK's hosting stack. So it is not usable standalone for what we must
check, and adding the dependency would buy only the PyJWT call we make here. We use PyJWT (already locked:
``pyjwt[crypto]``) directly: ``jwt.decode`` does the signature, ``alg`` allow-list, lifetime, issuer and audience;
``jwt.PyJWKSet`` parses the published keys. No cryptography is written by hand. The key cache is ours (instead of
``PyJWKClient``) because it must read the JWKS URI from the OpenID metadata, take its HTTP fetch and clock from
the caller (tests, fakes), and refresh at most once per ``MIN_REFRESH_SECONDS`` when an unknown ``kid`` appears,
so a stream of forged kids cannot make every request fetch the keys again.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from shared.errors import IncomingRequestError, SignatureError

#: The Bot Framework's OpenID metadata for tokens the Bot Connector sends to bots.
OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
#: The documented clock skew: five minutes.
CLOCK_SKEW_SECONDS = 300
ALLOWED_ALGORITHMS = ("RS256",)
#: Published keys are cached for a day (the docs advise caching and refreshing daily) ...
KEY_CACHE_SECONDS = 24 * 3600
#: ... and an unknown key id triggers at most one refresh per this many seconds.
MIN_REFRESH_SECONDS = 300
#: The claim with the channel's service URL (lower case in real tokens).
SERVICE_URL_CLAIM = "serviceurl"

Fetch = Callable[[str], dict[str, Any]]


def fetch_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET a JSON document (the OpenID metadata or the JWKS); only https, or http on loopback for the fakes."""
    if not (url.startswith("https://") or url.startswith(("http://127.0.0.1", "http://localhost"))):
        raise ValueError(f"refusing to fetch keys from {url!r}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        document = json.loads(response.read())
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return document


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token that passed every check except the service URL (checked against the body)."""

    claims: dict[str, Any]
    endorsements: tuple[str, ...] | None

    @property
    def service_url(self) -> str | None:
        value = self.claims.get(SERVICE_URL_CLAIM)
        return value if isinstance(value, str) else None


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").casefold() == b.rstrip("/").casefold()


class BotTokenValidator:
    """Verifies Bot Connector JWTs against the published keys; thread-safe; one per process and metadata URL."""

    def __init__(self, app_id: str, *, metadata_url: str = OPENID_METADATA_URL, fetch: Fetch = fetch_json,
                 clock: Callable[[], float] = time.time, issuer: str = BOT_FRAMEWORK_ISSUER) -> None:
        if not app_id:
            raise ValueError("the bot's app id is required")
        self.app_id = app_id
        self.metadata_url = metadata_url
        self.issuer = issuer
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[jwt.PyJWK, tuple[str, ...] | None]] = {}
        self._fetched_at: float | None = None
        self.refreshes = 0

    # -- keys ---------------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        metadata = self._fetch(self.metadata_url)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("OpenID metadata has no jwks_uri")
        document = self._fetch(jwks_uri)
        keys: dict[str, tuple[jwt.PyJWK, tuple[str, ...] | None]] = {}
        for entry in document.get("keys") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            try:
                key = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError:
                continue  # a key type PyJWT cannot use is skipped, as PyJWKSet does
            endorsements = entry.get("endorsements")
            keys[entry["kid"]] = (key, tuple(str(e) for e in endorsements) if isinstance(endorsements, list)
                                  else None)
        self._keys = keys
        self._fetched_at = self._clock()
        self.refreshes += 1

    def _key(self, kid: str) -> tuple[jwt.PyJWK, tuple[str, ...] | None]:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= KEY_CACHE_SECONDS
            if stale or (kid not in self._keys and now - (self._fetched_at or 0.0) >= MIN_REFRESH_SECONDS):
                try:
                    self._refresh()
                except Exception as exc:
                    if not self._keys:  # our outage, not the caller's fault: 503, the channel retries
                        raise IncomingRequestError("the Bot Framework signing keys cannot be read; retry later",
                                                   status_code=503) from exc
            found = self._keys.get(kid)
        if found is None:
            raise SignatureError("token signed with an unknown key")
        return found

    # -- tokens -------------------------------------------------------------------------------------------------
    def verify_header(self, authorization: str | None) -> VerifiedToken:
        """Check ``Authorization: Bearer <JWT>`` without looking at the body; raise ``SignatureError`` (401)."""
        if not authorization:
            raise SignatureError("missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SignatureError("Authorization header is not a Bearer token")
        return self.verify(token.strip())

    def verify(self, token: str) -> VerifiedToken:
        """Signature, ``alg``, ``kid``, issuer, audience and lifetime (5 min skew); ``SignatureError`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise SignatureError("token is not a JWT") from None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise SignatureError(f"token algorithm {str(header.get('alg'))[:20]!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SignatureError("token names no signing key")
        key, endorsements = self._key(kid)
        try:
            claims = jwt.decode(
                token, key=key, algorithms=list(ALLOWED_ALGORITHMS), audience=self.app_id, issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise SignatureError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise SignatureError("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise SignatureError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise SignatureError("token has the wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise SignatureError("token signature does not match") from None
        except jwt.MissingRequiredClaimError as exc:
            raise SignatureError(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise SignatureError("token is invalid") from None
        return VerifiedToken(claims=claims, endorsements=endorsements)


def check_activity(token: VerifiedToken, activity: dict[str, Any]) -> None:
    """The checks that need the activity: ``serviceurl`` claim == ``serviceUrl``; the key endorses ``channelId``."""
    service_url = activity.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url:
        raise SignatureError("activity has no serviceUrl")
    if token.service_url is None:
        raise SignatureError("token has no serviceurl claim")
    if not _same_url(token.service_url, service_url):
        raise SignatureError("token serviceurl does not match the activity's serviceUrl")
    channel = activity.get("channelId")
    if token.endorsements is not None and channel not in token.endorsements:
        raise SignatureError("the signing key does not endorse this channel")
