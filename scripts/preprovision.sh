#!/bin/sh
# azd preprovision hook: refuse, before anything is created, a chat model version this subscription can no longer
# deploy or that retires within 30 days (scripts/model_lifecycle.py; dates in infra/model-lifecycle.json).
set -eu

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" scripts/model_lifecycle.py
