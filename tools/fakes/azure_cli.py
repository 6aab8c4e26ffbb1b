#!/usr/bin/env python3
"""A stateful stand-in for the few Azure CLI commands the azd hook scripts run (scripts/provision_secrets.py,
scripts/grant_graph_permissions.py), for tests.

Run as the ``az`` executable (a test puts a wrapper on PATH); state lives in the JSON file named by
``FAKE_AZ_STATE`` (vault secrets with versions and tags, restarts, every call). Behaviour modelled on Azure/azure-cli
``src/azure-cli/azure/cli/command_modules/keyvault``:

* ``_params.py`` ``load_arguments``: ``keyvault secret set`` takes ``--vault-name``, ``--name/-n``, ``--value``,
  ``--file/-f``, ``--encoding/-e`` (utf-8 default; utf-8, utf-16le, utf-16be, ascii, base64, hex),
  ``--content-type/--description``, ``--tags``, ``--expires``, ``--not-before``, ``--disabled``;
* ``_validators.py`` ``process_secret_set_namespace``: exactly one of ``--value``/``--file``; a text encoding
  reads the file in text mode (``open(path, 'r')``: universal newlines) and the encoding is saved as the
  ``file-encoding`` tag;
* ``keyvault secret list`` returns ``id``/``name``/``tags``/``contentType``/``attributes``, never a value;
* ``ad sp show --id <appId>`` returns the service principal (``id``, ``appId``, ``appRoles`` with
  ``allowedMemberTypes``/``value``/``id``) seeded in the state's ``service_principals``;
* ``rest --method GET|POST --url https://graph.microsoft.com/v1.0/servicePrincipals/{id}/appRoleAssignments``
  answers as Microsoft Graph does: ``{"value": [...]}``; a POST needs ``principalId`` equal to ``{id}``,
  ``resourceId`` and ``appRoleId`` of an existing app role, and an assignment that exists already is a 400
  ``Permission being assigned already exists on the object``.

* ``--subscription`` is accepted by every command (azure-cli core ``register_global_subscription_argument`` adds it
  to each command of the table, arg group "Global"); without it an ARM command acts on the CLI's default
  subscription (``az account set``): here ``default_subscription`` in the state;
* ``functionapp restart`` (ARM: ``POST .../sites/{name}/restart``) finds the app in ``function_apps``
  (``{name: {"subscription", "resource_group"}}``) of the subscription it resolved; another subscription's app is
  ``(ResourceGroupNotFound) Resource group '<rg>' could not be found.`` (exit 3), the refusal a deployer whose
  default subscription is not the one azd deployed to gets;
* ``rest --method POST`` of an app role assignment needs the caller to hold a directory role that may grant
  Microsoft Graph app roles (``caller_directory_roles`` in the state: Privileged Role Administrator or Global
  Administrator; Microsoft Learn "Grant tenant-wide admin consent to an application", Prerequisites: Cloud
  Application Administrator and Application Administrator consent to any API except Microsoft Graph app roles);
  otherwise Graph answers 403 ``Authorization_RequestDenied`` "Insufficient privileges to complete the operation.".

Refusals (each from the source above):

| call | refused when | answer |
|---|---|---|
| any | unknown command or argument | exit 2, ``unrecognized arguments`` |
| ``keyvault secret *`` | ``refuse`` > 0 (role assignment propagating) | exit 1, ``(Forbidden) Caller is not ...`` |
| ``keyvault secret set`` | both or neither of ``--value``/``--file`` | exit 1, ``incorrect usage`` |
| ``functionapp restart`` | app not in the resolved subscription | exit 3, ``(ResourceGroupNotFound)`` |
| ``ad sp show`` | unknown id | exit 3, ``doesn't exist`` |
| ``rest`` POST appRoleAssignments | caller lacks the role / bad ids / exists already | exit 1, Graph's 403 / 400 |

Anything else exits 2 the way the CLI does for an unknown command or argument (the fake accepts nothing it does
not model). ``refuse`` in the state makes the next N Key Vault calls fail as a role assignment that has not
propagated yet would (``(Forbidden) Caller is not authorized``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

#: Directory roles that may grant Microsoft Graph application permissions (app role assignments on Graph).
GRAPH_GRANT_ROLES = ("Privileged Role Administrator", "Global Administrator")
TEXT_ENCODINGS = ("utf-8", "utf-16le", "utf-16be", "ascii")
ENCODINGS = (*TEXT_ENCODINGS, "base64", "hex")


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {"vaults": {}, "restarts": [], "calls": [], "refuse": 0}


def fail(message: str, code: int = 2) -> int:
    print(f"ERROR: {message}", file=sys.stderr)
    return code


def parse(args: list[str], flags: dict[str, str], multi: Collection[str] = ()) -> dict[str, Any] | str:
    """``--flag value`` pairs (aliases mapped by ``flags``); a string is the CLI's error."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        flag = args[i]
        if flag not in flags:
            return f"unrecognized arguments: {flag}"
        name = flags[flag]
        if name in multi:
            values = []
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            out[name] = values
            continue
        if i + 1 >= len(args):
            return f"argument {flag}: expected one argument"
        out[name] = args[i + 1]
        i += 2
    return out


def secret_set(state: dict[str, Any], args: list[str]) -> int:
    parsed = parse(
        args,
        {
            "--vault-name": "vault", "--name": "name", "-n": "name", "--value": "value", "--file": "file",
            "-f": "file", "--encoding": "encoding", "-e": "encoding", "--content-type": "content_type",
            "--description": "content_type", "--tags": "tags", "--output": "output", "-o": "output",
        },
        multi={"tags"},
    )  # fmt: skip
    if isinstance(parsed, str):
        return fail(parsed)
    if "vault" not in parsed or "name" not in parsed:
        return fail("the following arguments are required: --name/-n, --vault-name")
    if ("value" in parsed) == ("file" in parsed):
        return fail("incorrect usage: [Required] --value VALUE | --file PATH", 1)
    encoding = parsed.get("encoding", "utf-8")
    if encoding not in ENCODINGS:
        return fail(f"argument --encoding/-e: invalid choice: '{encoding}'")
    tags = dict(tag.split("=", 1) if "=" in tag else (tag, "") for tag in parsed.get("tags", []))
    if "file" in parsed:
        if encoding not in TEXT_ENCODINGS:
            return fail("the fake models text encodings only", 1)
        with open(parsed["file"], encoding=encoding) as handle:  # text mode, as the CLI reads it
            value = handle.read()
        tags["file-encoding"] = encoding
    else:
        value = parsed["value"]
    vault = state["vaults"].setdefault(parsed["vault"], {})
    versions = vault.setdefault(parsed["name"], [])
    versions.append({"value": value, "tags": tags, "contentType": parsed.get("content_type")})
    if parsed.get("output") != "none":
        print(json.dumps({"id": _id(parsed["vault"], parsed["name"]), "value": value, "tags": tags}))
    return 0


def secret_list(state: dict[str, Any], args: list[str]) -> int:
    parsed = parse(args, {"--vault-name": "vault", "--output": "output", "-o": "output"})
    if isinstance(parsed, str):
        return fail(parsed)
    vault = state["vaults"].get(parsed.get("vault", ""), {})
    items = [
        {"id": _id(parsed["vault"], name), "name": name, "tags": versions[-1]["tags"],
         "contentType": versions[-1]["contentType"], "attributes": {"enabled": True}}
        for name, versions in vault.items()
    ]  # fmt: skip
    print(json.dumps(items))
    return 0


def functionapp_restart(state: dict[str, Any], args: list[str], subscription: str) -> int:
    parsed = parse(args, {"--name": "name", "-n": "name", "--resource-group": "group", "-g": "group",
                          "--output": "output", "-o": "output"})  # fmt: skip
    if isinstance(parsed, str):
        return fail(parsed)
    if "name" not in parsed or "group" not in parsed:
        return fail("the following arguments are required: --name/-n, --resource-group/-g")
    app = state.get("function_apps", {}).get(parsed["name"])
    if app is None or app["subscription"] != subscription or app["resource_group"] != parsed["group"]:
        return fail(f"(ResourceGroupNotFound) Resource group '{parsed['group']}' could not be found.", 3)
    state["restarts"].append([parsed["name"], parsed["group"]])
    return 0


def sp_show(state: dict[str, Any], args: list[str]) -> int:
    parsed = parse(args, {"--id": "id", "--output": "output", "-o": "output"})
    if isinstance(parsed, str):
        return fail(parsed)
    for sp in state.get("service_principals", []):
        if parsed.get("id") in (sp["id"], sp["appId"]):
            print(json.dumps(sp))
            return 0
    return fail(f"Service principal '{parsed.get('id')}' doesn't exist", 3)


ASSIGNMENTS = re.compile(r"^https://graph\.microsoft\.com/v1\.0/servicePrincipals/([0-9a-f-]+)/appRoleAssignments$")


def rest(state: dict[str, Any], args: list[str]) -> int:
    parsed = parse(args, {"--method": "method", "-m": "method", "--url": "url", "-u": "url", "--body": "body",
                          "-b": "body", "--headers": "headers", "--output": "output", "-o": "output"})  # fmt: skip
    if isinstance(parsed, str):
        return fail(parsed)
    match = ASSIGNMENTS.match(parsed.get("url", ""))
    if not match:
        return fail(f"Not Found({parsed.get('url')})", 1)
    principal = match.group(1)
    assignments = state.setdefault("app_role_assignments", [])
    if parsed.get("method", "GET").upper() == "GET":
        print(json.dumps({"value": [a for a in assignments if a["principalId"] == principal]}))
        return 0
    if parsed["method"].upper() != "POST":
        return fail("Method Not Allowed", 1)
    if not set(state.get("caller_directory_roles", GRAPH_GRANT_ROLES)) & set(GRAPH_GRANT_ROLES):
        return fail("Forbidden(Authorization_RequestDenied: Insufficient privileges to complete the operation.)", 1)
    body = json.loads(parsed.get("body", "{}"))
    resource = next((sp for sp in state.get("service_principals", []) if sp["id"] == body.get("resourceId")), None)
    if body.get("principalId") != principal or resource is None:
        return fail("Bad Request(Invalid principalId or resourceId)", 1)
    if body.get("appRoleId") not in {role["id"] for role in resource.get("appRoles", [])}:
        return fail("Bad Request(Permission being assigned was not found on application)", 1)
    if any(a["principalId"] == principal and a["appRoleId"] == body["appRoleId"] for a in assignments):
        return fail("Bad Request(Permission being assigned already exists on the object)", 1)
    assignments.append({"principalId": principal, "resourceId": body["resourceId"], "appRoleId": body["appRoleId"]})
    if parsed.get("output") != "none":
        print(json.dumps(assignments[-1]))
    return 0


def _id(vault: str, name: str) -> str:
    return f"https://{vault}.vault.azure.net/secrets/{name}"


def main(argv: list[str]) -> int:
    path = Path(os.environ["FAKE_AZ_STATE"])
    state = load(path)
    state["calls"].append([a if not a.startswith("/") else "<path>" for a in argv])
    subscription = state.get("default_subscription", "")
    if "--subscription" in argv:
        at = argv.index("--subscription")
        if at + 1 >= len(argv):
            return fail("argument --subscription: expected one argument")
        subscription = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    try:
        if argv[:2] == ["keyvault", "secret"] and state.get("refuse", 0) > 0:
            state["refuse"] -= 1
            return fail("(Forbidden) Caller is not authorized to perform action on resource.", 1)
        if argv[:3] == ["keyvault", "secret", "set"]:
            return secret_set(state, argv[3:])
        if argv[:3] == ["keyvault", "secret", "list"]:
            return secret_list(state, argv[3:])
        if argv[:3] == ["ad", "sp", "show"]:
            return sp_show(state, argv[3:])
        if argv[:1] == ["rest"]:
            return rest(state, argv[1:])
        if argv[:2] == ["functionapp", "restart"]:
            return functionapp_restart(state, argv[2:], subscription)
        return fail(f"'{' '.join(argv[:3])}' is not a command the fake Azure CLI models")
    finally:
        path.write_text(json.dumps(state))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
