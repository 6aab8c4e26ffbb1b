"""The Graph permission check of /api/health: the identity's token roles against what the configured Teams
subscriptions need, naming the missing permission; and the grant script asks for the same permissions."""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from shared.platforms.teams.permissions import (
    PERMISSION_BY_RESOURCE,
    graph_permission_status,
    required_graph_permissions,
    token_roles,
)
from shared.services import Services, set_services
from shared.settings import Settings
from shared.store.memory import MemoryStore
from tests.test_http_api import call, request
from tools.simulate_tasks import TASK_SETTINGS
from tools.world import World, build_world

ROOT = Path(__file__).resolve().parents[1]
CHANNEL = "teams/2f5c0e1a-1111-4222-8333-444455556666/channels/19:abc@thread.tacv2/messages"
CHAT = "chats/19:def@thread.v2/messages"


def jwt(claims: dict[str, Any]) -> str:
    """An access token shaped like Entra's (header.payload.signature, base64url without padding)."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def provider(token: str) -> Callable[[], Awaitable[str]]:
    async def get() -> str:
        return token

    return get


@pytest.fixture
def world() -> Iterator[World]:
    with build_world(extra_settings=TASK_SETTINGS) as built:
        yield built


def graph_settings(world: World, resources: str) -> Settings:
    return world.settings.model_copy(
        update={"graph_api_url": "https://graph.microsoft.com/v1.0", "graph_subscription_resources": resources}
    )


async def health(services: Services) -> tuple[int, dict[str, Any]]:
    set_services(services)
    try:
        return await call("api_health", request("GET", "/api/health"))
    finally:
        set_services(None)


def test_required_permissions_follow_the_resources() -> None:
    assert required_graph_permissions(None) == ["ChannelMessage.Read.All"]
    assert required_graph_permissions(CHANNEL) == ["ChannelMessage.Read.All"]
    assert required_graph_permissions(f"{CHANNEL}, /{CHAT}") == ["ChannelMessage.Read.All", "Chat.Read.All"]
    assert required_graph_permissions(CHAT) == ["Chat.Read.All"]


def test_token_roles_reads_the_roles_claim() -> None:
    token = jwt({"aud": "https://graph.microsoft.com", "roles": ["Chat.Read.All", "User.Read.All"]})
    assert token_roles(token) == {"Chat.Read.All", "User.Read.All"}
    assert token_roles(jwt({"aud": "https://graph.microsoft.com"})) == frozenset()
    with pytest.raises(ValueError, match="JWT"):
        token_roles("opaque-token")


async def test_health_names_the_missing_permission(world: World) -> None:
    token = jwt({"roles": ["ChannelMessage.Read.All"]})
    services = Services(settings=graph_settings(world, f"{CHANNEL},{CHAT}"), store=MemoryStore(),
                        graph_token=provider(token))  # fmt: skip
    status, answer = await health(services)
    assert status == 503
    assert answer["status"] == "unhealthy"
    assert answer["graph"]["status"] == "missing_permissions"
    assert answer["graph"]["missing_permissions"] == ["Chat.Read.All"]
    assert "grant_graph_permissions" in answer["graph"]["fix"]


async def test_health_is_200_when_the_token_carries_the_roles(world: World) -> None:
    token = jwt({"roles": ["ChannelMessage.Read.All"]})
    services = Services(settings=graph_settings(world, CHANNEL), store=MemoryStore(), graph_token=provider(token))
    status, answer = await health(services)
    assert status == 200, answer
    assert answer["graph"] == {"status": "ok", "permissions": ["ChannelMessage.Read.All"]}


async def test_health_is_503_when_no_graph_token_can_be_had(world: World) -> None:
    async def refused() -> str:
        raise ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")

    services = Services(settings=graph_settings(world, CHANNEL), store=MemoryStore(), graph_token=refused)
    status, answer = await health(services)
    assert status == 503
    assert answer["graph"]["status"] == "token_unavailable"
    assert answer["graph"]["error"] == "ClientAuthenticationError"


async def test_graph_not_configured_is_not_checked() -> None:
    settings = Settings.model_validate({"LINEAGE_STORE": "memory"})
    assert await graph_permission_status(settings, None) == {"status": "not_configured"}


def test_the_grant_script_grants_what_the_health_check_requires() -> None:
    path = ROOT / "scripts" / "grant_graph_permissions.py"
    spec = importlib.util.spec_from_file_location("grant_graph_permissions", path)
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.PERMISSION_BY_RESOURCE == PERMISSION_BY_RESOURCE
    for resources in ("", CHANNEL, CHAT, f"{CHANNEL},{CHAT}"):
        assert script.required_permissions(resources) == required_graph_permissions(resources)
