#!/bin/sh
# azd postprovision hook.
# 1. Key Vault secrets: scripts/provision_secrets.py makes sure every secret the app references exists, writing
#    files named by *_FILE variables with `az keyvault secret set --file` (no secret goes through azd parameters).
# 2. local.settings.json from the azd environment, so `func start` on this machine runs against the Azure
#    resources just provisioned with your own `az login` identity (azd grants your user the same data roles as
#    the app). Secrets stay in Key Vault: local dev placeholders are used instead. An existing
#    local.settings.json is kept as local.settings.json.bak.
set -eu

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

echo "Key Vault secrets:"
"$PYTHON" scripts/provision_secrets.py

# Opt-in: only a Privileged Role Administrator or Global Administrator may grant Microsoft Graph application
# permissions (docs/deploy.md); without the role the script prints the commands for one and azd up goes on.
if [ "${REYNOLDS_GRANT_GRAPH_PERMISSIONS:-}" = "true" ]; then
  echo "Microsoft Graph permissions:"
  "$PYTHON" scripts/grant_graph_permissions.py --from-hook
fi

values="$(azd env get-values --output json)"
[ -f local.settings.json ] && cp local.settings.json local.settings.json.bak

printf '%s' "$values" | "$PYTHON" -c '
import json, sys
env = json.load(sys.stdin)
example = json.load(open("local.settings.json.example"))
v = example["Values"]
v.update({
    "COSMOS__accountEndpoint": env.get("COSMOS_ENDPOINT", ""),
    "COSMOS_EMULATOR_KEY": "",
    "COSMOS_DATABASE": env.get("COSMOS_DATABASE", v["COSMOS_DATABASE"]),
    "COSMOS_LINEAGE_CONTAINER": env.get("COSMOS_LINEAGE_CONTAINER", v["COSMOS_LINEAGE_CONTAINER"]),
    "ServiceBusConnection__fullyQualifiedNamespace": env.get("SERVICEBUS_FQDN", ""),
    "SERVICEBUS_EVENTS_QUEUE": env.get("SERVICEBUS_EVENTS_QUEUE", v["SERVICEBUS_EVENTS_QUEUE"]),
    "SERVICEBUS_OUT_QUEUE": env.get("SERVICEBUS_OUT_QUEUE", v["SERVICEBUS_OUT_QUEUE"]),
    "AZURE_OPENAI_ENDPOINT": env.get("AZURE_OPENAI_ENDPOINT", ""),
    "AZURE_OPENAI_DEPLOYMENT": env.get("AZURE_OPENAI_DEPLOYMENT", v["AZURE_OPENAI_DEPLOYMENT"]),
    "APPLICATIONINSIGHTS_CONNECTION_STRING": env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", ""),
    "TASK_HUB_NAME": env.get("TASK_HUB_NAME", v["TASK_HUB_NAME"]),
})
# Local runs use your developer identity (DefaultAzureCredential), not the app identity.
v["AZURE_CLIENT_ID"] = ""
with open("local.settings.json", "w") as fh:
    json.dump(example, fh, indent=2)
    fh.write("\n")
'
echo "local.settings.json written from azd environment '${AZURE_ENV_NAME:-}'."
