"""The shared tail of every trigger: decide with the loop guard, start the orchestration, answer.

Triggers do five things (read raw bytes, verify, parse, decide, start and answer); this module is the last
two, the same for every door. It never calls GitHub or a model: it answers within the caller's deadline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.admission import judge, orchestration_input
from shared.errors import ConfigurationError, IncomingRequestError, StoreError
from shared.loop.envelope import EventEnvelope
from shared.loop.lineage import Decision, instance_id_for
from shared.services import Services
from shared.telemetry import bind_log_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """What a trigger answers: the decision and, when something runs, the orchestration instance."""

    decision: Decision
    instance_id: str | None = None
    started: bool = False

    def body(self, delivery: str | None) -> dict[str, Any]:
        """The JSON answer (no secret, no stack trace)."""
        return {
            "delivery": delivery,
            "event_id": self.decision.event_id,
            "verdict": self.decision.verdict.value,
            "reason": self.decision.reason,
            "chain_id": self.decision.chain_id,
            "instance_id": self.instance_id,
            "status_url": f"/api/orchestrations/{self.instance_id}" if self.instance_id else None,
        }


async def admit(event: EventEnvelope, client: df.DurableOrchestrationClient, services: Services, *,
                prepare: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> Admission:
    """Decide ``event`` and start its orchestration when accepted (exactly once per event id).

    ``prepare`` runs only when an orchestration is about to start for this event (never for a duplicate of a
    started one); what it returns is merged into the orchestration's input.
    """
    judged = await judge(event, services)
    decision, orchestrator = judged.decision, judged.orchestrator
    # Every later log line of this invocation carries the decision (custom dimensions in Application Insights).
    bind_log_context(replace=True, event_id=event.id, chain_id=decision.chain_id, verdict=decision.verdict.value,
                     rule=decision.rule)
    if orchestrator is None or not judged.runs:
        return Admission(decision)
    instance_id = instance_id_for(event.id)
    bind_log_context(instance_id=instance_id)
    status = await client.get_status(instance_id)
    runtime = getattr(status.runtime_status, "value", status.runtime_status) if status else None
    if runtime is not None and runtime not in _RESTARTABLE:
        # Started before (this is a redelivery, or a retry after a lost answer): never a second run.
        return Admission(decision, instance_id)
    if runtime is not None:
        # It ran and gave up (every retry failed, or an operator terminated it): a redelivery runs it again.
        # Its effects are in the ledger, so what it already wrote is found, not written twice.
        logger.warning("event %s: orchestration %s is %s; restarting it on redelivery", event.id, instance_id,
                       runtime)
    payload = orchestration_input(orchestrator, event, decision, out_queue=services.settings.servicebus_out_queue)
    if prepare is not None and runtime is None:
        payload.update(await prepare())
    try:
        await client.start_new(orchestrator, instance_id, payload)
    except Exception as exc:
        # A concurrent delivery of the same event started it between our status read and this start.
        again = await client.get_status(instance_id)
        if again and again.runtime_status is not None:
            logger.info("event %s: %s was started concurrently (%s)", event.id, instance_id, type(exc).__name__)
            return Admission(decision, instance_id)
        raise
    logger.info("event %s chain %s: started %s as %s", event.id, decision.chain_id, orchestrator, instance_id)
    return Admission(decision, instance_id, started=True)


#: Runtime states after which a redelivered, accepted event may start its orchestration again.
_RESTARTABLE = frozenset({"Failed", "Terminated", "Canceled"})


def json_response(status: int, body: dict[str, Any]) -> func.HttpResponse:
    """A JSON HTTP answer."""
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def error_response(exc: Exception, delivery: str | None = None) -> func.HttpResponse:
    """Translate the domain's errors to HTTP; anything unexpected is a 500 without details."""
    if isinstance(exc, IncomingRequestError):
        return json_response(exc.status_code, {"delivery": delivery, "verdict": "rejected", "reason": exc.reason})
    if isinstance(exc, ConfigurationError):
        return json_response(503, {"delivery": delivery, "verdict": "rejected", "reason": str(exc),
                                   "setting": exc.setting})
    if isinstance(exc, StoreError):
        logger.error("lineage store unavailable: %s", type(exc).__name__)
        return json_response(503, {"delivery": delivery, "verdict": "rejected",
                                   "reason": "the lineage store is unavailable; redeliver later"})
    logger.exception("unexpected failure")
    return json_response(500, {"delivery": delivery, "verdict": "rejected", "reason": "internal error"})
