# azd preprovision hook (Windows): refuse, before anything is created, a chat model version this subscription can no
# longer deploy or that retires within 30 days (scripts/model_lifecycle.py; dates in infra/model-lifecycle.json).
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')

$python = if ($env:PYTHON) { $env:PYTHON } else { 'python' }
& $python scripts/model_lifecycle.py
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
