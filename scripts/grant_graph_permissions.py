#!/usr/bin/env python3
"""Grant the app's managed identity the Microsoft Graph application permissions its Teams subscriptions need.

Run once after the first ``azd provision`` by someone who may grant Microsoft Graph application permissions in the
tenant: a Privileged Role Administrator or a Global Administrator. Cloud Application Administrator and Application
Administrator may consent to any API's permissions except Microsoft Graph app roles (Microsoft Learn, "Grant
tenant-wide admin consent to an application", Prerequisites: learn.microsoft.com/entra/identity/enterprise-apps/
grant-admin-consent; "Least privileged roles by task": .../role-based-access-control/delegate-by-task). A Bicep
deployment cannot do it with the rights azd users usually have (the Microsoft Graph Bicep extension would need the
deploying identity to hold AppRoleAssignment.ReadWrite.All). ``/api/health`` names any permission still missing.

Without that role Graph answers 403 ``Authorization_RequestDenied``: the script then grants nothing, prints the
exact commands an administrator must run (ids filled in) and exits 0 when run by the postprovision hook
(``--from-hook``: ``azd up`` finishes; the app runs without Teams reads until the grant), 3 when run by hand.

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


class NotAllowed(GrantError):
    """Graph refused the assignment for lack of a directory role; ``commands`` are what an administrator runs."""

    def __init__(self, commands: list[str]) -> None:
        super().__init__("insufficient privileges to grant Microsoft Graph application permissions")
        self.commands = commands


DENIED = ("Authorization_RequestDenied", "Insufficient privileges", "Forbidden")


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
    missing: list[tuple[str, str]] = []  # (permission, request body) not yet granted
    for permission in required_permissions(env.get("GRAPH_SUBSCRIPTION_RESOURCES", "")):
        role_id = roles.get(permission)
        if role_id is None:
            raise GrantError(f"Microsoft Graph has no application permission named {permission}")
        if role_id in have:
            report.append(f"{permission}: already granted")
            continue
        body = json.dumps({"principalId": principal, "resourceId": graph["id"], "appRoleId": role_id})
        missing.append((permission, body))
    for index, (permission, body) in enumerate(missing):
        if dry_run:
            report.append(f"{permission}: would run az rest --method POST --url {url} --body '{body}'")
            continue
        try:
            az(executable, "rest", "--method", "POST", "--url", url, "--headers", "Content-Type=application/json",
               "--body", body, "--output", "none")  # fmt: skip
        except GrantError as exc:
            if not any(word in str(exc) for word in DENIED):
                raise
            raise NotAllowed(admin_commands(env, url, [b for _, b in missing[index:]])) from exc
        report.append(f"{permission}: granted")
    return report


def admin_commands(env: Mapping[str, str], url: str, bodies: list[str]) -> list[str]:
    """The commands a Privileged Role Administrator or Global Administrator runs to finish the grant by hand."""
    tenant = env.get("AZURE_TENANT_ID", "<tenant-id>")
    commands = [f"az login --tenant {tenant}"]
    commands += [
        f"az rest --method POST --url {url} --headers Content-Type=application/json --body '{body}'" for body in bodies
    ]
    app, group = env.get("AZURE_FUNCTION_APP_NAME"), env.get("AZURE_RESOURCE_GROUP")
    subscription = env.get("AZURE_SUBSCRIPTION_ID", "<subscription-id>")
    if app and group:
        commands.append(f"az functionapp restart --name {app} --resource-group {group} --subscription {subscription}")
    return commands


def main(argv: Iterable[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", help="print the calls that would change the tenant")
    parser.add_argument(
        "--from-hook", action="store_true", help="run by azd postprovision: lacking the role is not a failure"
    )
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
        subscription = values.get("AZURE_SUBSCRIPTION_ID", "")
        if not args.dry_run and any(line.endswith(": granted") for line in report) and app and group:
            if not subscription:
                raise GrantError("AZURE_SUBSCRIPTION_ID is not set: cannot restart the app in the right subscription")
            az(executable, "functionapp", "restart", "--name", app, "--resource-group", group,
               "--subscription", subscription, "--output", "none")  # fmt: skip
            print(f"  restarted {app} so its next Graph token carries the new permissions")
    except NotAllowed as exc:
        print(
            "grant_graph_permissions: NOT granted: your account may not grant Microsoft Graph application permissions "
            "(Graph answered Authorization_RequestDenied). A Privileged Role Administrator or Global Administrator "
            "of the tenant must run:",
            file=sys.stderr,
        )
        for command in exc.commands:
            print(f"  {command}", file=sys.stderr)
        print("Until then GET /api/health names the missing permission(s).", file=sys.stderr)
        return 0 if args.from_hook else 3
    except GrantError as exc:
        print(f"grant_graph_permissions: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
