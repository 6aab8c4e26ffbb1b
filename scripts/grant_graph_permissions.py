#!/usr/bin/env python3
"""Grant the app's managed identity the Microsoft Graph application permissions its Teams subscriptions need.

Run once after the first ``azd provision`` by someone who may grant application permissions in the tenant
(Privileged Role Administrator, Cloud Application Administrator or Global Administrator): a Bicep deployment
cannot do it with the rights azd users usually have (the Microsoft Graph Bicep extension would need the deploying
identity to hold AppRoleAssignment.ReadWrite.All). ``/api/health`` names any permission still missing.

Steps (each one an Azure CLI call; ``--dry-run`` prints them without changing anything):

1. the identity: ``AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID`` (an output of infra/main.bicep);
2. the Microsoft Graph service principal of the tenant and the ids of the app roles, looked up by value:
   ``az ad sp show --id 00000003-0000-0000-c000-000000000000`` (``appRoles[].value``/``id``);
3. the roles already assigned: ``GET https://graph.microsoft.com/v1.0/servicePrincipals/{id}/appRoleAssignments``;
4. each missing one: ``POST`` to the same URL with ``{"principalId", "resourceId", "appRoleId"}``;
5. restart the Function App: a managed identity's token carries the roles it had when it was issued.

Which permissions: ``ChannelMessage.Read.All`` for ``teams/{id}/channels/{id}/messages`` subscriptions and
message reads, ``Chat.Read.All`` for ``chats/{id}/messages``; from ``GRAPH_SUBSCRIPTION_RESOURCES`` (channel
messages when it is empty).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_URL = "https://graph.microsoft.com/v1.0"
#: Resource prefix (GRAPH_SUBSCRIPTION_RESOURCES) -> Graph application permission it needs.
PERMISSION_BY_RESOURCE = {"teams/": "ChannelMessage.Read.All", "chats/": "Chat.Read.All"}


class GrantError(RuntimeError):
    pass


def required_permissions(resources: str) -> list[str]:
    """Permissions for a comma-separated GRAPH_SUBSCRIPTION_RESOURCES value (channel messages when empty)."""
    wanted = {
        permission
        for resource in (r.strip().lstrip("/") for r in resources.split(",") if r.strip())
        for prefix, permission in PERMISSION_BY_RESOURCE.items()
        if resource.startswith(prefix)
    }
    return sorted(wanted or {"ChannelMessage.Read.All"})


def az(executable: str, *args: str) -> str:
    # The CLI resolved by shutil.which with arguments built here, never a shell string.
    result = subprocess.run([executable, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise GrantError(f"az {' '.join(args[:3])} failed: {result.stderr.strip()[-400:]}")
    return result.stdout


def grant(env: Mapping[str, str], executable: str, *, dry_run: bool = False) -> list[str]:
    """Assign the missing permissions; returns a line per permission saying what happened."""
    principal = env.get("AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID", "")
    if not principal:
        raise GrantError("AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID is not set: run `azd provision` first")
    graph = json.loads(az(executable, "ad", "sp", "show", "--id", GRAPH_APP_ID, "--output", "json"))
    roles = {
        role["value"]: role["id"]
        for role in graph.get("appRoles") or []
        if "Application" in (role.get("allowedMemberTypes") or [])
    }
    url = f"{GRAPH_URL}/servicePrincipals/{principal}/appRoleAssignments"
    assigned = json.loads(az(executable, "rest", "--method", "GET", "--url", url, "--output", "json"))
    have = {a["appRoleId"] for a in assigned.get("value") or [] if a.get("resourceId") == graph["id"]}
    report = []
    for permission in required_permissions(env.get("GRAPH_SUBSCRIPTION_RESOURCES", "")):
        role_id = roles.get(permission)
        if role_id is None:
            raise GrantError(f"Microsoft Graph has no application permission named {permission}")
        if role_id in have:
            report.append(f"{permission}: already granted")
            continue
        body = json.dumps({"principalId": principal, "resourceId": graph["id"], "appRoleId": role_id})
        if dry_run:
            report.append(f"{permission}: would run az rest --method POST --url {url} --body '{body}'")
            continue
        az(executable, "rest", "--method", "POST", "--url", url, "--headers", "Content-Type=application/json",
           "--body", body, "--output", "none")  # fmt: skip
        report.append(f"{permission}: granted")
    return report


def main(argv: Iterable[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", help="print the calls that would change the tenant")
    args = parser.parse_args(list(argv) if argv is not None else None)
    values = dict(os.environ if env is None else env)
    azd = shutil.which("azd")
    if "AZURE_USER_ASSIGNED_IDENTITY_PRINCIPAL_ID" not in values and azd:
        out = subprocess.run(  # noqa: S603 - the azd CLI resolved by shutil.which, fixed arguments
            [azd, "env", "get-values", "--output", "json"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0:
            values = {**json.loads(out.stdout), **values}
    executable = shutil.which("az")
    if executable is None:
        print("grant_graph_permissions: the Azure CLI (az) is not on PATH", file=sys.stderr)
        return 1
    try:
        report = grant(values, executable, dry_run=args.dry_run)
        for line in report:
            print(f"  {line}")
        app, group = values.get("AZURE_FUNCTION_APP_NAME"), values.get("AZURE_RESOURCE_GROUP")
        if not args.dry_run and any(line.endswith(": granted") for line in report) and app and group:
            az(executable, "functionapp", "restart", "--name", app, "--resource-group", group, "--output", "none")
            print(f"  restarted {app} so its next Graph token carries the new permissions")
    except GrantError as exc:
        print(f"grant_graph_permissions: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
