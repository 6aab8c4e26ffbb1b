"""scripts/provision_secrets.py (azd postprovision) against a stateful fake Azure CLI (tools/fakes/azure_cli.py): every
secret the app references exists after a provision, values survive re-provisioning, a multi-line PEM is stored
intact from a file, nothing secret is printed, and the names match infra/app/api.bicep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.bicepcheck.source import BicepFile

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "provision_secrets.py"
FAKE_AZ = ROOT / "tools" / "fakes" / "azure_cli.py"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAvR3+Zk0tOQ2p\ndGVzdCBrZXk=\n-----END RSA PRIVATE KEY-----\n"
SUBSCRIPTION = "0b6f1c9e-2d3a-4e5f-8a7b-1c2d3e4f5a6b"  # the one azd deploys to
OTHER_SUBSCRIPTION = "9c8b7a6f-5e4d-4c3b-8a29-1f0e9d8c7b6a"  # the CLI's default (`az account set`)
NAMES = {
    "github-webhook-secret",
    "github-app-private-key",
    "teams-outgoing-webhook-token",
    "graph-client-state",
    "reynolds-marker-key",
}


class Hook:
    """Runs the hook with the fake ``az`` first on PATH; ``state`` is the fake's vault."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        az = self.bin / "az"
        az.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AZ}" "$@"\n')
        az.chmod(0o755)
        self.state_file = tmp / "az-state.json"
        # The CLI's default subscription is not the one azd deployed to: only a call naming it finds the app.
        self.set_state(default_subscription=OTHER_SUBSCRIPTION, function_apps={
            "func-api-test": {"subscription": SUBSCRIPTION, "resource_group": "rg-test"}})  # fmt: skip
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_AZ_STATE": str(self.state_file),
            "AZURE_KEY_VAULT_NAME": "kv-test",
            "AZURE_FUNCTION_APP_NAME": "func-api-test",
            "AZURE_RESOURCE_GROUP": "rg-test",
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "REYNOLDS_HOOK_RETRY_SECONDS": "0",
        }

    def run(self, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT)], cwd=self.tmp, env={**self.env, **extra}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def versions(self, name: str) -> list[dict[str, Any]]:
        return list(self.state["vaults"]["kv-test"][name])

    def set_state(self, **changes: Any) -> None:
        state = self.state if self.state_file.exists() else {"vaults": {}, "restarts": [], "calls": [], "refuse": 0}
        state.update(changes)
        self.state_file.write_text(json.dumps(state))


@pytest.fixture
def hook(tmp_path: Path) -> Hook:
    return Hook(tmp_path)


def test_first_provision_creates_every_secret_and_restarts_the_app(hook: Hook) -> None:
    result = hook.run()
    assert result.returncode == 0, result.stderr
    vault = hook.state["vaults"]["kv-test"]
    assert set(vault) == NAMES
    values = [versions[-1]["value"] for versions in vault.values()]
    assert len(set(values)) == len(values)
    assert all(len(v) >= 64 for v in values)
    for value in values:  # nothing secret on the console
        assert value not in result.stdout + result.stderr
    assert hook.versions("github-app-private-key")[-1]["tags"]["reynolds-source"] == "placeholder"
    assert hook.versions("reynolds-marker-key")[-1]["tags"]["reynolds-source"] == "generated"
    assert hook.state["restarts"] == [["func-api-test", "rg-test"]]
    set_calls = [c for c in hook.state["calls"] if c[:3] == ["keyvault", "secret", "set"]]
    assert all("--file" in c and "--value" not in c for c in set_calls)  # values never on a command line


def test_reprovision_keeps_every_value(hook: Hook) -> None:
    assert hook.run().returncode == 0
    before = {name: versions[-1]["value"] for name, versions in hook.state["vaults"]["kv-test"].items()}
    result = hook.run()
    assert result.returncode == 0, result.stderr
    after = {name: versions[-1]["value"] for name, versions in hook.state["vaults"]["kv-test"].items()}
    assert after == before
    assert all(len(hook.versions(name)) == 1 for name in NAMES)
    assert len(hook.state["restarts"]) == 1  # nothing changed, no restart
    assert "kept" in result.stdout


def test_pem_from_a_file_is_stored_intact_and_only_once(hook: Hook) -> None:
    key = hook.tmp / "reynolds.private-key.pem"
    key.write_text(PEM)
    assert hook.run(GITHUB_APP_PRIVATE_KEY_FILE=str(key)).returncode == 0
    assert hook.versions("github-app-private-key")[-1]["value"] == PEM
    assert hook.versions("github-app-private-key")[-1]["tags"]["file-encoding"] == "utf-8"
    result = hook.run(GITHUB_APP_PRIVATE_KEY_FILE="reynolds.private-key.pem")  # relative to the project
    assert result.returncode == 0, result.stderr
    assert len(hook.versions("github-app-private-key")) == 1
    assert "unchanged" in result.stdout
    key.write_text(PEM.replace("dGVzdCBrZXk=", "bmV3IGtleQ=="))
    assert hook.run(GITHUB_APP_PRIVATE_KEY_FILE=str(key)).returncode == 0
    assert len(hook.versions("github-app-private-key")) == 2
    assert len(hook.state["restarts"]) == 2


def test_a_hand_set_secret_survives(hook: Hook) -> None:
    hook.set_state(vaults={"kv-test": {"teams-outgoing-webhook-token": [
        {"value": "c2VjcmV0LXRva2Vu", "tags": {}, "contentType": "text/plain"}]}})  # fmt: skip
    assert hook.run().returncode == 0
    assert hook.versions("teams-outgoing-webhook-token") == [
        {"value": "c2VjcmV0LXRva2Vu", "tags": {}, "contentType": "text/plain"}
    ]


def test_retries_while_the_role_assignment_propagates(hook: Hook) -> None:
    hook.set_state(refuse=2)
    result = hook.run()
    assert result.returncode == 0, result.stderr
    assert set(hook.state["vaults"]["kv-test"]) == NAMES
    assert result.stdout.count("retry") == 2


def test_missing_file_and_missing_vault_fail_with_a_reason(hook: Hook) -> None:
    missing = hook.run(GITHUB_APP_PRIVATE_KEY_FILE="nope.pem")
    assert missing.returncode == 1
    assert "GITHUB_APP_PRIVATE_KEY_FILE=nope.pem: no such file" in missing.stderr
    no_vault = hook.run(AZURE_KEY_VAULT_NAME="")
    assert no_vault.returncode == 1
    assert "AZURE_KEY_VAULT_NAME" in no_vault.stderr


def test_fake_cli_refuses_what_the_real_one_refuses(hook: Hook) -> None:
    env = {**hook.env}
    both = subprocess.run(
        [str(hook.bin / "az"), "keyvault", "secret", "set", "--vault-name", "kv", "--name", "n", "--value", "v",
         "--file", str(SCRIPT)], env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert both.returncode == 1
    assert "--value VALUE | --file PATH" in both.stderr
    unknown = subprocess.run([str(hook.bin / "az"), "keyvault", "secret", "show", "--name", "n"], env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert unknown.returncode == 2
    restart = [str(hook.bin / "az"), "functionapp", "restart", "--name", "func-api-test", "--resource-group", "rg-test"]
    on_default = subprocess.run(restart, env=env, capture_output=True, text=True, check=False)
    assert on_default.returncode == 3  # the CLI's default subscription has no such resource group
    assert "(ResourceGroupNotFound)" in on_default.stderr
    named = subprocess.run([*restart, "--subscription", SUBSCRIPTION], env=env, capture_output=True, text=True,
                           check=False)  # fmt: skip
    assert named.returncode == 0, named.stderr


def test_every_call_names_the_subscription_azd_deploys_to(hook: Hook) -> None:
    # The first `azd up` of a deployer whose `az account show` is another subscription: the restart must still land.
    result = hook.run()
    assert result.returncode == 0, result.stderr
    assert hook.state["restarts"] == [["func-api-test", "rg-test"]]
    for call in hook.state["calls"]:
        assert call[call.index("--subscription") + 1] == SUBSCRIPTION, call


def test_without_the_subscription_it_refuses_before_calling_azure(hook: Hook) -> None:
    result = hook.run(AZURE_SUBSCRIPTION_ID="")
    assert result.returncode == 1
    assert "AZURE_SUBSCRIPTION_ID" in result.stderr
    assert not hook.state["calls"]


def test_secret_names_match_the_app_settings() -> None:
    api = BicepFile.load(ROOT / "infra" / "app" / "api.bicep", ROOT)
    names = api.evaluate("secretNames")
    assert set(names.values()) == NAMES
    script = SCRIPT.read_text()
    for name in NAMES:
        assert f'"{name}"' in script


def test_postprovision_hook_writes_secrets_then_local_settings(hook: Hook) -> None:
    # The whole sh hook in a copy of the project: secrets first, then local.settings.json from `azd env get-values`.
    project = hook.tmp / "project"
    (project / "scripts").mkdir(parents=True)
    for name in ("postprovision.sh", "provision_secrets.py"):
        (project / "scripts" / name).write_text((ROOT / "scripts" / name).read_text())
    (project / "local.settings.json.example").write_text((ROOT / "local.settings.json.example").read_text())
    values = {"COSMOS_ENDPOINT": "https://cosmos-x.documents.azure.com:443/", "AZURE_KEY_VAULT_NAME": "kv-test",
              "SERVICEBUS_FQDN": "sb-x.servicebus.windows.net", "AZURE_OPENAI_DEPLOYMENT": "chat"}  # fmt: skip
    azd = hook.bin / "azd"
    azd.write_text(
        '#!/bin/sh\n[ "$*" = "env get-values --output json" ] || { echo "unexpected azd $*" >&2; exit 2; }\n'
        f"cat <<'JSON'\n{json.dumps(values)}\nJSON\n"
    )
    azd.chmod(0o755)
    result = subprocess.run(["sh", str(project / "scripts" / "postprovision.sh")], cwd=project,
                            env={**hook.env, "PYTHON": sys.executable}, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert set(hook.state["vaults"]["kv-test"]) == NAMES
    settings = json.loads((project / "local.settings.json").read_text())["Values"]
    assert settings["COSMOS__accountEndpoint"] == values["COSMOS_ENDPOINT"]
    assert settings["AZURE_OPENAI_DEPLOYMENT"] == "chat"
    assert result.stdout.index("Key Vault secrets") < result.stdout.index("local.settings.json written")
