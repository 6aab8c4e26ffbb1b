"""Deciding an event, the same for every door: route, loop guard (failing safe), metrics, orchestration input.

The triggers (``triggers/ingress.py``) and the Graph ingest activity (which decides only after fetching a
Teams message) both call ``judge``; what an accepted event then starts is built by ``orchestration_input``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared import names
from shared.errors import CorruptState
from shared.loop.envelope import Actor, EventEnvelope, Platform, Target, truncate
from shared.loop.lineage import Decision
from shared.loop.rules import Verdict
from shared.services import Services
from shared.telemetry import bind_log_context, record_loop_stopped, record_verdict
from shared.work.quotas import take_task_quota
from shared.work.reply import reply_input
from shared.work.routing import route, task_request_of
from shared.work.tasks import TaskSpec
from shared.work.triage import TriageInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judged:
    """The loop guard's decision and the orchestration it lets run, if any."""

    decision: Decision
    orchestrator: str | None

    @property
    def runs(self) -> bool:
        """Whether an orchestration should run for this event (accepted, or a redelivery of an accepted one)."""
        verdict = self.decision.verdict
        accepted = verdict is Verdict.ACCEPTED or (
            verdict is Verdict.DUPLICATE and self.decision.original_verdict is Verdict.ACCEPTED)
        return accepted and self.orchestrator is not None


async def judge(event: EventEnvelope, services: Services) -> Judged:
    """Route and decide ``event``; corrupt lineage state holds it as loop-suspect (recorded, not run)."""
    orchestrator = route(event, services.settings.routing_profile)
    if orchestrator == names.TRIAGE and (event.target is None or event.target.number is None):
        orchestrator = None
    try:
        decision = await asyncio.to_thread(services.lineage.decide, event, routed=orchestrator is not None)
    except CorruptState as exc:
        logger.error("event %s: %s; held as loop-suspect", event.id, exc)
        decision = await asyncio.to_thread(services.lineage.hold, event, str(exc))
    runs = decision.verdict is Verdict.ACCEPTED or (
        decision.verdict is Verdict.DUPLICATE and decision.original_verdict is Verdict.ACCEPTED)
    if orchestrator == names.ORCHESTRATE_TASK and runs:
        quota = await asyncio.to_thread(take_task_quota, services.store, event, services.clock())
        if not quota.allowed:
            # Refused with a clear answer (the Teams acknowledgement shows it), recorded as such; nothing starts.
            if decision.verdict is Verdict.ACCEPTED:
                decision = await asyncio.to_thread(services.lineage.refuse, decision, quota.reason, "task-quota")
            else:
                decision = replace(decision, verdict=Verdict.REJECTED, reasons=(quota.reason,), rule="task-quota")
            orchestrator = None
    # The record stating the decision carries it as custom dimensions (verdict, rule, chain), refusals included:
    # bound first, in place of whatever the context held (an operator queries customDimensions.verdict == "loop").
    bind_log_context(replace=True, event_id=event.id, chain_id=decision.chain_id, verdict=decision.verdict.value,
                     rule=decision.rule)
    logger.info("event %s chain %s: %s (%s)", event.id, decision.chain_id, decision.verdict.value, decision.reason)
    record_verdict(decision.verdict.value, event.platform.value)
    if decision.verdict is Verdict.LOOP:
        record_loop_stopped(decision.rule or "loop")
    return Judged(decision, orchestrator)


def orchestration_input(orchestrator: str, event: EventEnvelope, decision: Decision, *,
                        out_queue: str = "reynolds-out") -> dict[str, Any]:
    """The (small) input of the orchestration an event starts."""
    if orchestrator == names.REPLY:
        return reply_input(event, decision, out_queue=out_queue).model_dump(mode="json")
    if orchestrator == names.ORCHESTRATE_TASK:
        request = task_request_of(event)
        if request is None:
            raise ValueError("orchestrate_task needs a task")
        return request.model_copy(update={"event_id": event.id, "chain_id": decision.chain_id,
                                          "depth": decision.depth}).model_dump(mode="json")
    if orchestrator == names.TRIAGE:
        if event.target is None or not event.target.repo or event.target.number is None:
            raise ValueError("triage needs an issue target")
        return TriageInput(
            event_id=event.id, event_type=event.type, chain_id=decision.chain_id or "", depth=decision.depth,
            repo=event.target.repo, number=event.target.number, installation_id=event.target.installation_id,
            actor=event.actor.login, actor_kind=decision.actor_kind(event.actor.kind),
            association=event.actor.association, text=event.text[:2000], received_at=event.time,
        ).model_dump(mode="json")
    raise ValueError(f"no input builder for {orchestrator}")  # pragma: no cover - the routing table is closed


#: The rule word of a task asked for through a keyed door (HTTP API, MCP tool): recorded, not judged.
TASK_REQUEST_RULE = "task-request"
#: How each keyed door names the caller in the chain (a function key proves access, not who holds it).
TASK_DOORS = {"http": ("POST /api/orchestrations", "http-api"), "mcp": ("MCP tool orchestrate_task", "mcp-client")}


def task_request_event(event_id: str, door: str, task: TaskSpec, tracking_issue: str | None,
                       time: datetime) -> EventEnvelope:
    """The envelope of a task asked for through the HTTP API or an MCP tool (``door`` ``http`` or ``mcp``).

    The caller proves only that it holds a function key: it is named after the door, taken as a person
    (depth 0, as a task through these doors always started), and the target is the tracking issue when the
    caller named one.
    """
    where, login = TASK_DOORS[door]
    target = None
    if tracking_issue:
        repo, _, number = tracking_issue.partition("#")
        target = Target(platform=Platform.GITHUB, key=tracking_issue, repo=repo, number=int(number))
    return EventEnvelope(id=event_id, source=f"/reynolds/{door}", type="com.reynolds.task.requested", time=time,
                         platform=Platform.HTTP, event="task", action="requested",
                         actor=Actor(login=login, account_type="function key"), target=target,
                         text=truncate(f"{task.type}: {task.description}", 500),
                         data={"door": where, "task_type": task.type})


def open_task_chain(services: Services, event: EventEnvelope) -> Decision:
    """Record a keyed door's task request as the first event of its own chain (``LineageService.open_chain``),
    so the task's chain and its effects can be explored; a retried request answers ``duplicate``, same chain."""
    where = str(event.data.get("door") or event.source)
    reason = f"task asked for through {where} (function key): starts its own chain"
    decision = services.lineage.open_chain(event, reason, TASK_REQUEST_RULE)
    logger.info("event %s chain %s: %s (%s)", event.id, decision.chain_id, decision.verdict.value, decision.reason)
    return decision
