"""Timer: recover what GitHub will not redeliver and restart answers that gave up, from Reynolds' own records.

Every ten minutes:

1. GitHub delivery recovery (``shared.platforms.github.deliveries``): deliveries of the App's webhook none of
   whose attempts succeeded (Reynolds down, a 5xx before the inbox existed, a timeout) are redelivered through
   ``POST /app/hook/deliveries/{id}/attempts`` within GitHub's 3-day window, with a per-guid backoff.
2. Late commits (``GitHubReporter.sweep_late_commits``): a triage comment whose write had an unknown outcome
   and that GitHub stored after the retry posted the answer again is deleted, at any delay within 3 days.
3. Failed orchestrations that answer a person (triage, reply, Teams notification) created in the last 3 days
   are started again with their own input (``get_status_by`` + ``get_status(show_input=True)``), at most
   ``MAX_RESTARTS`` times each; their effects are in the ledger, so what was written is found, not rewritten.

A timer has no caller waiting: the GitHub calls run here (in a worker thread), never in a door.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from shared import names
from shared.errors import ConfigurationError
from shared.platforms.github.client import GitHubClients, RequestFailed
from shared.platforms.github.deliveries import RecoveryReport, recover_deliveries
from shared.services import Services, get_services
from shared.store.base import safe_id, update_document
from shared.work.restart import restart_orchestration

logger = logging.getLogger(__name__)

bp = df.Blueprint()

RECOVERY_SCHEDULE = "0 */10 * * * *"
#: Orchestrations whose failure leaves a person without an answer.
ANSWERING = frozenset({names.TRIAGE, names.REPLY, names.TEAMS_NOTIFICATION})
MAX_RESTARTS = 3
LOOKBACK = timedelta(days=3)


def recover_github(services: Services) -> RecoveryReport | None:
    """One delivery-recovery pass; None when no GitHub App (or local token) is configured."""
    if services.github is None:
        services.github = GitHubClients(services.settings)
    try:
        app = services.github.for_app()
    except ConfigurationError as exc:
        logger.info("github delivery recovery skipped: %s", exc)
        return None
    try:
        return recover_deliveries(app, services.store, services.clock)
    except RequestFailed as exc:  # e.g. a personal token locally: /app/* needs the App's JWT
        logger.warning("github delivery recovery failed: GitHub answered %s", exc.response.status_code)
        return None


def sweep_late_commits(services: Services) -> list[int]:
    """Delete late-landed copies of answers (see ``GitHubReporter.sweep_late_commits``); [] without GitHub."""
    try:
        reporter = services.reporter()
    except ConfigurationError as exc:
        logger.info("late-commit sweep skipped: %s", exc)
        return []
    return reporter.sweep_late_commits()


async def restart_failed(client: df.DurableOrchestrationClient, services: Services) -> list[str]:
    """Start failed answering orchestrations of the last 3 days again; the instance ids restarted."""
    now = services.clock()
    statuses = await client.get_status_by(created_time_from=now - LOOKBACK,
                                          runtime_status=[OrchestrationRuntimeStatus.Failed])
    restarted: list[str] = []
    for status in statuses or []:
        if status.name not in ANSWERING or not status.instance_id:
            continue
        if not await asyncio.to_thread(_claim_restart, services, status.instance_id):
            continue
        full = await client.get_status(status.instance_id, show_input=True)
        await restart_orchestration(client, status.name, status.instance_id, full.input_)
        restarted.append(status.instance_id)
        logger.warning("instance %s (%s) had failed; started again from its own input", status.instance_id,
                       status.name)
    return restarted


def _claim_restart(services: Services, instance_id: str) -> bool:
    claimed: list[bool] = []

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        count = int((doc or {}).get("count") or 0)
        claimed[:] = [count < MAX_RESTARTS]
        if count >= MAX_RESTARTS:
            return None
        return {"kind": "restart", "instance_id": instance_id, "count": count + 1, "ttl": 4 * 86400}

    update_document(services.store, safe_id(f"restart:{instance_id}"), change)
    return bool(claimed and claimed[0])


@bp.function_name("recovery_timer")
@bp.timer_trigger(schedule=RECOVERY_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def recovery_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Redeliver failed GitHub deliveries; restart failed answers."""
    services = get_services()
    report = await asyncio.to_thread(recover_github, services)
    try:
        await asyncio.to_thread(sweep_late_commits, services)
    except Exception:  # the next run tries again
        logger.exception("recovery: sweeping late commits failed")
    try:
        restarted = await restart_failed(client, services)
    except Exception:  # the next run tries again; never let one half stop the other
        logger.exception("recovery: restarting failed orchestrations failed")
        restarted = []
    if report is not None:
        logger.info("recovery: %d deliveries scanned, %d failed guids, %d redelivered, %d restarted",
                    report.scanned, report.failed_guids, len(report.redelivered), len(restarted))
