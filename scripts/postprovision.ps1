# azd postprovision hook (Windows).
# 1. Key Vault secrets: scripts/provision_secrets.py makes sure every secret the app references exists, writing
#    files named by *_FILE variables with `az keyvault secret set --file` (no secret goes through azd parameters).
# 2. local.settings.json from the azd environment so `func start` runs against the Azure resources just
#    provisioned with your own `az login` identity. Secrets stay in Key Vault: local dev placeholders from
#    local.settings.json.example are used. An existing file is kept as .bak.
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')

$python = if ($env:PYTHON) { $env:PYTHON } else { 'python' }
Write-Host 'Key Vault secrets:'
& $python scripts/provision_secrets.py
if ($LASTEXITCODE -ne 0) { throw "scripts/provision_secrets.py failed ($LASTEXITCODE)" }

# Opt-in: only a Privileged Role Administrator or Global Administrator may grant Microsoft Graph application
# permissions (docs/deploy.md); without the role the script prints the commands for one and azd up goes on.
if ($env:REYNOLDS_GRANT_GRAPH_PERMISSIONS -eq 'true') {
    Write-Host 'Microsoft Graph permissions:'
    & $python scripts/grant_graph_permissions.py --from-hook
    if ($LASTEXITCODE -ne 0) { throw "scripts/grant_graph_permissions.py failed ($LASTEXITCODE)" }
}

$envValues = azd env get-values --output json | ConvertFrom-Json
if (Test-Path 'local.settings.json') { Copy-Item 'local.settings.json' 'local.settings.json.bak' -Force }

$settings = Get-Content 'local.settings.json.example' -Raw | ConvertFrom-Json
$v = $settings.Values

function Use-Env([string]$setting, [string]$output) {
    $value = $envValues.$output
    if ($null -ne $value) { $v.$setting = [string]$value }
}

Use-Env 'COSMOS__accountEndpoint' 'COSMOS_ENDPOINT'
Use-Env 'COSMOS_DATABASE' 'COSMOS_DATABASE'
Use-Env 'COSMOS_LINEAGE_CONTAINER' 'COSMOS_LINEAGE_CONTAINER'
Use-Env 'ServiceBusConnection__fullyQualifiedNamespace' 'SERVICEBUS_FQDN'
Use-Env 'SERVICEBUS_EVENTS_QUEUE' 'SERVICEBUS_EVENTS_QUEUE'
Use-Env 'SERVICEBUS_OUT_QUEUE' 'SERVICEBUS_OUT_QUEUE'
Use-Env 'AZURE_OPENAI_ENDPOINT' 'AZURE_OPENAI_ENDPOINT'
Use-Env 'AZURE_OPENAI_DEPLOYMENT' 'AZURE_OPENAI_DEPLOYMENT'
Use-Env 'APPLICATIONINSIGHTS_CONNECTION_STRING' 'APPLICATIONINSIGHTS_CONNECTION_STRING'
Use-Env 'TASK_HUB_NAME' 'TASK_HUB_NAME'
# Azure Cosmos DB uses your developer identity, never the emulator key; DefaultAzureCredential picks `az login`.
$v.COSMOS_EMULATOR_KEY = ''
$v.AZURE_CLIENT_ID = ''

$settings | ConvertTo-Json -Depth 5 | Set-Content -Path 'local.settings.json' -Encoding utf8
Write-Host "local.settings.json written from azd environment '$($env:AZURE_ENV_NAME)'."
