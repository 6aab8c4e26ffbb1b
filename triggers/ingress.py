"""The shared tail of every trigger: decide with the loop guard, start the orchestration, answer — or hand over.

Triggers do five things (read raw bytes, verify, parse, decide, start and answer); this module is the last
two, the same for every door. It never calls GitHub or a model: it answers within the caller's deadline.

Nothing verified is lost: when deciding or starting fails (the lineage store or the Durable client down, a
timeout, anything unexpected) or takes longer than ``INLINE_BUDGET_SECONDS``, the door writes the raw
delivery to the inbox (a Storage queue, ``names.INBOX_QUEUE``, through a queue output binding: the host
writes it before the answer goes out) and answers 202 ``queued``. ``triggers/inbox.py`` then decides it with
the door's own code, with retries and a poison path with a reason. GitHub never redelivers a failed delivery
by itself, so before the inbox a 503 here lost the event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field

from shared.admission import judge, orchestration_input
from shared.errors import ConfigurationError, IncomingRequestError, StoreError
from shared.loop.envelope import EventEnvelope
from shared.loop.lineage import Decision, instance_id_for
from shared.services import Services
from shared.telemetry import bind_log_context
from shared.work.restart import restart_orchestration

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
    # ``judge`` binds the decision's ids (event, chain, verdict, rule) before logging it: every later log line of
    # this invocation carries them too (custom dimensions in Application Insights).
    judged = await judge(event, services)
    decision, orchestrator = judged.decision, judged.orchestrator
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
        if runtime is None:
            await client.start_new(orchestrator, instance_id, payload)
        else:
            await restart_orchestration(client, orchestrator, instance_id, payload)
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


# -- the inbox ------------------------------------------------------------------------------------------------
#: How long a door tries to decide and start inline before it hands the delivery to the inbox: well inside the
#: platform's deadline (GitHub waits 10 s for a 2xx, Teams 5 s, Graph 10 s) so the answer is always in time.
INLINE_BUDGET_SECONDS = {"github": 6.0, "teams": 3.0, "graph": 6.0}
#: A Storage queue message holds at most 64 KiB, and the Functions binding base64-encodes it: the item's JSON
#: text stays under this. A larger delivery (rare: comments are small, bodies compress ~5x) is answered 503 and
#: left to GitHub delivery recovery (``triggers/recovery.py``).
MAX_INBOX_CHARS = 48_000


class InboxItem(BaseModel):
    """A verified delivery waiting in the inbox: the raw request as it arrived, so the inbox re-verifies and
    decides it with exactly the door's code. ``generation`` counts re-enqueues after ``maxDequeueCount``."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["github", "teams", "graph", "servicebus"]
    delivery: str | None = None
    event_id: str | None = None
    headers: dict[str, str]
    #: base64 of the zlib-compressed raw body.
    body: str
    received_at: datetime
    generation: int = Field(0, ge=0)
    last_error: str | None = None
    #: Times the poison-queue reader put it back into the inbox (``triggers/inbox.py``, ``inbox_poison``).
    reparked: int = Field(0, ge=0)

    @classmethod
    def of(cls, source: Literal["github", "teams", "graph", "servicebus"], headers: Mapping[str, str], raw: bytes, *,
           received_at: datetime, delivery: str | None = None, event_id: str | None = None) -> InboxItem:
        """An item for ``raw`` (compressed); cookies and forwarded-for headers are not kept."""
        kept = {str(k): str(v) for k, v in headers.items() if str(k).lower() not in _DROPPED_HEADERS}
        return cls(source=source, delivery=delivery, event_id=event_id, headers=kept, received_at=received_at,
                   body=base64.b64encode(zlib.compress(raw, 6)).decode("ascii"))

    def raw(self) -> bytes:
        """The body exactly as it arrived."""
        return zlib.decompress(base64.b64decode(self.body))


_DROPPED_HEADERS = frozenset({"cookie", "x-forwarded-for", "x-original-url", "x-arr-log-id", "client-ip"})


def goes_to_inbox(exc: BaseException) -> bool:
    """Whether a failure to decide or start is transient (store, Durable, timeout, unexpected): the inbox retries
    it. A bad request or a missing setting is answered as before."""
    return not isinstance(exc, IncomingRequestError | ConfigurationError)


async def within(budget: float, work: Awaitable[Admission]) -> Admission:
    """``work`` within ``budget`` seconds (``TimeoutError`` after; the inbox then decides the same event, and the
    instance id keeps it to one orchestration should the abandoned attempt still start it)."""
    return await asyncio.wait_for(work, timeout=budget)


def hand_to_inbox(inbox: func.Out[str], item: InboxItem, exc: BaseException) -> func.HttpResponse:
    """Write ``item`` to the inbox and answer 202 ``queued``; 503 (as before the inbox) when it is too large."""
    text = item.model_dump_json()
    if len(text) > MAX_INBOX_CHARS:
        logger.error("%s delivery %s: %d characters do not fit the inbox; answered 503", item.source,
                     item.delivery, len(text))
        return error_response(exc if isinstance(exc, Exception) else RuntimeError(str(exc)), item.delivery)
    inbox.set(text)
    logger.warning("%s delivery %s event %s: deciding inline failed (%s); handed to the inbox", item.source,
                   item.delivery, item.event_id, type(exc).__name__)
    return json_response(202, queued_body(item))


def queued_body(item: InboxItem) -> dict[str, Any]:
    """The answer for a delivery the inbox will decide (same keys as ``Admission.body``)."""
    return {"delivery": item.delivery, "event_id": item.event_id, "verdict": "queued",
            "reason": "received; Reynolds decides it from its inbox shortly", "chain_id": None,
            "instance_id": None, "status_url": None}
