"""Names of orchestrators, activities and external events: constants, never string literals at call sites."""

from __future__ import annotations

import hashlib

# Orchestrators
TRIAGE = "triage_orchestrator"
ORCHESTRATE_TASK = "orchestrate_task_orchestrator"
SUBTASK_ORCHESTRATOR = "run_subtask_orchestrator"
REPLY = "reply_orchestrator"
TEAMS_NOTIFICATION = "teams_notification_orchestrator"
GRAPH_SUBSCRIPTIONS = "graph_subscriptions_orchestrator"

# Activities
PLAN = "plan_activity"
REPORT = "report_activity"
PLAN_TASK = "plan_task_activity"
RUN_SUBTASK = "run_subtask_activity"
REPORT_STATUS = "report_status_activity"
START_SUBTASKS = "start_subtasks_activity"
CANCEL_SUBTASKS = "cancel_subtasks_activity"
NOTIFY_PARENT = "notify_parent_activity"
LOAD_TASK = "load_task_activity"
REPLY_PLAN = "reply_plan_activity"
POST_TEAMS = "post_teams_activity"
PUBLISH_SERVICEBUS = "publish_servicebus_activity"
TEAMS_INGEST = "teams_ingest_activity"
GRAPH_MAINTAIN = "graph_subscriptions_activity"

# The inbox: a Storage queue (connection ``AzureWebJobsStorage``) every door hands a verified delivery to when it
# cannot decide and start within its platform's deadline; the poison queue follows the host's ``<queue>-poison``.
INBOX_QUEUE = "reynolds-inbox"
INBOX_POISON_QUEUE = "reynolds-inbox-poison"

# External events of the orchestrate_task engine
APPROVAL_EVENT = "approval"
CANCEL_EVENT = "cancel"
#: A subtask orchestration tells its parent it ended with this event, suffixed with the subtask id.
SUBTASK_DONE_EVENT_PREFIX = "subtask_done_"

# Event types (CloudEvents ``type``) are built as ``com.github.<event>.<action>``.
GITHUB_EVENT_TYPE_PREFIX = "com.github."


#: Durable backends store instance ids in 100-character columns (``shared.loop.lineage.MAX_INSTANCE_ID_CHARS``).
_MAX_SUBTASK_INSTANCE_ID_CHARS = 100


def subtask_instance_id(parent_instance_id: str, subtask_id: str, run: str = "") -> str:
    """Instance id of a subtask's orchestration: derived from the parent, its run and the subtask, so commands can
    raise ``approval`` to it and a restarted parent (same instance id, new ``run``) never meets a previous run's
    subtasks. At most 100 characters: a longer id keeps its readable head and ends in a digest of the whole."""
    full = f"{parent_instance_id}:{run}:{subtask_id}" if run else f"{parent_instance_id}:{subtask_id}"
    if len(full) <= _MAX_SUBTASK_INSTANCE_ID_CHARS:
        return full
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:20]
    return f"{full[: _MAX_SUBTASK_INSTANCE_ID_CHARS - len(digest) - 1]}~{digest}"


def subtask_done_event(subtask_id: str, run: str = "") -> str:
    """Name of the event a subtask's orchestration raises to its parent when it ends (one name per subtask:
    the Python SDK keeps a single buffered event per name; the parent's run in it, so a previous run's subtask
    cannot answer for this run's)."""
    return f"{SUBTASK_DONE_EVENT_PREFIX}{run}_{subtask_id}" if run else f"{SUBTASK_DONE_EVENT_PREFIX}{subtask_id}"
