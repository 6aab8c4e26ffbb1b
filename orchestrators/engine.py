"""The orchestrate_task engine: plan → sliding-window fan-out over the plan's DAG → retries → approvals → report.

Two pure generators written against :class:`orchestrators.context.OrchestrationContext`, so they run unchanged
under the real Durable replay and under a fake context in unit tests:

* :func:`run_orchestrate_task` — the parent. Plans (``PLAN_TASK``), reports (``REPORT_STATUS``, at most three
  times: started, needs-approval, final), then keeps up to ``max_concurrency`` subtask sub-orchestrations in
  flight, starting the next ready subtask as soon as any one finishes (``task_any``), never batch-and-wait.
  A subtask whose dependency failed or was skipped is skipped. A ``cancel`` event stops the fan-out.
* :func:`run_subtask` — one subtask, its own orchestration (``SUBTASK_ORCHESTRATOR``): an approval gate when the
  subtask writes (external event raced against a durable timer), then ``RUN_SUBTASK`` attempts, each raced
  against a per-attempt timeout, with exponential backoff and deterministic jitter built from durable timers
  (Python ``RetryOptions`` is fixed-interval only) and Retry-After honoured.

Deterministic only: no I/O, no wall clock, no random, no env reads; logging only when not replaying.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrators.context import OrchestrationContext
from shared.errors import ReynoldsError
from shared.names import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    ORCHESTRATE_TASK,
    PLAN_TASK,
    REPORT_STATUS,
    RUN_SUBTASK,
    SUBTASK_ORCHESTRATOR,
    subtask_instance_id,
)
from shared.work.policy import (
    MAX_ERROR_CHARS,
    MAX_SUMMARY_CHARS,
    RetryPolicy,
    blocked_by_failure,
    count_states,
    next_ready,
    retry_delay_seconds,
    truncate,
    validate_plan,
)
from shared.work.status_report import ReportPhase, labels_for
from shared.work.tasks import Plan, Subtask, SubtaskOutcome, SubtaskState, TaskLineage, TaskRequest, TaskSpec

logger = logging.getLogger(__name__)


#: Most REPORT_STATUS calls per orchestration (GitHub content-creating writes are scarce: 80/min, 500/h).
MAX_REPORTS = 3
#: Custom status above this size drops the per-subtask map and keeps the counts (the backend caps it at 16 KB).
MAX_CUSTOM_STATUS_CHARS = 12_000
#: Outcome texts passed to REPORT_STATUS are shorter still: the comment shows one line per subtask.
REPORT_TEXT_CHARS = 200
#: How much of a dependency's summary a dependant subtask receives.
DEPENDENCY_SUMMARY_CHARS = 500

EngineGenerator = Generator[Any, Any, dict[str, Any]]
_M = TypeVar("_M", bound=BaseModel)


class EngineFailed(ReynoldsError):
    """The orchestration could not achieve anything (no plan, or not one subtask succeeded)."""


class SubtaskInput(TaskLineage):
    """Input of the ``run_subtask_orchestrator`` sub-orchestration."""

    model_config = ConfigDict(extra="forbid")

    parent_instance_id: str
    subtask: Subtask
    task: TaskSpec
    #: Summaries of the dependencies' results (truncated), so a specialist can build on them.
    dependency_summaries: dict[str, str] = Field(default_factory=dict)
    policy: RetryPolicy = Field(default_factory=RetryPolicy)


class RunSubtaskResult(BaseModel):
    """What ``RUN_SUBTASK`` returns: success with a summary, or a classified failure."""

    model_config = ConfigDict(extra="ignore")

    ok: bool
    summary: str = ""
    retryable: bool = True
    retry_after: float | None = Field(None, ge=0)
    error: str | None = None

    @field_validator("summary")
    @classmethod
    def _short_summary(cls, value: str) -> str:
        return truncate(value, MAX_SUMMARY_CHARS)

    @field_validator("error")
    @classmethod
    def _short_error(cls, value: str | None) -> str | None:
        return None if value is None else truncate(value, MAX_ERROR_CHARS)


def approval_granted(data: Any) -> tuple[bool, str]:
    """Read an ``approval`` event payload: ``None``/``True``/``{"approved": true, "by": ...}`` approve.

    Returns (granted, who) where who is the approver's login when the payload names one.
    """
    if isinstance(data, dict):
        who = str(data.get("by") or "")[:100]
        return bool(data.get("approved", True)), who
    if data is None:
        return True, ""
    return bool(data), ""


def _task_error(task: Any) -> BaseException | None:
    """The exception a completed task failed with (the SDK stores it as the task's result), else None."""
    result = getattr(task, "result", None)
    return result if isinstance(result, BaseException) else None


def _cancel_timer(timer: Any) -> None:
    """Cancel a timer that lost its race, so the orchestration does not wait on it; completed ones are left."""
    cancel = getattr(timer, "cancel", None)
    if cancel is None or getattr(timer, "is_completed", False):
        return
    try:
        cancel()
    except ValueError:
        # The SDK refuses to cancel a timer that completed in the same episode: nothing left to cancel.
        return


def _validated(model: type[_M], value: Any) -> _M:
    """Validate an orchestration input; a rejection fails the run with a short message (big ones hang it)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise EngineFailed(truncate(f"invalid {model.__name__} input: {exc}", MAX_ERROR_CHARS)) from None


def _after(context: OrchestrationContext, seconds: float) -> Any:
    return context.current_utc_datetime + timedelta(seconds=seconds)


def _outcome(
    subtask: Subtask, status: SubtaskState, attempts: int, summary: str = "", error: str | None = None
) -> dict[str, Any]:
    return SubtaskOutcome(
        id=subtask.id,
        specialist=subtask.specialist,
        status=status,
        attempts=attempts,
        summary=truncate(summary, MAX_SUMMARY_CHARS),
        error=None if error is None else truncate(error, MAX_ERROR_CHARS),
    ).model_dump(mode="json")


# --------------------------------------------------------------------------------------------------- subtask


def run_subtask(context: OrchestrationContext) -> EngineGenerator:
    """One subtask as its own orchestration: approval gate (if it writes), then attempts with backoff.

    Returns a ``SubtaskOutcome`` dict. Never raises for a subtask's own failure: a failed, timed-out or denied
    subtask is an outcome, so the parent keeps going with the others.
    """
    data = _validated(SubtaskInput, context.get_input())
    subtask, policy = data.subtask, data.policy
    cancel = context.wait_for_external_event(CANCEL_EVENT)

    if subtask.writes:
        context.set_custom_status({"state": SubtaskState.WAITING.value, "attempt": 0})
        approval = context.wait_for_external_event(APPROVAL_EVENT)
        deadline = context.create_timer(_after(context, policy.approval_timeout_seconds))
        winner = yield context.task_any([approval, deadline, cancel])
        if winner is deadline:
            context.set_custom_status({"state": SubtaskState.FAILED.value, "attempt": 0})
            return _outcome(subtask, SubtaskState.FAILED, 0, error="approval timed out")
        _cancel_timer(deadline)
        if winner is cancel:
            return _outcome(subtask, SubtaskState.SKIPPED, 0, error="cancelled")
        granted, who = approval_granted(approval.result)
        if not granted:
            return _outcome(subtask, SubtaskState.FAILED, 0, error=f"approval denied{' by ' + who if who else ''}")

    seed = f"{data.parent_instance_id}:{subtask.id}"
    payload = {
        "instance_id": data.parent_instance_id,
        "subtask_instance_id": context.instance_id,
        "idempotency_key": seed,
        "attempt": 0,
        "subtask": subtask.model_dump(mode="json"),
        "task": data.task.model_dump(mode="json"),
        "event_id": data.event_id,
        "chain_id": data.chain_id,
        "depth": data.depth,
        "tracking_issue": data.tracking_issue,
        "dependency_summaries": data.dependency_summaries,
    }
    last_error = "no attempt made"
    for attempt in range(1, policy.max_attempts + 1):
        context.set_custom_status({"state": SubtaskState.RUNNING.value, "attempt": attempt})
        activity = context.call_activity(RUN_SUBTASK, {**payload, "attempt": attempt})
        timeout = context.create_timer(_after(context, policy.attempt_timeout_seconds))
        winner = yield context.task_any([activity, timeout])

        if winner is timeout:
            result = RunSubtaskResult(
                ok=False, retryable=True, error=f"attempt timed out after {policy.attempt_timeout_seconds:g} s"
            )
        else:
            _cancel_timer(timeout)
            failure = _task_error(activity)
            if failure is not None:
                # The activity raised (infrastructure trouble): worth another attempt.
                result = RunSubtaskResult(ok=False, retryable=True, error=f"activity failed: {failure}")
            else:
                try:
                    result = RunSubtaskResult.model_validate(activity.result)
                except ValidationError:
                    # A malformed answer is a bug in the activity; retrying would repeat it.
                    result = RunSubtaskResult(ok=False, retryable=False, error="malformed RUN_SUBTASK result")

        if result.ok:
            context.set_custom_status({"state": SubtaskState.SUCCEEDED.value, "attempt": attempt})
            return _outcome(subtask, SubtaskState.SUCCEEDED, attempt, summary=result.summary)
        last_error = result.error or "failed"
        if not result.retryable or attempt == policy.max_attempts:
            break

        delay = retry_delay_seconds(policy, attempt, seed=seed, retry_after=result.retry_after)
        if not context.is_replaying:
            logger.info(
                "subtask %s attempt %d failed (%s); retrying in %.1f s [instance=%s]",
                subtask.id,
                attempt,
                last_error,
                delay,
                context.instance_id,
            )
        backoff = context.create_timer(_after(context, delay))
        winner = yield context.task_any([backoff, cancel])
        if winner is cancel:
            _cancel_timer(backoff)
            return _outcome(subtask, SubtaskState.SKIPPED, attempt, error=f"cancelled after: {last_error}")

    context.set_custom_status({"state": SubtaskState.FAILED.value, "attempt": attempt})
    return _outcome(subtask, SubtaskState.FAILED, attempt, error=last_error)


# ---------------------------------------------------------------------------------------------------- parent


def _custom_status(states: dict[str, SubtaskState], phase: str) -> dict[str, Any]:
    counts = count_states(states.values())
    status: dict[str, Any] = {
        "phase": phase,
        "subtasks": {sid: state.value for sid, state in states.items()},
        "total": len(states),
        "done": counts[SubtaskState.SUCCEEDED] + counts[SubtaskState.FAILED] + counts[SubtaskState.SKIPPED],
        "succeeded": counts[SubtaskState.SUCCEEDED],
        "running": counts[SubtaskState.RUNNING],
        "waiting": counts[SubtaskState.WAITING],
        "failed": counts[SubtaskState.FAILED],
        "skipped": counts[SubtaskState.SKIPPED],
    }
    if len(json.dumps(status["subtasks"])) > MAX_CUSTOM_STATUS_CHARS:
        status["subtasks"] = {}
        status["truncated"] = True
    return status


def _title(task: TaskSpec) -> str:
    return truncate(f"{task.type}: {task.description}", 200)


class _Reporter:
    """Batches status-comment writes: at most one per phase kind and :data:`MAX_REPORTS` in all."""

    def __init__(self, context: OrchestrationContext, request: TaskRequest) -> None:
        self.context = context
        self.request = request
        self.sequence = 0
        self.failures = 0

    def report(
        self,
        phase: ReportPhase,
        states: dict[str, SubtaskState],
        outcomes: dict[str, dict[str, Any]],
        error: str | None = None,
    ) -> Generator[Any, Any, None]:
        if self.sequence >= MAX_REPORTS:
            return
        self.sequence += 1
        instance_id = self.context.instance_id
        payload = {
            "instance_id": instance_id,
            "idempotency_key": f"{instance_id}:report:{self.sequence}",
            "sequence": self.sequence,
            "final": phase not in (ReportPhase.STARTED, ReportPhase.NEEDS_APPROVAL),
            "phase": phase.value,
            "title": _title(self.request.task),
            "event_id": self.request.event_id,
            "chain_id": self.request.chain_id,
            "depth": self.request.depth,
            "tracking_issue": self.request.tracking_issue,
            "states": {sid: state.value for sid, state in states.items()},
            "outcomes": [
                {
                    **outcome,
                    "summary": truncate(outcome.get("summary") or "", REPORT_TEXT_CHARS),
                    "error": None if outcome.get("error") is None else truncate(outcome["error"], REPORT_TEXT_CHARS),
                }
                for outcome in outcomes.values()
            ],
            "labels": sorted(labels_for(phase)),
            "error": None if error is None else truncate(error, MAX_ERROR_CHARS),
        }
        try:
            yield self.context.call_activity(REPORT_STATUS, payload)
        except Exception as exc:
            # Reporting is best effort: a failed comment must not throw away the subtasks' work.
            self.failures += 1
            if not self.context.is_replaying:
                logger.warning("status report %d failed: %s [instance=%s]", self.sequence, exc, instance_id)


def run_orchestrate_task(context: OrchestrationContext, policy: RetryPolicy | None = None) -> EngineGenerator:
    """Plan a task and run its subtasks over a sliding concurrency window; returns the run's summary dict.

    Output: ``{"plan", "outcomes" (plan order), "succeeded", "failed", "skipped", "max_running", "cancelled",
    "report_failures"}``. Raises :class:`EngineFailed` when there is no usable plan or when not one subtask
    succeeded (unless the run was cancelled, which completes).
    """
    request = _validated(TaskRequest, context.get_input())
    policy = policy or RetryPolicy()
    reporter = _Reporter(context, request)
    instance_id = context.instance_id

    context.set_custom_status({"phase": "planning"})
    try:
        raw_plan = yield context.call_activity(PLAN_TASK, request.model_dump(mode="json"))
        plan = Plan.model_validate(raw_plan)
        validate_plan(plan)
    except Exception as exc:
        error = truncate(f"planning failed: {exc}", MAX_ERROR_CHARS)
        context.set_custom_status({"phase": "failed", "error": error})
        yield from reporter.report(ReportPhase.FAILED, {}, {}, error=error)
        raise EngineFailed(error) from None

    by_id = {subtask.id: subtask for subtask in plan.subtasks}
    states: dict[str, SubtaskState] = dict.fromkeys(by_id, SubtaskState.PENDING)
    outcomes: dict[str, dict[str, Any]] = {}
    window = 1 if request.strategy.approach == "sequential" else request.strategy.max_concurrency
    in_flight: dict[str, Any] = {}
    max_running = 0
    cancelled = False
    approval_reported = False
    cancel = context.wait_for_external_event(CANCEL_EVENT)

    context.set_custom_status(_custom_status(states, "running"))
    yield from reporter.report(ReportPhase.STARTED, states, outcomes)

    while True:
        for sid, broken in blocked_by_failure(plan, states).items():
            states[sid] = SubtaskState.SKIPPED
            outcomes[sid] = _outcome(by_id[sid], SubtaskState.SKIPPED, 0, error=f"dependency {broken} did not succeed")

        launched_gate = False
        for sid in next_ready(plan, states):
            if len(in_flight) >= window:
                break
            subtask = by_id[sid]
            sub_input = SubtaskInput(
                parent_instance_id=instance_id,
                subtask=subtask,
                task=request.task,
                event_id=request.event_id,
                chain_id=request.chain_id,
                depth=request.depth,
                tracking_issue=request.tracking_issue,
                dependency_summaries={
                    dep: truncate(outcomes[dep].get("summary") or "", DEPENDENCY_SUMMARY_CHARS)
                    for dep in subtask.dependencies
                },
                policy=policy,
            )
            in_flight[sid] = context.call_sub_orchestrator(
                SUBTASK_ORCHESTRATOR, sub_input.model_dump(mode="json"), subtask_instance_id(instance_id, sid)
            )
            # The parent cannot see the approval land without a round trip; a gated subtask shows as waiting
            # until it finishes (its own custom status says when it really runs).
            states[sid] = SubtaskState.WAITING if subtask.writes else SubtaskState.RUNNING
            launched_gate = launched_gate or subtask.writes
        max_running = max(max_running, len(in_flight))
        context.set_custom_status(_custom_status(states, "running"))

        if launched_gate and not approval_reported:
            approval_reported = True
            yield from reporter.report(ReportPhase.NEEDS_APPROVAL, states, outcomes)

        if not in_flight:
            break

        winner = yield context.task_any([*in_flight.values(), cancel])
        if winner is cancel:
            cancelled = True
            who = approval_granted(cancel.result)[1]
            reason = f"cancelled{' by ' + who if who else ''}"
            for sid, state in states.items():
                if state in (SubtaskState.PENDING, SubtaskState.RUNNING, SubtaskState.WAITING):
                    states[sid] = SubtaskState.SKIPPED
                    outcomes[sid] = _outcome(by_id[sid], SubtaskState.SKIPPED, 0, error=reason)
            in_flight.clear()
            break

        sid = next(key for key, task in in_flight.items() if task is winner)
        del in_flight[sid]
        outcome = _read_outcome(by_id[sid], winner)
        outcomes[sid] = outcome
        states[sid] = SubtaskState(outcome["status"])
        if not context.is_replaying:
            logger.info("subtask %s %s [instance=%s]", sid, outcome["status"], instance_id)

    ordered = [outcomes[subtask.id] for subtask in plan.subtasks]
    counts = count_states(states.values())
    succeeded, failed, skipped = (
        counts[SubtaskState.SUCCEEDED],
        counts[SubtaskState.FAILED],
        counts[SubtaskState.SKIPPED],
    )
    if cancelled:
        phase = ReportPhase.CANCELLED
    elif succeeded == len(states):
        phase = ReportPhase.SUCCEEDED
    elif succeeded:
        phase = ReportPhase.PARTIAL
    else:
        phase = ReportPhase.FAILED
    context.set_custom_status(_custom_status(states, phase.value))
    yield from reporter.report(phase, states, outcomes)

    if phase is ReportPhase.FAILED:
        first = next((o["error"] for o in ordered if o.get("error")), "no subtask succeeded")
        raise EngineFailed(truncate(f"no subtask succeeded ({failed} failed, {skipped} skipped): {first}"))
    return {
        "plan": plan.model_dump(mode="json"),
        "outcomes": ordered,
        "succeeded": succeeded,
        "failed": failed,
        "skipped": skipped,
        "max_running": max_running,
        "cancelled": cancelled,
        "report_failures": reporter.failures,
    }


def _read_outcome(subtask: Subtask, task: Any) -> dict[str, Any]:
    """A finished sub-orchestration's outcome; a crashed or malformed one becomes a failed outcome."""
    failure = _task_error(task)
    if failure is not None:
        return _outcome(subtask, SubtaskState.FAILED, 0, error=f"subtask orchestration failed: {failure}")
    try:
        outcome = SubtaskOutcome.model_validate(getattr(task, "result", None))
    except ValidationError:
        return _outcome(subtask, SubtaskState.FAILED, 0, error="malformed subtask outcome")
    if outcome.id != subtask.id or outcome.status not in (
        SubtaskState.SUCCEEDED,
        SubtaskState.FAILED,
        SubtaskState.SKIPPED,
    ):
        return _outcome(subtask, SubtaskState.FAILED, outcome.attempts, error="inconsistent subtask outcome")
    return _outcome(subtask, outcome.status, outcome.attempts, outcome.summary, outcome.error)


__all__ = [
    "APPROVAL_EVENT",
    "CANCEL_EVENT",
    "ORCHESTRATE_TASK",
    "PLAN_TASK",
    "REPORT_STATUS",
    "RUN_SUBTASK",
    "SUBTASK_ORCHESTRATOR",
    "EngineFailed",
    "RunSubtaskResult",
    "SubtaskInput",
    "approval_granted",
    "run_orchestrate_task",
    "run_subtask",
    "subtask_instance_id",
]
