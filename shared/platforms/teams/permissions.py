"""Microsoft Graph application permissions the app's managed identity needs, and which ones its token lacks.

Graph permissions are Entra app roles on the identity's service principal, granted by a tenant admin with
``scripts/grant_graph_permissions.py`` (docs/deploy.md), not by the Bicep deployment. An app-only access token
lists the roles it was issued with in its ``roles`` claim, so the app can tell which permission is missing
without a failing Graph call: ``/api/health`` names it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from shared.settings import Settings

#: Subscription resource prefix (GRAPH_SUBSCRIPTION_RESOURCES) -> the application permission it needs, to
#: subscribe and to read the messages a notification points at. scripts/grant_graph_permissions.py grants the same.
PERMISSION_BY_RESOURCE: dict[str, str] = {"teams/": "ChannelMessage.Read.All", "chats/": "Chat.Read.All"}
#: Needed when Graph is configured without resources (channel messages are the Teams feature).
DEFAULT_PERMISSION = "ChannelMessage.Read.All"
MICROSOFT_GRAPH_HOST = "graph.microsoft.com"
GRANT_HINT = "run scripts/grant_graph_permissions.py as a tenant admin (docs/deploy.md, Microsoft Graph permissions)"

#: Returns an access token for Microsoft Graph (``https://graph.microsoft.com/.default``).
GraphTokenProvider = Callable[[], Awaitable[str]]


def required_graph_permissions(resources: str | None) -> list[str]:
    """Permissions for a comma-separated GRAPH_SUBSCRIPTION_RESOURCES value (channel messages when empty)."""
    wanted = {
        permission
        for resource in (r.strip().lstrip("/") for r in (resources or "").split(",") if r.strip())
        for prefix, permission in PERMISSION_BY_RESOURCE.items()
        if resource.startswith(prefix)
    }
    return sorted(wanted or {DEFAULT_PERMISSION})


def token_roles(access_token: str) -> frozenset[str]:
    """The ``roles`` claim of a JWT access token (read, not verified: the token came from our own credential)."""
    parts = access_token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT access token")
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("unreadable JWT payload") from exc
    roles = payload.get("roles") if isinstance(payload, dict) else None
    return frozenset(str(role) for role in roles) if isinstance(roles, list) else frozenset()


def managed_identity_graph_token(settings: Settings) -> GraphTokenProvider:
    """A provider that asks the app's identity (DefaultAzureCredential, ``AZURE_CLIENT_ID``) for a Graph token."""

    async def token() -> str:
        from azure.identity.aio import DefaultAzureCredential

        from shared.platforms.teams.graph import GRAPH_SCOPE

        async with DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id) as credential:
            return (await credential.get_token(GRAPH_SCOPE)).token

    return token


async def graph_permission_status(settings: Settings, token: GraphTokenProvider | None) -> dict[str, Any]:
    """The Graph entry of ``/api/health``: ``status`` is ``not_configured``, ``not_checked`` (a Graph other than
    Microsoft's, e.g. a local fake), ``ok``, ``missing_permissions`` (naming them) or ``token_unavailable``."""
    if not (settings.graph_notification_url or settings.graph_subscription_resources):
        return {"status": "not_configured"}
    required = required_graph_permissions(settings.graph_subscription_resources)
    if token is None:
        if urlparse(settings.graph_api_url).hostname != MICROSOFT_GRAPH_HOST:
            return {"status": "not_checked", "reason": "GRAPH_API_URL is not Microsoft Graph"}
        token = managed_identity_graph_token(settings)
    try:
        roles = token_roles(await token())
    except Exception as exc:  # reported by type only: a credential error message can carry tenant details
        return {"status": "token_unavailable", "error": type(exc).__name__, "required_permissions": required}
    missing = [permission for permission in required if permission not in roles]
    if missing:
        return {"status": "missing_permissions", "missing_permissions": missing, "fix": GRANT_HINT}
    return {"status": "ok", "permissions": required}


def graph_unhealthy(status: dict[str, Any]) -> bool:
    """Whether the Graph entry makes the app unhealthy."""
    return status.get("status") in ("missing_permissions", "token_unavailable")
