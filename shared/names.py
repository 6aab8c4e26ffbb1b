"""Names of orchestrators, activities and external events: constants, never string literals at call sites."""

from __future__ import annotations

# Orchestrators
TRIAGE = "triage_orchestrator"

# Activities
PLAN = "plan_activity"
REPORT = "report_activity"

# Event types (CloudEvents ``type``) are built as ``com.github.<event>.<action>``.
GITHUB_EVENT_TYPE_PREFIX = "com.github."
