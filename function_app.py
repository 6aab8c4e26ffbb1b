"""Reynolds' Function App: builds the app and registers one blueprint per module, nothing else."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from activities import graph as graph_activities
from activities import reply as reply_activities
from activities import tasks as task_activities
from activities import triage as triage_activities
from orchestrators import graph as graph_orchestrators
from orchestrators import reply as reply_orchestrator
from orchestrators import tasks as task_orchestrators
from orchestrators import triage as triage_orchestrator
from triggers import (
    bot_messages,
    chains,
    github_webhook,
    graph_notifications,
    http_api,
    inbox,
    mcp_tools,
    recovery,
    servicebus_events,
    teams_webhook,
)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (github_webhook.bp, chains.bp, triage_orchestrator.bp, triage_activities.bp, http_api.bp,
                  mcp_tools.bp, task_orchestrators.bp, task_activities.bp, teams_webhook.bp, graph_notifications.bp,
                  servicebus_events.bp, reply_orchestrator.bp, reply_activities.bp, graph_orchestrators.bp,
                  graph_activities.bp, inbox.bp, recovery.bp, bot_messages.bp):
    app.register_functions(blueprint)
