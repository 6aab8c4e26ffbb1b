"""scripts/grant_graph_permissions.py against the fake Azure CLI (tools/fakes/azure_cli.py, answering Graph's
appRoleAssignments API): it grants exactly the application permissions the configured subscriptions need, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "grant_graph_permissions.py"
FAKE_AZ = ROOT / "tools" / "fakes" / "azure_cli.py"
GRAPH: dict[str, Any] = {
    "id": "9f1b3c2e-0000-4000-8000-00000000a001",
    "appId": "00000003-0000-0000-c000-000000000000",
    "appRoles": [
        {"id": "7b2449af-6ccd-4f4d-9f78-e550c193f0d1", "value": "ChannelMessage.Read.All",
         "allowedMemberTypes": ["Application"]},
        {"id": "6b7d71aa-70aa-4810-a8d9-5d9fb2830017", "value": "Chat.Read.All", "allowedMemberTypes": ["Application"]},
        {"id": "df021288-bdef-4463-88db-98f22de89214", "value": "User.Read.All", "allowedMemberTypes": ["Application"]},
    ],
}  # fmt: skip
IDENTITY = "5a0c6e1d-1111-4222-8333-444455556666"
SUBSCRIPTION = "0b6f1c9e-2d3a-4e5f-8a7b-1c2d3e4f5a6b"
TENANT = "72f988bf-0000-4000-8000-000000000001"


class Tenant:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        az.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AZ}" "$@"\n')
        az.chmod(0o755)
        self.state_file = tmp / "az-state.json"
        self.state_file.write_text(json.dumps({
            "vaults": {}, "restarts": [], "calls": [], "refuse": 0, "service_principals": [GRAPH],
            # The CLI's default subscription is another one than azd's; the caller holds a role that may grant.
            "default_subscription": "9c8b7a6f-5e4d-4c3b-8a29-1f0e9d8c7b6a",
            "function_apps": {"func-api-test": {"subscription": SUBSCRIPTION, "resource_group": "rg-test"}},
            "caller_directory_roles": ["Privileged Role Administrator"],
        }))  # fmt: skip
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_AZ_STATE": str(self.state_file),
            "AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID": IDENTITY,
            "AZURE_FUNCTION_APP_NAME": "func-api-test",
            "AZURE_RESOURCE_GROUP": "rg-test",
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "AZURE_TENANT_ID": TENANT,
        }

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), *args], env={**self.env, **extra}, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def set_roles(self, *roles: str) -> None:
        state = self.state
        state["caller_directory_roles"] = list(roles)
        self.state_file.write_text(json.dumps(state))

    def granted(self) -> set[str]:
        names = {role["id"]: role["value"] for role in GRAPH["appRoles"]}
        return {names[a["appRoleId"]] for a in self.state.get("app_role_assignments", [])}


@pytest.fixture
def tenant(tmp_path: Path) -> Tenant:
    return Tenant(tmp_path)


def test_grants_channel_messages_by_default_and_restarts(tenant: Tenant) -> None:
    result = tenant.run()
    assert result.returncode == 0, result.stderr
    assert tenant.granted() == {"ChannelMessage.Read.All"}
    assert tenant.state["restarts"] == [["func-api-test", "rg-test"]]


def test_chat_subscriptions_need_chat_read_all(tenant: Tenant) -> None:
    resources = "teams/t1/channels/19:c1@thread.tacv2/messages, chats/19:x@thread.v2/messages"
    assert tenant.run(GRAPH_SUBSCRIPTION_RESOURCES=resources).returncode == 0
    assert tenant.granted() == {"ChannelMessage.Read.All", "Chat.Read.All"}


def test_second_run_changes_nothing(tenant: Tenant) -> None:
    assert tenant.run().returncode == 0
    again = tenant.run()
    assert again.returncode == 0, again.stderr
    assert "already granted" in again.stdout
    assert len(tenant.state["app_role_assignments"]) == 1
    assert len(tenant.state["restarts"]) == 1


def test_dry_run_changes_nothing(tenant: Tenant) -> None:
    result = tenant.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would run az rest --method POST" in result.stdout
    assert tenant.granted() == set()


def test_without_the_identity_it_says_what_to_do(tenant: Tenant) -> None:
    result = tenant.run(AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID="")
    assert result.returncode == 1
    assert "azd provision" in result.stderr


@pytest.mark.parametrize("role", ["Cloud Application Administrator", "Application Administrator"])
def test_without_a_role_that_may_grant_graph_app_roles_it_prints_the_admin_commands(tenant: Tenant, role: str) -> None:
    tenant.set_roles(role)
    by_hand = tenant.run()
    assert by_hand.returncode == 3
    from_hook = tenant.run("--from-hook")
    assert from_hook.returncode == 0, from_hook.stderr  # azd up finishes
    assert tenant.granted() == set()
    assert tenant.state["restarts"] == []
    text = from_hook.stderr
    assert "Privileged Role Administrator or Global Administrator" in text
    assert f"az login --tenant {TENANT}" in text
    url = f"https://graph.microsoft.com/v1.0/servicePrincipals/{IDENTITY}/appRoleAssignments"
    body = json.dumps({"principalId": IDENTITY, "resourceId": GRAPH["id"], "appRoleId": GRAPH["appRoles"][0]["id"]})
    assert f"az rest --method POST --url {url} --headers Content-Type=application/json --body '{body}'" in text
    assert f"az functionapp restart --name func-api-test --resource-group rg-test --subscription {SUBSCRIPTION}" in text
    assert "/api/health" in text


def test_the_printed_commands_work_for_an_administrator(tenant: Tenant) -> None:
    tenant.set_roles("Cloud Application Administrator")
    lines = [line.strip() for line in tenant.run("--from-hook").stderr.splitlines()]
    commands = [line for line in lines if line.startswith("az rest") or line.startswith("az functionapp")]
    tenant.set_roles("Global Administrator")
    for command in commands:
        result = subprocess.run(["sh", "-c", command], env=tenant.env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, (command, result.stderr)
    assert tenant.granted() == {"ChannelMessage.Read.All"}
    assert tenant.state["restarts"] == [["func-api-test", "rg-test"]]


def test_postprovision_passes_from_hook() -> None:
    for name in ("postprovision.sh", "postprovision.ps1"):
        assert "scripts/grant_graph_permissions.py --from-hook" in (ROOT / "scripts" / name).read_text()
