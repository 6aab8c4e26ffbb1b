"""The Function App indexes offline, and every function has the trigger, route, methods and auth level we mean.

Assertions read ``get_function_json()``: the JSON the Functions host receives from the worker's indexing, i.e.
the wire format that decides what Azure exposes. When you add a function, add one row to ``EXPECTED``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import names
from tools.harness.app_index import functions

# One row per registered function: the trigger binding (exact match on these keys) and the type of every
# other binding. Add a row when you register a function; an unlisted function fails ``test_no_unlisted``.
EXPECTED: dict[str, dict[str, Any]] = {
    "github_webhook": {
        "trigger": {"type": "httpTrigger", "route": "github/webhook", "methods": ["POST"], "authLevel": "ANONYMOUS"},
        "others": {"durableClient", "http", "queue"},
    },
    names.TRIAGE: {
        "trigger": {"type": "orchestrationTrigger", "orchestration": names.TRIAGE},
        "others": set(),
    },
    names.PLAN: {
        "trigger": {"type": "activityTrigger", "activity": names.PLAN},
        "others": set(),
    },
    names.REPORT: {
        "trigger": {"type": "activityTrigger", "activity": names.REPORT},
        "others": set(),
    },
    # orchestrate_task: HTTP API (function key), MCP tools, orchestrators and activities
    "api_start_orchestration": {
        "trigger": {"type": "httpTrigger", "route": "orchestrations", "methods": ["POST"], "authLevel": "FUNCTION"},
        "others": {"durableClient", "http"},
    },
    "api_get_orchestration": {
        "trigger": {"type": "httpTrigger", "route": "orchestrations/{instance_id}", "methods": ["GET"],
                    "authLevel": "FUNCTION"},
        "others": {"durableClient", "http"},
    },
    "api_approve_orchestration": {
        "trigger": {"type": "httpTrigger", "route": "orchestrations/{instance_id}/approve", "methods": ["POST"],
                    "authLevel": "FUNCTION"},
        "others": {"durableClient", "http"},
    },
    "api_analyze": {
        "trigger": {"type": "httpTrigger", "route": "analyze", "methods": ["POST"], "authLevel": "FUNCTION"},
        "others": {"http"},
    },
    "api_agents": {
        "trigger": {"type": "httpTrigger", "route": "agents", "methods": ["GET"], "authLevel": "FUNCTION"},
        "others": {"http"},
    },
    "api_health": {
        "trigger": {"type": "httpTrigger", "route": "health", "methods": ["GET"], "authLevel": "FUNCTION"},
        "others": {"http"},
    },
    "api_liveness": {
        "trigger": {"type": "httpTrigger", "route": "health/live", "methods": ["GET"], "authLevel": "ANONYMOUS"},
        "others": {"http"},
    },
    "api_status": {
        "trigger": {"type": "httpTrigger", "route": "status", "methods": ["GET"], "authLevel": "FUNCTION"},
        "others": {"http"},
    },
    "mcp_orchestrate_task": {
        "trigger": {"type": "mcpToolTrigger", "toolName": "orchestrate_task"},
        "others": {"durableClient"},
    },
    "mcp_analyze_orchestration_potential": {
        "trigger": {"type": "mcpToolTrigger", "toolName": "analyze_orchestration_potential"},
        "others": set(),
    },
    "mcp_get_agent_status": {
        "trigger": {"type": "mcpToolTrigger", "toolName": "get_agent_status"},
        "others": set(),
    },
    "mcp_get_chain": {
        "trigger": {"type": "mcpToolTrigger", "toolName": "get_chain"},
        "others": set(),
    },
    "mcp_get_reynolds_wisdom": {
        "trigger": {"type": "mcpToolTrigger", "toolName": "get_reynolds_wisdom"},
        "others": set(),
    },
    names.ORCHESTRATE_TASK: {
        "trigger": {"type": "orchestrationTrigger", "orchestration": names.ORCHESTRATE_TASK},
        "others": set(),
    },
    names.SUBTASK_ORCHESTRATOR: {
        "trigger": {"type": "orchestrationTrigger", "orchestration": names.SUBTASK_ORCHESTRATOR},
        "others": set(),
    },
    names.PLAN_TASK: {
        "trigger": {"type": "activityTrigger", "activity": names.PLAN_TASK},
        "others": set(),
    },
    names.RUN_SUBTASK: {
        "trigger": {"type": "activityTrigger", "activity": names.RUN_SUBTASK},
        "others": set(),
    },
    names.REPORT_STATUS: {
        "trigger": {"type": "activityTrigger", "activity": names.REPORT_STATUS},
        "others": set(),
    },
    names.START_SUBTASKS: {
        "trigger": {"type": "activityTrigger", "activity": names.START_SUBTASKS},
        "others": {"durableClient"},
    },
    names.NOTIFY_PARENT: {
        "trigger": {"type": "activityTrigger", "activity": names.NOTIFY_PARENT},
        "others": {"durableClient"},
    },
    names.CANCEL_SUBTASKS: {
        "trigger": {"type": "activityTrigger", "activity": names.CANCEL_SUBTASKS},
        "others": {"durableClient"},
    },
    names.LOAD_TASK: {
        "trigger": {"type": "activityTrigger", "activity": names.LOAD_TASK},
        "others": {"durableClient"},
    },
    # Teams, Graph and Service Bus
    "teams_webhook": {
        "trigger": {"type": "httpTrigger", "route": "teams/webhook", "methods": ["POST"], "authLevel": "ANONYMOUS"},
        "others": {"durableClient", "http", "queue"},
    },
    # the Teams bot's messaging endpoint (issue 22): the Bot Framework JWT is its authentication
    "bot_messages": {
        "trigger": {"type": "httpTrigger", "route": "messages", "methods": ["POST"], "authLevel": "ANONYMOUS"},
        "others": {"durableClient", "http"},
    },
    "graph_notifications": {
        "trigger": {"type": "httpTrigger", "route": "graph/notifications", "methods": ["POST"],
                    "authLevel": "ANONYMOUS"},
        "others": {"durableClient", "http", "queue"},
    },
    # the inbox (issue 14): a Storage queue trigger with its re-enqueue and poison outputs, and the recovery timer
    "inbox": {
        "trigger": {"type": "queueTrigger", "queueName": names.INBOX_QUEUE, "connection": "AzureWebJobsStorage"},
        "others": {"durableClient", "queue"},
    },
    # the poison queue's reader (issue 20): decides or re-parks what the host poisoned, into the inbox
    "inbox_poison": {
        "trigger": {"type": "queueTrigger", "queueName": names.INBOX_POISON_QUEUE, "connection": "AzureWebJobsStorage"},
        "others": {"durableClient", "queue"},
    },
    "recovery_timer": {
        "trigger": {"type": "timerTrigger", "schedule": "0 */10 * * * *"},
        "others": {"durableClient"},
    },
    "graph_subscription_timer": {
        "trigger": {"type": "timerTrigger", "schedule": "0 */10 * * * *"},
        "others": {"durableClient"},
    },
    "servicebus_events": {
        "trigger": {"type": "serviceBusTrigger", "queueName": "%SERVICEBUS_EVENTS_QUEUE%",
                    "connection": "ServiceBusConnection"},
        "others": {"durableClient", "queue"},
    },
    names.REPLY: {
        "trigger": {"type": "orchestrationTrigger", "orchestration": names.REPLY},
        "others": set(),
    },
    names.TEAMS_NOTIFICATION: {
        "trigger": {"type": "orchestrationTrigger", "orchestration": names.TEAMS_NOTIFICATION},
        "others": set(),
    },
    names.GRAPH_SUBSCRIPTIONS: {
        "trigger": {"type": "orchestrationTrigger", "orchestration": names.GRAPH_SUBSCRIPTIONS},
        "others": set(),
    },
    names.REPLY_PLAN: {"trigger": {"type": "activityTrigger", "activity": names.REPLY_PLAN}, "others": set()},
    names.POST_TEAMS: {"trigger": {"type": "activityTrigger", "activity": names.POST_TEAMS}, "others": set()},
    names.PUBLISH_SERVICEBUS: {
        "trigger": {"type": "activityTrigger", "activity": names.PUBLISH_SERVICEBUS},
        "others": set(),
    },
    names.TEAMS_INGEST: {"trigger": {"type": "activityTrigger", "activity": names.TEAMS_INGEST}, "others": set()},
    names.GRAPH_MAINTAIN: {
        "trigger": {"type": "activityTrigger", "activity": names.GRAPH_MAINTAIN},
        "others": set(),
    },
    # chain explorer (triggers/chains.py)
    "get_chain": {
        "trigger": {"type": "httpTrigger", "route": "chains/{chain_id}", "methods": ["GET"], "authLevel": "FUNCTION"},
        "others": {"http"},
    },
    "get_event": {
        "trigger": {"type": "httpTrigger", "route": "events/{event_id}", "methods": ["GET"], "authLevel": "FUNCTION"},
        "others": {"http"},
    },
}


def _indexed() -> dict[str, dict[str, Any]]:
    """Function name → its function.json as the host would receive it."""
    return {f.get_function_name(): json.loads(f.get_function_json()) for f in functions()}


def _trigger(function_json: dict[str, Any]) -> dict[str, Any]:
    triggers = [b for b in function_json["bindings"] if b["type"].endswith("Trigger")]
    assert len(triggers) == 1, f"expected exactly one trigger binding, got {triggers}"
    return triggers[0]


def test_app_indexes_offline_with_unique_names() -> None:
    indexed = [f.get_function_name() for f in functions()]
    assert indexed, "the app indexed no function"
    assert len(indexed) == len(set(indexed)), f"duplicate function names: {indexed}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_function_is_indexed_as_declared(name: str) -> None:
    indexed = _indexed()
    assert name in indexed, f"{name} is not registered (indexed: {sorted(indexed)})"
    function_json = indexed[name]
    assert function_json["scriptFile"] == "function_app.py"
    trigger = _trigger(function_json)
    expected = EXPECTED[name]["trigger"]
    assert {k: trigger.get(k) for k in expected} == expected
    assert trigger["direction"] == "IN"
    others = {b["type"] for b in function_json["bindings"] if b is not trigger}
    assert others == EXPECTED[name]["others"]


def test_no_unlisted_function() -> None:
    """Every indexed function has a row in ``EXPECTED`` (new functions must declare their exposure)."""
    unlisted = sorted(set(_indexed()) - set(EXPECTED))
    assert not unlisted, f"add rows to EXPECTED in {__file__} for: {unlisted}"


def test_only_declared_http_routes_are_anonymous() -> None:
    """Anonymous HTTP functions must authenticate by themselves; each one is listed here on purpose."""
    anonymous = {
        name for name, fj in _indexed().items()
        if _trigger(fj)["type"] == "httpTrigger" and str(_trigger(fj).get("authLevel", "")).upper() == "ANONYMOUS"
    }
    declared = {name for name, row in EXPECTED.items()
                if row["trigger"]["type"] == "httpTrigger" and row["trigger"].get("authLevel") == "ANONYMOUS"}
    assert anonymous == declared


def test_durable_trigger_names_match_the_constants_callers_use() -> None:
    """Orchestrators and activities are called by name: the binding's name must be the constant."""
    for name, function_json in _indexed().items():
        trigger = _trigger(function_json)
        if trigger["type"] == "orchestrationTrigger":
            assert trigger["orchestration"] == name
        if trigger["type"] == "activityTrigger":
            assert trigger["activity"] == name
