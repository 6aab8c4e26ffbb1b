"""Role contract: every Azure data-plane client the Python code creates has its role(s) in infra/app/rbac.bicep.

The table below is the one place to extend when code starts using a new Azure client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RBAC = ROOT / "infra" / "app" / "rbac.bicep"
SCANNED = ("shared", "activities", "triggers", "orchestrators", "function_app.py")

# Role name -> role definition id (Azure RBAC built-in roles; Cosmos DB's is a SQL role of the account).
ROLE_IDS: dict[str, str] = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Cosmos DB Built-in Data Contributor": "00000000-0000-0000-0000-000000000002",
    # The deploying user only: scripts/postprovision.* writes the Key Vault secrets with `az keyvault secret set`.
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
}

# Client (a name the code calls or imports) -> roles its identity needs. Extend here.
CLIENT_ROLES: dict[str, tuple[str, ...]] = {
    "CosmosClient": ("Cosmos DB Built-in Data Contributor",),
    "ServiceBusClient": ("Azure Service Bus Data Sender", "Azure Service Bus Data Receiver"),
    "AzureOpenAI": ("Cognitive Services OpenAI User",),
    "AsyncAzureOpenAI": ("Cognitive Services OpenAI User",),
    # OpenAI(base_url=.../openai/v1, api_key=get_bearer_token_provider(...)) is Azure OpenAI with an Entra token.
    "get_bearer_token_provider": ("Cognitive Services OpenAI User",),
    "BlobServiceClient": ("Storage Blob Data Owner",),
    "ContainerClient": ("Storage Blob Data Owner",),
    "QueueServiceClient": ("Storage Queue Data Contributor",),
    "QueueClient": ("Storage Queue Data Contributor",),
    "TableServiceClient": ("Storage Table Data Contributor",),
    "TableClient": ("Storage Table Data Contributor",),
    "SecretClient": ("Key Vault Secrets User",),
    "configure_azure_monitor": ("Monitoring Metrics Publisher",),
    # Microsoft Graph permissions are Entra application permissions granted by an admin, not Azure RBAC.
    "GraphServiceClient": (),
}

# Needed whatever the code does: the Durable task hub and host storage (identity-based AzureWebJobsStorage),
# Key Vault references in app settings, Entra-authenticated ingestion by the Functions host.
ALWAYS: tuple[str, ...] = (
    "Storage Blob Data Owner",
    "Storage Queue Data Contributor",
    "Storage Table Data Contributor",
    "Key Vault Secrets User",
    "Monitoring Metrics Publisher",
)

# Azure SDK client classes imported by the code must be in CLIENT_ROLES (credentials are not clients).
AZURE_IMPORT = re.compile(r"^\s*from\s+(azure\.[\w.]+)\s+import\s+\(?([^)\n]+)", re.MULTILINE)
NOT_CLIENTS = re.compile(r"Credential$|Error$|Exception$|^(PartitionKey|ServiceBusMessage|ContentSettings)$")


def python_sources(root: Path = ROOT) -> dict[str, str]:
    """Path -> text of every Python file the deployed app runs."""
    files: dict[str, str] = {}
    for entry in SCANNED:
        path = root / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.exists() else []
        for file in candidates:
            files[str(file.relative_to(root))] = file.read_text(encoding="utf-8")
    return files


def clients_used(sources: Mapping[str, str]) -> dict[str, list[str]]:
    """Client name -> files that use it (word match on the names in CLIENT_ROLES)."""
    used: dict[str, list[str]] = {}
    for path, text in sources.items():
        for client in CLIENT_ROLES:
            if re.search(rf"\b{re.escape(client)}\b", text):
                used.setdefault(client, []).append(path)
    return used


def unmapped_azure_clients(sources: Mapping[str, str]) -> dict[str, str]:
    """Azure SDK names ending in Client that the code imports but CLIENT_ROLES does not know."""
    unknown: dict[str, str] = {}
    for path, text in sources.items():
        for match in AZURE_IMPORT.finditer(text):
            for raw in match.group(2).split(","):
                name = raw.strip().split(" as ")[0].strip()
                if name.endswith("Client") and not NOT_CLIENTS.search(name) and name not in CLIENT_ROLES:
                    unknown[name] = path
    return unknown


def required_roles(clients: Iterable[str]) -> set[str]:
    """Roles needed for the given clients plus the always-needed ones."""
    roles = set(ALWAYS)
    for client in clients:
        roles.update(CLIENT_ROLES[client])
    return roles


def assigned_roles(rbac_text: str) -> set[str]:
    """Role names whose id appears in rbac.bicep on a line whose comment names the role, and is used."""
    found: set[str] = set()
    for role, role_id in ROLE_IDS.items():
        line = re.search(rf"^\s*(?:var\s+)?(\w+)\s*[:=]\s*'{role_id}'\s*//\s*(.+)$", rbac_text, re.MULTILINE)
        if not line or line.group(2).strip() != role:
            continue
        symbol = line.group(1)
        # The var/key must feed an assignment: roles.<key> or the variable name used elsewhere.
        uses = len(re.findall(rf"\b{symbol}\b", rbac_text))
        if uses >= 2:
            found.add(role)
    return found


def missing_roles(required: Iterable[str], rbac_text: str) -> list[str]:
    """Required roles not assigned in the given rbac.bicep text (pure)."""
    return sorted(set(required) - assigned_roles(rbac_text))


def test_every_client_in_the_mapping_names_known_roles() -> None:
    for client, roles in CLIENT_ROLES.items():
        for role in roles:
            assert role in ROLE_IDS, f"{client}: unknown role {role}"


def test_no_unmapped_azure_client_in_code() -> None:
    unknown = unmapped_azure_clients(python_sources())
    assert not unknown, f"add these Azure clients to CLIENT_ROLES: {unknown}"


def test_rbac_assigns_every_role_the_code_needs() -> None:
    used = clients_used(python_sources())
    missing = missing_roles(required_roles(used), RBAC.read_text())
    assert not missing, f"roles missing from infra/app/rbac.bicep: {missing} (clients in use: {sorted(used)})"


def test_rbac_assigns_every_role_of_the_platform() -> None:
    # The deployed app will create every mapped client (Cosmos, Service Bus, OpenAI, Key Vault): require all.
    missing = missing_roles(ROLE_IDS, RBAC.read_text())
    assert not missing, f"roles missing from infra/app/rbac.bicep: {missing}"


@pytest.mark.parametrize("role", sorted(ROLE_IDS))
def test_removing_a_role_from_rbac_fails_naming_it(role: str) -> None:
    text = RBAC.read_text()
    broken = "\n".join(line for line in text.splitlines() if ROLE_IDS[role] not in line)
    assert missing_roles(ROLE_IDS, broken) == [role]


def test_scanner_maps_a_cosmos_client_to_its_role() -> None:
    sources = {"shared/store/cosmos.py": "from azure.cosmos import CosmosClient\nclient = CosmosClient(url, cred)\n"}
    used = clients_used(sources)
    assert set(used) == {"CosmosClient"}
    assert "Cosmos DB Built-in Data Contributor" in required_roles(used)


def test_scanner_flags_an_unmapped_azure_client() -> None:
    sources = {"shared/x.py": "from azure.data.tables import TableServiceClient, UnknownThingClient\n"}
    assert unmapped_azure_clients(sources) == {"UnknownThingClient": "shared/x.py"}


def test_assignment_names_are_deterministic_guids() -> None:
    text = RBAC.read_text()
    names = re.findall(r"^\s+name:\s*(.+)$", text, re.MULTILINE)
    assignment_names = [n for n in names if "guid(" in n]
    assert len(assignment_names) == 10
    assert all(re.fullmatch(r"guid\(\w+\.id, p\.id, [\w.]+\)", n.strip()) for n in assignment_names)


def test_only_the_deploying_user_may_write_secrets() -> None:
    # The app identity reads secrets (Secrets User); write access (Secrets Officer) is the deploying user's alone.
    text = RBAC.read_text()
    block = re.search(r"^resource keyVaultSecretsOfficer .*?\[for p in (\w+):", text, re.MULTILINE)
    assert block, "keyVaultSecretsOfficer assignment not found in rbac.bicep"
    assert block.group(1) == "userPrincipal"
