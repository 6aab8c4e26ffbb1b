"""Every Azure CLI command in the hooks (scripts/) and the docs (docs/, README.md) that acts on ARM resources names the
subscription azd deploys to (``--subscription``), and the resource group when it names a resource.

Without ``--subscription`` the CLI acts on its own default subscription (``az account set``; azure-cli core
``register_global_subscription_argument`` adds the argument to every command), which need not be azd's: the first
``azd up`` then failed at postprovision (``az functionapp restart``: resource group not found). Commands that do not
go through ARM are exempt: sign-in and account selection, Microsoft Graph (``az ad``, ``az rest`` to
graph.microsoft.com), Key Vault's data plane (``az keyvault secret``), CLI housekeeping. The Python hooks are proven
by behaviour instead (tests/test_provision_secrets.py, tests/test_grant_graph_permissions.py: the fake CLI refuses an
ARM call in the wrong subscription); their ``az`` calls are argument lists, not text this scan can read.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (group, subgroup-or-None) prefixes that never reach Azure Resource Manager.
NOT_ARM = {
    ("login", None), ("logout", None), ("account", None), ("ad", None), ("version", None), ("extension", None),
    ("config", None), ("bicep", None), ("upgrade", None), ("keyvault", "secret"), ("keyvault", "key"),
    ("keyvault", "certificate"),
}  # fmt: skip
#: Group words that take a resource by name but are subscription-scoped (no resource group).
NO_GROUP_NEEDED = {("keyvault", "recover"), ("keyvault", "purge"), ("keyvault", "show-deleted")}
COMMAND = re.compile(r"(?:^|[\s`$(;|&])az\s+([a-z][a-z0-9-]*)(?:\s+([a-z][a-z0-9-]*))?")


def scanned_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted(p for p in (ROOT / "scripts").iterdir() if p.suffix in (".sh", ".ps1"))
    return files


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with shell continuations (``\\`` or PowerShell's backtick) joined, numbered by their first line."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        stripped = line.rstrip()
        if stripped.endswith(("\\", " `")):
            pending += stripped[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def findings(text: str, name: str) -> list[str]:
    """``name:line: az <group> ...`` for each ARM-acting command lacking --subscription (or the resource group)."""
    found = []
    for number, line in logical_lines(text):
        for match in COMMAND.finditer(line):
            group, sub = match.group(1), match.group(2)
            if (group, None) in NOT_ARM or (group, sub) in NOT_ARM:
                continue
            tail = line[line.index("az", match.start()) :]
            end = re.search(r"`|\s[|;&]\s|\s#|$", tail[3:])
            command = tail[: 3 + end.start()] if end else tail
            if group == "rest" and "graph.microsoft.com" in command:
                continue
            if "--subscription" not in command:
                found.append(f"{name}:{number}: {command.strip()} (no --subscription)")
            elif (
                re.search(r"\s(-n|--name)\s", command)
                and not re.search(r"\s(-g|--resource-group)\s", command)
                and (group, sub) not in NO_GROUP_NEEDED
            ):
                found.append(f"{name}:{number}: {command.strip()} (no --resource-group)")
    return found


def test_every_arm_command_in_scripts_and_docs_names_the_subscription() -> None:
    problems = [p for path in scanned_files() for p in findings(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


def test_the_scan_finds_what_it_must() -> None:
    doc = (
        "Restart it:\n"
        "```sh\n"
        'az functionapp restart -n "$APP" -g "$RG"\n'
        "az keyvault recover --name kv1\n"
        'az functionapp restart --name app \\\n  --subscription "$AZURE_SUBSCRIPTION_ID"\n'
        "```\n"
        "or `az cognitiveservices model list -l swedencentral -o table`.\n"
    )
    assert findings(doc, "doc.md") == [
        'doc.md:3: az functionapp restart -n "$APP" -g "$RG" (no --subscription)',
        "doc.md:4: az keyvault recover --name kv1 (no --subscription)",
        'doc.md:5: az functionapp restart --name app    --subscription "$AZURE_SUBSCRIPTION_ID" (no --resource-group)',
        "doc.md:8: az cognitiveservices model list -l swedencentral -o table (no --subscription)",
    ]


def test_the_scan_leaves_non_arm_commands_alone() -> None:
    doc = (
        'az login --tenant "$T"\n'
        "az keyvault secret set --vault-name kv --name n --file f\n"
        "az ad sp show --id 00000003-0000-0000-c000-000000000000 --query id -o tsv\n"
        'az rest --method GET --url "https://graph.microsoft.com/v1.0/servicePrincipals/$MI/appRoleAssignments"\n'
        'az functionapp restart -n app -g rg --subscription "$AZURE_SUBSCRIPTION_ID"\n'
        "the `az` CLI and prose about az login\n"
    )
    assert findings(doc, "doc.md") == []
