#!/usr/bin/env python3
"""azd postprovision step: make sure every secret the app references exists in Key Vault, without a secret value
ever passing through azd parameters, a deployment, a command line or this script's output.

For each secret (names shared with ``infra/app/api.bicep``'s ``secretNames``):

* ``<NAME>_FILE`` set in the azd environment (e.g. ``GITHUB_APP_PRIVATE_KEY_FILE=./reynolds.pem``): the file is
  written with ``az keyvault secret set --file`` when its SHA-256 differs from the ``reynolds-sha256`` tag of the
  current version (so a re-provision does not pile up versions);
* otherwise a secret that already exists is kept as it is (values set by hand survive every provision);
* otherwise a random value is generated into a private temporary file and written the same way. For secrets
  other systems issue (GitHub App key, Teams token) that value is a placeholder that fails closed: no signature or
  token can match it until the real one is stored.

When anything was written the Function App is restarted, so its Key Vault references resolve the new versions now
rather than within 24 hours. The deploying user writes through the Key Vault Secrets Officer role that
``infra/app/rbac.bicep`` grants; a freshly created role assignment can take minutes to apply, so Key Vault calls
are retried. Standard library only: azd runs this with the system Python.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Secret:
    name: str  # Key Vault secret name (api.bicep secretNames)
    file_variable: str  # azd environment variable naming a file with the value
    content_type: str
    issued_elsewhere: bool  # True: a generated value is only a fail-closed placeholder


SECRETS: tuple[Secret, ...] = (
    Secret("github-webhook-secret", "GITHUB_WEBHOOK_SECRET_FILE", "text/plain", issued_elsewhere=False),
    Secret("github-app-private-key", "GITHUB_APP_PRIVATE_KEY_FILE", "application/x-pem-file", issued_elsewhere=True),
    Secret("teams-outgoing-webhook-token", "TEAMS_OUTGOING_WEBHOOK_TOKEN_FILE", "text/plain", issued_elsewhere=True),
    Secret("graph-client-state", "GRAPH_CLIENT_STATE_FILE", "text/plain", issued_elsewhere=False),
    Secret("reynolds-marker-key", "REYNOLDS_MARKER_KEY_FILE", "text/plain", issued_elsewhere=False),
)
SHA_TAG = "reynolds-sha256"
SOURCE_TAG = "reynolds-source"
ATTEMPTS = 8


class HookError(RuntimeError):
    """A step failed; the message says which and why (never a secret value)."""


@dataclass
class Az:
    """Runs the Azure CLI in the subscription azd deploys to; retries Key Vault calls refused while a new role
    assignment propagates.

    Every call names ``--subscription`` (``AZURE_SUBSCRIPTION_ID``): without it the CLI acts on its own default
    subscription (``az account set``), which need not be the one azd deployed to, and an ARM call such as
    ``functionapp restart`` then finds no such resource group. For Key Vault data-plane calls it picks the tenant
    whose token is used."""

    executable: str
    subscription: str
    sleep: Callable[[float], None] = time.sleep
    delay: float = 15.0

    def run(self, *args: str, retry: bool = False) -> str:
        command = [self.executable, *args, "--subscription", self.subscription]
        for attempt in range(1, (ATTEMPTS if retry else 1) + 1):
            # The CLI resolved by shutil.which with arguments built here, never a shell string.
            result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode == 0:
                return result.stdout
            refused = "Forbidden" in result.stderr or "not authorized" in result.stderr.lower()
            if not (retry and refused) or attempt == ATTEMPTS:
                raise HookError(f"az {' '.join(args[:3])} failed: {result.stderr.strip()[-400:]}")
            print(f"  Key Vault refused the call (role assignment still propagating?); retry {attempt}/{ATTEMPTS}")
            self.sleep(self.delay)
        raise AssertionError("unreachable")


def azd_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The hook's environment; azd exports the environment's values to hooks, `azd env get-values` fills gaps."""
    values = dict(env)
    azd = shutil.which("azd")
    if "AZURE_KEY_VAULT_NAME" not in values and azd:
        out = subprocess.run(  # noqa: S603 - the azd CLI resolved by shutil.which, fixed arguments
            [azd, "env", "get-values", "--output", "json"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0:
            values = {**json.loads(out.stdout), **values}
    return values


def existing_secrets(az: Az, vault: str) -> dict[str, dict[str, str]]:
    """Secret name -> tags of its current version (``az keyvault secret list`` never returns values)."""
    listed = json.loads(az.run("keyvault", "secret", "list", "--vault-name", vault, "--output", "json", retry=True))
    return {str(item["id"]).rstrip("/").rsplit("/", 1)[1]: dict(item.get("tags") or {}) for item in listed}


def write_secret(az: Az, vault: str, secret: Secret, path: Path, tags: Mapping[str, str]) -> None:
    az.run(
        "keyvault", "secret", "set",
        "--vault-name", vault,
        "--name", secret.name,
        "--file", str(path),
        "--encoding", "utf-8",
        "--content-type", secret.content_type,
        "--tags", *[f"{key}={value}" for key, value in tags.items()],
        "--output", "none",
        retry=True,
    )  # fmt: skip


def generated_value() -> bytes:
    """48 random bytes, base64: valid wherever the code expects a base64 key, and unguessable."""
    return base64.b64encode(secrets.token_bytes(48))


def provision(env: Mapping[str, str], az: Az, workdir: Path) -> dict[str, str]:
    """Secret name -> what happened (``written from <file>``, ``unchanged``, ``kept``, ``generated``...)."""
    vault = env.get("AZURE_KEY_VAULT_NAME", "")
    if not vault:
        raise HookError("AZURE_KEY_VAULT_NAME is not set: run `azd provision` first")
    current = existing_secrets(az, vault)
    outcome: dict[str, str] = {}
    for secret in SECRETS:
        source = env.get(secret.file_variable, "")
        if source:
            path = (workdir / source).resolve() if not Path(source).is_absolute() else Path(source)
            if not path.is_file():
                raise HookError(f"{secret.file_variable}={source}: no such file")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if current.get(secret.name, {}).get(SHA_TAG) == digest:
                outcome[secret.name] = "unchanged"
                continue
            write_secret(az, vault, secret, path, {SOURCE_TAG: "file", SHA_TAG: digest})
            outcome[secret.name] = f"written from {secret.file_variable}"
        elif secret.name in current:
            outcome[secret.name] = "kept"
        else:
            with tempfile.TemporaryDirectory() as private:
                path = Path(private) / "value"
                path.touch(mode=0o600)
                path.write_bytes(generated_value())
                kind = "placeholder" if secret.issued_elsewhere else "generated"
                write_secret(az, vault, secret, path, {SOURCE_TAG: kind})
            outcome[secret.name] = (
                "placeholder written (store the real value: docs/deploy.md, Secrets)"
                if secret.issued_elsewhere
                else "generated"
            )
    return outcome


def main(env: Mapping[str, str] | None = None) -> int:
    values = azd_environment(os.environ if env is None else env)
    executable = shutil.which("az")
    if executable is None:
        print("provision_secrets: the Azure CLI (az) is not on PATH", file=sys.stderr)
        return 1
    subscription = values.get("AZURE_SUBSCRIPTION_ID", "")
    if not subscription:
        print(
            "provision_secrets: AZURE_SUBSCRIPTION_ID is not set: run it through azd (`azd provision`)", file=sys.stderr
        )
        return 1
    delay = float(values.get("REYNOLDS_HOOK_RETRY_SECONDS", "15"))
    az = Az(executable, subscription, delay=delay)
    try:
        outcome = provision(values, az, Path.cwd())
        for name, what in outcome.items():
            print(f"  {name}: {what}")
        changed = [n for n, what in outcome.items() if what not in ("kept", "unchanged")]
        app, group = values.get("AZURE_FUNCTION_APP_NAME"), values.get("AZURE_RESOURCE_GROUP")
        if changed and app and group:
            az.run("functionapp", "restart", "--name", app, "--resource-group", group, "--output", "none")
            print(f"  restarted {app} so its Key Vault references resolve the new versions")
    except HookError as exc:
        print(f"provision_secrets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
