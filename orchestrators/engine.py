"""The orchestrate_task engine: plan → a window of subtask orchestrations over the plan's DAG → report.

Two pure generators written against :class:`orchestrators.context.OrchestrationContext`, so they run unchanged
under the real Durable replay and under a fake context in unit tests.

Why this shape — what the Durable extension does with a Python orchestrator's answer (read from its sources;
modelled and pinned in ``tools.harness.host_rules``):

1. ``OutOfProcOrchestrationShim.ProcessAsyncActionsV2`` walks the SDK's action list in order and *awaits each
   entry before invoking the next*; the SDK puts only not-yet-scheduled tasks into a new ``task_any``. A
   classic sliding window (``task_any(in_flight + [new])``) thus becomes ``WhenAny{new}`` entries the host
   awaits one by one: after the first wave one subtask runs at a time. A wait whose entry could hold the
   walk (new waits beside old tasks, without a START in it: point 3) therefore carries a *marker*: a
   far-future timer cancelled before it is yielded. The shim cancels
   its token when it invokes the entry, the task completes at once (DTFx ``TaskOrchestrationContext.
   CreateTimer``) and the walk moves on; the orchestrator's own ``task_any`` still waits for the real tasks.
   The marker costs one ``TimerCreated`` event, holds nothing open and fires (harmlessly) only if the
   instance still runs days later.
2. DTFx completes or continues an instance only when none of the activities, sub-orchestrations or timers it
   scheduled is open (``if (!context.HasOpenTasks)``), and they cannot be cancelled. So the parent does not
   call its subtasks as sub-orchestrations: ``START_SUBTASKS`` (an activity with a durable client) starts
   each wave as top-level instances with id ``<parent>:<run>:<subtask id>`` (``shared.names.subtask_instance_id``,
   at most 100 characters; approvals reach them there, reading the run from the parent's custom status), and
   each subtask reports its outcome with the event ``subtask_done_<run>_<id>`` (``NOTIFY_PARENT``). The run is
   a fresh token of each run of the parent's instance id (``context.new_uuid`` in its first execution): a
   parent restarted under its id (after Failed/Terminated, by a redelivery or by recovery) starts its own
   subtasks and never adopts, or waits on, a previous run's. An attempt's timeout fires on the subtask's
   timer, but DTFx cannot cancel the activity: what bounds a hung specialist is the activity's own deadline
   (``shared.work.task_service.SPECIALIST_DEADLINE_SECONDS``, 240 s) below the attempt timeout (300 s), below
   host.json's ``functionTimeout`` (600 s). An invocation reaching ``functionTimeout`` would not end alone: on
   Python the host restarts the worker and aborts every invocation running on it
   (Azure/azure-functions-host#8720). Cancel raises ``cancel`` to the running subtasks (``CANCEL_SUBTASKS``,
   after any START still queued has run) and the parent ends at once. Event waits are not open tasks.
3. With no open tasks between waves, the parent can ``continue_as_new`` every :data:`EVENTS_PER_EXECUTION`
   outcomes, carrying its state (:class:`EngineCarry`; the plan packed as rows under shared keys, each
   specialist named once: :func:`_pack_subtasks`): history per execution, and the replay cost of every
   episode, stay bounded at any plan size. Outcomes that land in the episode that continues are dropped with
   it; the next execution's first ``START_SUBTASKS`` collects them from the subtasks' own status. A wave's
   ``START_SUBTASKS`` shares the wait entry with the new subtasks' event waits: the host sees the activity
   complete soon and walks on, so those entries need no marker.
5. Supervision: outcome waits are raced against a durable timer (:data:`SUPERVISE_SECONDS`). When it fires,
   the next ``START_SUBTASKS`` collects every subtask still owed from the task hub: a Completed one's output (its
   NOTIFY was lost), a failed outcome for one that Failed, was Terminated or vanished. A failed
   ``START_SUBTASKS`` (the task hub unreachable) leaves its subtasks unconfirmed: they are sent again
   (``START_SUBTASKS`` leaves ids it knows alone) every :data:`START_RETRY_SECONDS`, and after
   :data:`START_ATTEMPTS` calls they are failed outcomes. The timer is cancelled before the parent continues as
   new or ends. Whatever outcome is lost, wherever in the plan, the parent finishes.
4. Events have one name per subtask: the Python SDK 1.7 keeps a single buffered event per name
   (``TaskOrchestrationExecutor.set_task_value`` → ``deferred_tasks[name]``), so same-named outcomes
   arriving while the parent waits for an activity would overwrite each other.

Replay cost: the DAG bookkeeping (remaining dependencies, ready queue, skip cones) is updated once per
outcome, not rescanned per step; the custom status is set before every yield, on replay too (DTFx replaces the
status every episode with what that episode set: an episode that only replays, a duplicate outcome or a marker
firing days later, would otherwise clear it and with it what ``/reynolds approve`` reads), and kept within the
extension's 16 KB of UTF-16 (the per-subtask map only for plans up to 32, the ``waiting_ids`` approvals read
always);
subtask inputs carry ids and the subtask node, never the description: the run's first ``START_SUBTASKS``
saves the task once, and each ``RUN_SUBTASK`` reads it by reference (one small point read).

* :func:`run_orchestrate_task` — the parent: plan, report (at most three times: started, needs-approval,
  final; the last two retried like answers, ``orchestrators.backoff.ANSWER_RETRY``), keep up to
  ``max_concurrency`` subtasks running as soon as they are ready, skip the downstream cone of a failure, stop
  on ``cancel``.
* :func:`run_subtask` — one subtask: an approval gate when it writes (raced against a durable timer and
  ``cancel``), then ``RUN_SUBTASK`` attempts, each raced against a per-attempt timeout, with exponential
  backoff and deterministic jitter from durable timers, Retry-After honoured; reports to the parent.

Deterministic only: no I/O, no wall clock, no random, no env reads; logging only when not replaying.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
from collections.abc import Generator
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrators.backoff import ANSWER_RETRY, call_with_backoff
from orchestrators.context import OrchestrationContext
from shared.errors import ReynoldsError
from shared.names import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    CANCEL_SUBTASKS,
    NOTIFY_PARENT,
    ORCHESTRATE_TASK,
    PLAN_TASK,
    REPORT_STATUS,
    RUN_SUBTASK,
    START_SUBTASKS,
    SUBTASK_ORCHESTRATOR,
    subtask_done_event,
    subtask_instance_id,
)
from shared.work.policy import (
    MAX_ERROR_CHARS,
    MAX_SUMMARY_CHARS,
    RetryPolicy,
    failure_text,
    retry_delay_seconds,
    truncate,
    validate_plan,
)
from shared.work.status_report import ReportPhase, labels_for
from shared.work.tasks import Plan, Subtask, SubtaskOutcome, SubtaskState, TaskLineage, TaskRequest, TaskSpec

logger = logging.getLogger(__name__)


#: Most REPORT_STATUS calls per orchestration (GitHub content-creating writes are scarce: 80/min, 500/h).
MAX_REPORTS = 3
#: The extension fails an orchestration whose custom status exceeds 16 KB of UTF-16 JSON; stay within it.
MAX_CUSTOM_STATUS_BYTES = 16 * 1024
#: Outcome texts passed to REPORT_STATUS are shorter still: the comment shows one line per subtask.
REPORT_TEXT_CHARS = 200
#: Length of the status comment's title (task type and the head of its description).
TITLE_CHARS = 200
#: The custom status lists every subtask's state only for plans up to this size: DTFx writes the status to the
#: instance table every episode, so a larger map would cost O(N) bytes per outcome (counts and the waiting ids,
#: what approvals read, are always there).
STATUS_MAP_MAX_SUBTASKS = 32
#: How much of a dependency's summary a dependant subtask receives.
DEPENDENCY_SUMMARY_CHARS = 500
#: Subtask outcomes handled per parent execution before it continues as new (bounds history and replay) ...
EVENTS_PER_EXECUTION = 4
#: ... or more on large plans: each continue-as-new writes the carried state (O(N)) three times (ContinueAsNew
#: result, ExecutionStarted message and history), so a fixed count writes O(N²) bytes in all, while each outcome
#: more per execution makes every replay longer (parent CPU). N²/this many outcomes per execution balances the
#: two (N = 100: 5; N = 200: 17: about 1.89 MB written in all with the plan packed (``_pack_subtasks``),
#: parent CPU about 0.44x flat; docs/benchmarks.md).
CARRY_BALANCE = 2450
#: How far ahead the cancelled marker timers point: beyond any wait of a live run, within one durable timer.
MARKER_SECONDS = 5 * 24 * 3600
#: Attempts to deliver a subtask's outcome to its parent (the parent also collects it when it continues).
NOTIFY_ATTEMPTS = 3
NOTIFY_RETRY_SECONDS = 5.0
#: How often the parent reconciles the subtasks it waits for with their runtime status (a lost outcome, a
#: subtask that Failed, was Terminated or vanished): a durable timer, so nothing waits for ever on an event.
SUPERVISE_SECONDS = 600.0
#: After a START_SUBTASKS call failed (the task hub unreachable), the parent tries again this soon ...
START_RETRY_SECONDS = 30.0
#: ... this many times in all, then the subtasks it could not start are failed outcomes.
START_ATTEMPTS = 5

#: Needs-approval and final reports retry like answers (``orchestrators.backoff.ANSWER_RETRY``).
REPORT_RETRY = ANSWER_RETRY

EngineGenerator = Generator[Any, Any, Any]
_M = TypeVar("_M", bound=BaseModel)
_TERMINAL = (SubtaskState.SUCCEEDED, SubtaskState.FAILED, SubtaskState.SKIPPED)


class EngineFailed(ReynoldsError):
    """The orchestration could not achieve anything (no plan, or not one subtask succeeded)."""


class SubtaskInput(TaskLineage):
    """Input of the ``run_subtask_orchestrator`` orchestration: ids and the subtask node, never the task text."""

    model_config = ConfigDict(extra="forbid")

    parent_instance_id: str
    #: The parent's run (a restarted parent gets a new one): in this subtask's instance id and its event name.
    run: str = ""
    subtask: Subtask
    #: Summaries of the dependencies' results (truncated), so a specialist can build on them.
    dependency_summaries: dict[str, str] = Field(default_factory=dict)
    policy: RetryPolicy = Field(default_factory=RetryPolicy)
    #: Only for a subtask started on its own; the engine leaves it out and ``RUN_SUBTASK`` reads the task the
    #: parent's first ``START_SUBTASKS`` saved (``shared.work.task_service.TaskSpecRef``): the description
    #: enters no subtask history.
    task: TaskSpec | None = None


class EngineCarry(BaseModel):
    """The parent's state carried from one execution to the next (``continue_as_new``)."""

    model_config = ConfigDict(extra="forbid")

    request: TaskRequest
    #: The validated plan's subtasks (defaults left out), in plan order; re-validated only in the first execution.
    subtasks: list[dict[str, Any]]
    planner: str = "offline"
    rationale: str = ""
    policy: RetryPolicy = Field(default_factory=RetryPolicy)
    #: States of the subtasks without an outcome (the others' state is their outcome's status).
    states: dict[str, SubtaskState]
    #: Compact outcomes (``_compact``): a bare attempt count is a success whose summary stays with the subtask.
    outcomes: dict[str, dict[str, Any] | int] = Field(default_factory=dict)
    running: list[str] = Field(default_factory=list)
    max_running: int = 0
    reports: int = 0
    report_failures: int = 0
    approval_reported: bool = False
    generation: int = 0

    @model_validator(mode="before")
    @classmethod
    def _states_of_finished(cls, value: Any) -> Any:
        """The carry leaves out the state of a finished subtask (its outcome says it): put it back."""
        if not isinstance(value, dict):
            return value
        if isinstance(value.get("subtasks"), dict):
            value = {**value, "subtasks": _unpack_subtasks(value["subtasks"])}
        if isinstance(value.get("outcomes"), dict) and isinstance(value.get("states"), dict):
            states = dict(value["states"])
            for sid, outcome in value["outcomes"].items():
                if sid not in states:
                    states[sid] = outcome.get("status") if isinstance(outcome, dict) else SubtaskState.SUCCEEDED.value
            if len(states) != len(value["states"]):
                # Keep plan order: the window iterates states in it.
                order = [node.get("id") for node in value.get("subtasks") or [] if isinstance(node, dict)]
                value = {**value, "states": {sid: states[sid] for sid in order if sid in states} or states}
        return value

    #: This run of the instance id (``context.new_uuid`` of its first execution): part of every subtask id.
    run: str = ""
    #: The task was saved for the subtasks (by a START_SUBTASKS that completed).
    task_saved: bool = False
    #: Subtasks whose START_SUBTASKS call failed, with the number of failed calls (resent on the next pass).
    unconfirmed: dict[str, int] = Field(default_factory=dict)


#: Values a plan node leaves out (``Subtask`` defaults, ``exclude_defaults``): a packed row holds them instead.
_NODE_DEFAULTS: dict[str, Any] = {"dependencies": [], "risk": "low", "writes": False}


def _pack_subtasks(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The plan's nodes as the carry writes them: one row of values per node under shared column names, each
    specialist named once (rows hold its index); a column a node leaves out holds the field's default. The
    carry is written to the task hub on every continue-as-new, and per-node keys and repeated specialist names
    were most of its bytes at N = 200 (docs/benchmarks.md). :func:`_unpack_subtasks` gives the same nodes back."""
    keys: list[str] = []
    for node in nodes:
        keys += [key for key in node if key not in keys]
    specialists = list(dict.fromkeys(str(node.get("specialist", "")) for node in nodes))
    index = {name: i for i, name in enumerate(specialists)}
    rows = [[index[str(node.get(key, ""))] if key == "specialist" else node.get(key, _NODE_DEFAULTS.get(key))
             for key in keys] for node in nodes]
    return {"keys": keys, "specialists": specialists, "rows": rows}


def _unpack_subtasks(packed: dict[str, Any]) -> Any:
    """The nodes :func:`_pack_subtasks` packed, defaults left out again; anything else is returned for the
    model to refuse."""
    keys, specialists, rows = packed.get("keys"), packed.get("specialists"), packed.get("rows")
    if not (isinstance(keys, list) and isinstance(specialists, list) and isinstance(rows, list)):
        return packed
    nodes: list[dict[str, Any]] = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(keys):
            return packed
        node: dict[str, Any] = {}
        for key, item in zip(keys, row, strict=True):
            if key == "specialist":
                if not isinstance(item, int) or not 0 <= item < len(specialists):
                    return packed
                item = specialists[item]
            if key in _NODE_DEFAULTS and item == _NODE_DEFAULTS[key]:
                continue
            node[key] = item
        nodes.append(node)
    return nodes


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


def _first_of(context: OrchestrationContext, tasks: list[Any]) -> EngineGenerator:
    """``yield task_any(tasks)`` without holding back the host's walk over the action list (module docstring,
    point 1): the entry carries a cancelled marker timer, so the host completes it at once."""
    marker = context.create_timer(context.current_utc_datetime + timedelta(seconds=MARKER_SECONDS))
    marker.cancel()
    winner = yield context.task_any([*tasks, marker])
    while winner is marker:  # the marker fired, days later: nothing happened, keep waiting
        winner = yield context.task_any(tasks)
    return winner


def _validated(model: type[_M], value: Any) -> _M:
    """Validate an orchestration input; a rejection fails the run with a short message (big ones hang it)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise EngineFailed(truncate(f"invalid {model.__name__} input: {exc}", MAX_ERROR_CHARS)) from None


def _after(context: OrchestrationContext, seconds: float) -> Any:
    return context.current_utc_datetime + timedelta(seconds=seconds)


def _outcome(
    subtask: Subtask | dict[str, Any], status: SubtaskState, attempts: int, summary: str = "", error: str | None = None
) -> dict[str, Any]:
    node = subtask if isinstance(subtask, dict) else {"id": subtask.id, "specialist": subtask.specialist.value}
    return {
        "id": node["id"],
        "specialist": node["specialist"],
        "status": status.value,
        "attempts": attempts,
        "summary": truncate(summary, MAX_SUMMARY_CHARS),
        "error": None if error is None else truncate(error, MAX_ERROR_CHARS),
    }


# --------------------------------------------------------------------------------------------------- subtask


def run_subtask(context: OrchestrationContext) -> EngineGenerator:
    """One subtask as its own orchestration: approval gate (if it writes), then attempts with backoff.

    Returns a ``SubtaskOutcome`` dict and raises it to the parent first (``NOTIFY_PARENT``). Never raises for
    the subtask's own failure: a failed, timed-out, denied or cancelled subtask is an outcome.
    """
    data = _validated(SubtaskInput, context.get_input())
    outcome = yield from _attempts(context, data)
    delivery = {
        "parent_instance_id": data.parent_instance_id,
        "event": subtask_done_event(data.subtask.id, data.run),
        "outcome": outcome,
    }
    for attempt in range(1, NOTIFY_ATTEMPTS + 1):
        try:
            yield context.call_activity(NOTIFY_PARENT, delivery)
            break
        except Exception as exc:
            if not context.is_replaying:
                logger.warning("subtask %s: telling the parent failed (%s) [instance=%s]", data.subtask.id,
                               failure_text(exc), context.instance_id)
            if attempt < NOTIFY_ATTEMPTS:
                yield context.create_timer(_after(context, NOTIFY_RETRY_SECONDS * attempt))
    return outcome


def _attempts(context: OrchestrationContext, data: SubtaskInput) -> EngineGenerator:
    subtask, policy = data.subtask, data.policy
    cancel = context.wait_for_external_event(CANCEL_EVENT)

    if subtask.writes:
        context.set_custom_status({"state": SubtaskState.WAITING.value, "attempt": 0})
        approval = context.wait_for_external_event(APPROVAL_EVENT)
        deadline = context.create_timer(_after(context, policy.approval_timeout_seconds))
        winner = yield context.task_any([approval, deadline, cancel])  # all three new: one entry, no marker
        if winner is deadline:
            context.set_custom_status({"state": SubtaskState.FAILED.value, "attempt": 0})
            return _outcome(subtask, SubtaskState.FAILED, 0, error="approval timed out")
        _cancel_timer(deadline)
        if winner is cancel:
            return _outcome(subtask, SubtaskState.SKIPPED, 0, error=_cancelled(cancel))
        granted, who = approval_granted(approval.result)
        if not granted:
            return _outcome(subtask, SubtaskState.FAILED, 0, error=f"approval denied{' by ' + who if who else ''}")

    seed = f"{data.parent_instance_id}:{subtask.id}"
    # The task by reference (the parent saved it once per run): attempts carry ids, not the description.
    task: dict[str, Any] = (
        {"task": data.task.model_dump(mode="json")}
        if data.task is not None
        else {"task_ref": {"parent_instance_id": data.parent_instance_id, "run": data.run}}
    )
    payload = {
        "instance_id": data.parent_instance_id,
        "subtask_instance_id": context.instance_id,
        "idempotency_key": f"{seed}:{data.run}" if data.run else seed,
        "attempt": 0,
        "subtask": subtask.model_dump(mode="json"),
        **task,
        "event_id": data.event_id,
        "chain_id": data.chain_id,
        "depth": data.depth,
        "tracking_issue": data.tracking_issue,
        "dependency_summaries": data.dependency_summaries,
    }
    last_error = "no attempt made"
    attempt = 0
    for attempt in range(1, policy.max_attempts + 1):
        context.set_custom_status({"state": SubtaskState.RUNNING.value, "attempt": attempt})
        activity = context.call_activity(RUN_SUBTASK, {**payload, "attempt": attempt})
        timeout = context.create_timer(_after(context, policy.attempt_timeout_seconds))
        winner = yield context.task_any([activity, timeout, cancel])
        if winner is cancel:
            # The attempt's activity stays open (DTFx cannot cancel it): this instance ends when it returns,
            # the parent hears of the cancellation now.
            _cancel_timer(timeout)
            return _outcome(subtask, SubtaskState.SKIPPED, attempt, error=_cancelled(cancel))
        if winner is timeout:
            result = RunSubtaskResult(
                ok=False, retryable=True, error=f"attempt timed out after {policy.attempt_timeout_seconds:g} s"
            )
        else:
            _cancel_timer(timeout)
            failure = _task_error(activity)
            if failure is not None:
                # The activity raised (infrastructure trouble): worth another attempt.
                result = RunSubtaskResult(ok=False, retryable=True, error=f"activity failed: {failure_text(failure)}")
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
            return _outcome(subtask, SubtaskState.SKIPPED, attempt, error=f"{_cancelled(cancel)} after: {last_error}")

    context.set_custom_status({"state": SubtaskState.FAILED.value, "attempt": attempt})
    return _outcome(subtask, SubtaskState.FAILED, attempt, error=last_error)


def _cancelled(cancel: Any) -> str:
    who = approval_granted(getattr(cancel, "result", None))[1]
    return f"cancelled{' by ' + who if who else ''}"


# ---------------------------------------------------------------------------------------------------- parent


def _title(task: TaskSpec) -> str:
    return truncate(f"{task.type}: {task.description}", TITLE_CHARS)


class _Reporter:
    """Batches status-comment writes: at most one per phase kind and :data:`MAX_REPORTS` in all."""

    def __init__(self, context: OrchestrationContext, request: TaskRequest, sent: int = 0, failures: int = 0,
                 run: str = "") -> None:
        self.context = context
        self.run = run
        self.request = request
        self.sequence = sent
        self.failures = failures

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
        run = self.run
        payload = {
            "instance_id": instance_id,
            "run": run,
            # One key per report of this run: a restarted instance (a new run) reports again.
            "idempotency_key": f"{instance_id}:{run}:report:{self.sequence}" if run
            else f"{instance_id}:report:{self.sequence}",
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
            if phase is ReportPhase.STARTED:
                yield self.context.call_activity(REPORT_STATUS, payload)
            else:
                # What a person waits for (the result, an approval to give) retries like an answer: durable-timer
                # backoff honouring Retry-After, for as long as answers are retried.
                seed = f"{instance_id}:report:{self.sequence}"
                yield from call_with_backoff(self.context, REPORT_STATUS, payload, seed=seed, policy=REPORT_RETRY)
        except Exception as exc:
            # Reporting is best effort: a failed comment must not throw away the subtasks' work.
            self.failures += 1
            if not self.context.is_replaying:
                logger.warning("status report %d failed: %s [instance=%s]", self.sequence, failure_text(exc),
                               instance_id)


class _Window:
    """The DAG bookkeeping of one execution, updated once per outcome (never rescanned per step)."""

    def __init__(self, carry: EngineCarry) -> None:
        self.carry = carry
        self.status_cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.ids = [node["id"] for node in carry.subtasks]
        # Subtasks get the policy only when it is not the default (keeps their inputs small).
        self.policy_json = carry.policy.model_dump(mode="json", exclude_defaults=True)
        self.by_id = dict(zip(self.ids, carry.subtasks, strict=True))
        self.order = {sid: index for index, sid in enumerate(self.ids)}
        self.dependants: dict[str, list[str]] = {sid: [] for sid in self.ids}
        self.remaining: dict[str, int] = dict.fromkeys(self.ids, 0)
        states = carry.states
        succeeded = SubtaskState.SUCCEEDED
        for node in carry.subtasks:
            for dep in node.get("dependencies") or ():
                self.dependants[dep].append(node["id"])
                if states[dep] is not succeeded:
                    self.remaining[node["id"]] += 1
        pending = SubtaskState.PENDING
        self.ready = [self.order[sid] for sid, state in states.items() if state is pending and not self.remaining[sid]]
        heapq.heapify(self.ready)

    def take_ready(self, limit: int) -> list[str]:
        taken: list[str] = []
        while self.ready and len(taken) < limit:
            sid = self.ids[heapq.heappop(self.ready)]
            if self.carry.states[sid] is SubtaskState.PENDING:
                taken.append(sid)
        return taken

    def finish(self, sid: str, outcome: dict[str, Any]) -> None:
        """Record a subtask's outcome; release its dependants, or skip its downstream cone when it failed."""
        carry = self.carry
        state = SubtaskState(outcome["status"])
        carry.states[sid] = state
        keep = DEPENDENCY_SUMMARY_CHARS if self.dependants[sid] else REPORT_TEXT_CHARS
        carry.outcomes[sid] = _compact({**outcome, "summary": truncate(outcome.get("summary") or "", keep)})
        if sid in carry.running:
            carry.running.remove(sid)
        if state is SubtaskState.SUCCEEDED:
            for dependant in self.dependants[sid]:
                self.remaining[dependant] -= 1
                if not self.remaining[dependant] and carry.states[dependant] is SubtaskState.PENDING:
                    heapq.heappush(self.ready, self.order[dependant])
            return
        stack = [(dependant, sid) for dependant in self.dependants[sid]]
        while stack:
            dependant, broken = stack.pop()
            if carry.states[dependant] is not SubtaskState.PENDING:
                continue
            carry.states[dependant] = SubtaskState.SKIPPED
            carry.outcomes[dependant] = _compact(_outcome(
                self.by_id[dependant], SubtaskState.SKIPPED, 0, error=f"dependency {broken} did not succeed"
            ))
            stack.extend((further, dependant) for further in self.dependants[dependant])

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Every recorded outcome in full (``SubtaskOutcome`` shape), in plan order."""
        outcomes = self.carry.outcomes
        return {sid: _expand(self.by_id[sid], outcomes[sid]) for sid in self.ids if sid in outcomes}

    def counts(self) -> dict[SubtaskState, int]:
        counts = dict.fromkeys(SubtaskState, 0)
        for state in self.carry.states.values():
            counts[state] += 1
        return counts


def _custom_status(window: _Window, phase: str) -> dict[str, Any]:
    """The parent's custom status: counts, the run, the subtasks waiting for an approval (what ``/reynolds approve``
    reads) and, for plans up to :data:`STATUS_MAP_MAX_SUBTASKS`, the per-subtask map; within the extension's
    16 KB limit (past it the waiting list is cut: ``truncated``). Built again only when a subtask started,
    ended or was left unconfirmed since the last call (it is set before every yield, replay included)."""
    carry = window.carry
    key = (phase, len(carry.running), len(carry.outcomes), len(carry.unconfirmed))
    if window.status_cache is not None and window.status_cache[0] == key:
        return window.status_cache[1]
    status = _build_status(window, phase)
    window.status_cache = (key, status)
    return status


def _build_status(window: _Window, phase: str) -> dict[str, Any]:
    counts = window.counts()
    states = window.carry.states
    waiting = [sid for sid, state in states.items() if state is SubtaskState.WAITING]
    status: dict[str, Any] = {
        "phase": phase,
        "run": window.carry.run,
        "total": len(states),
        "done": counts[SubtaskState.SUCCEEDED] + counts[SubtaskState.FAILED] + counts[SubtaskState.SKIPPED],
        "succeeded": counts[SubtaskState.SUCCEEDED],
        "running": counts[SubtaskState.RUNNING],
        "waiting": counts[SubtaskState.WAITING],
        "failed": counts[SubtaskState.FAILED],
        "skipped": counts[SubtaskState.SKIPPED],
        "waiting_ids": waiting,
    }
    if len(states) > STATUS_MAP_MAX_SUBTASKS:
        status["subtasks"] = {}
        status["truncated"] = True
    else:
        status["subtasks"] = {sid: state.value for sid, state in states.items()}
    if utf16_json_bytes(status) <= MAX_CUSTOM_STATUS_BYTES:
        return status
    status["subtasks"] = {}
    status["truncated"] = True
    size = utf16_json_bytes(status)
    while waiting and size > MAX_CUSTOM_STATUS_BYTES:
        # 2 bytes per UTF-16 code unit: the id, its quotes and comma.
        size -= 2 * (len(waiting.pop()) + 3)
    return status


def utf16_json_bytes(value: Any) -> int:
    """Size of ``value`` as the extension measures a custom status: compact JSON, UTF-16."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-16-le"))


def _publish(context: OrchestrationContext, window: _Window, phase: str) -> None:
    """Set the custom status before every yield, replay included: DTFx stores, every episode, what that
    episode set, so an episode that only replays (a duplicate outcome, a marker firing days later) must set it
    too, or the status (and the approvals that read it) is cleared."""
    context.set_custom_status(_custom_status(window, phase))


def run_orchestrate_task(context: OrchestrationContext, policy: RetryPolicy | None = None) -> EngineGenerator:
    """Plan a task and run its subtasks with up to ``max_concurrency`` running; returns the run's summary dict.

    Output: ``{"plan", "outcomes" (plan order), "succeeded", "failed", "skipped", "max_running", "cancelled",
    "report_failures", "executions"}``. Raises :class:`EngineFailed` when there is no usable plan or when not
    one subtask succeeded (unless the run was cancelled, which completes). Returns ``None`` from an execution
    that continues as new.
    """
    raw = context.get_input()
    if isinstance(raw, dict) and "request" in raw and "subtasks" in raw:
        carry = _validated(EngineCarry, raw)
        reporter = _Reporter(context, carry.request, carry.reports, carry.report_failures, carry.run)
    else:
        request = _validated(TaskRequest, raw)
        run = str(context.new_uuid()).replace("-", "")[:12]
        reporter = _Reporter(context, request, run=run)
        context.set_custom_status({"phase": "planning"})
        try:
            raw_plan = yield context.call_activity(PLAN_TASK, request.model_dump(mode="json"))
            plan = Plan.model_validate(raw_plan)
            validate_plan(plan)
        except Exception as exc:
            error = truncate(f"planning failed: {failure_text(exc)}", MAX_ERROR_CHARS)
            context.set_custom_status({"phase": "failed", "error": error})
            yield from reporter.report(ReportPhase.FAILED, {}, {}, error=error)
            raise EngineFailed(error) from None
        carry = EngineCarry(
            run=run,
            request=request,
            subtasks=[subtask.model_dump(mode="json", exclude_defaults=True) for subtask in plan.subtasks],
            planner=plan.planner,
            rationale=plan.rationale,
            policy=policy or RetryPolicy(),
            states=dict.fromkeys((s.id for s in plan.subtasks), SubtaskState.PENDING),
        )
        _publish(context, _Window(carry), "running")
        yield from reporter.report(ReportPhase.STARTED, carry.states, {})
    return (yield from _fan_out(context, carry, reporter))


def _fan_out(context: OrchestrationContext, carry: EngineCarry, reporter: _Reporter) -> EngineGenerator:
    request, instance_id, run = carry.request, context.instance_id, carry.run
    window = _Window(carry)
    width = 1 if request.strategy.approach == "sequential" else request.strategy.max_concurrency
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    waiters = {sid: context.wait_for_external_event(subtask_done_event(sid, run)) for sid in carry.running}
    # Outcomes raised during the previous execution's last episode were dropped with it: the first START of a
    # continued execution also collects the outcomes of subtasks that already ended.
    collect = (
        {sid: subtask_instance_id(instance_id, sid, run) for sid in carry.running if sid not in carry.unconfirmed}
        if carry.generation
        else {}
    )
    resend: list[str] = []  # subtasks whose START failed, sent again on a supervision pass
    starts: list[tuple[Any, list[str], bool]] = []  # START_SUBTASKS calls not completed yet: (task, wave, saves)
    watch: Any = None  # the supervision timer (point 5 of the module docstring)
    watch_short = False
    unyielded = True  # the cancel wait (and the carried waits) have not been in a yielded task yet
    cancelled = False
    handled = 0
    per_execution = max(EVENTS_PER_EXECUTION, -(-len(carry.states) ** 2 // CARRY_BALANCE))

    while True:
        if handled >= per_execution and not starts and carry.running:
            # Continue before starting the refill: the next execution's first START carries it with the collection.
            _cancel_timer(watch)  # an open timer would hold the continue-as-new (DTFx HasOpenTasks)
            carry.generation += 1
            carry.reports, carry.report_failures = reporter.sequence, reporter.failures
            for sid, outcome in carry.outcomes.items():
                if isinstance(outcome, dict) and outcome["status"] == SubtaskState.SUCCEEDED.value \
                        and not window.dependants[sid]:
                    # A leaf's success summary stays with its subtask (read back once, at the end, by
                    # ``_summaries``): the carry, written three times per continue-as-new, stays small.
                    carry.outcomes[sid] = int(outcome.get("attempts", 1))
            if carry.task_saved and len(request.task.description) > TITLE_CHARS:
                # The subtasks read the saved task: later executions keep only what the reports' title shows.
                carry.request.task.description = request.task.description[:TITLE_CHARS]
            _publish(context, window, "running")
            dumped = carry.model_dump(mode="json")
            dumped["states"] = {sid: state for sid, state in dumped["states"].items() if sid not in carry.outcomes}
            dumped["subtasks"] = _pack_subtasks(dumped["subtasks"])
            context.continue_as_new(dumped)
            return None
        starting = window.take_ready(width - len(carry.running))
        new_start = False
        if starting or collect or resend:
            for sid in starting:
                carry.states[sid] = SubtaskState.WAITING if window.by_id[sid].get("writes") else SubtaskState.RUNNING
                carry.running.append(sid)
                waiters[sid] = context.wait_for_external_event(subtask_done_event(sid, run))
            carry.max_running = max(carry.max_running, len(carry.running))
            wave = [*resend, *starting]
            start_input: dict[str, Any] = {
                "parent_instance_id": instance_id,
                "children": [_child(carry, window, instance_id, sid) for sid in wave],
                "collect": collect,
            }
            saves = bool(wave) and not carry.task_saved and not any(saving for _, _, saving in starts)
            if saves:
                # The description goes to the store once per run; subtasks' attempts read it by reference.
                start_input["task"] = {"run": run, "spec": request.task.model_dump(mode="json")}
            starts.append((context.call_activity(START_SUBTASKS, start_input), wave, saves))
            collect, resend = {}, []
            new_start, unyielded = True, unyielded or bool(starting)
            if not carry.approval_reported and any(window.by_id[sid].get("writes") for sid in starting):
                # Wait for the wave to be started, then say that approvals are needed.
                carry.approval_reported = True
                yield from _settle_starts(context, window, starts, waiters, block=True)
                _publish(context, window, "running")
                yield from reporter.report(ReportPhase.NEEDS_APPROVAL, carry.states, window.outcomes())
                new_start = False

        if not carry.running and not starts:
            break

        if watch is None:
            watch_short = bool(carry.unconfirmed)
            watch = context.create_timer(_after(context, START_RETRY_SECONDS if watch_short else SUPERVISE_SECONDS))
            unyielded = True
        _publish(context, window, "running")
        tasks = [*(task for task, _, _ in starts), *waiters.values(), cancel, watch]
        if unyielded and not new_start:
            # New waits without a new START in the entry: the host would await them alone (module docstring 1).
            winner = yield from _first_of(context, tasks)
        else:
            # The entry's new tasks include a START, which the host sees complete soon: it walks on then.
            winner = yield context.task_any(tasks)
        unyielded = False
        if winner is cancel:
            cancelled = True
            _cancel_timer(watch)
            yield from _cancel_running(context, window, cancel, instance_id, starts, waiters)
            break
        if getattr(watch, "is_completed", False):
            # Supervision: ask the task hub about every subtask still owed (lost outcome, Failed, Terminated,
            # vanished) and send again the ones whose START failed.
            watch = None
            handled += 1  # a pass counts like an outcome: a day of approval waits still continues as new
            pending = {sid for _, wave, _ in starts for sid in wave}
            resend = [sid for sid in carry.unconfirmed if sid not in pending]
            collect = {
                sid: subtask_instance_id(instance_id, sid, run)
                for sid in carry.running
                if sid not in carry.unconfirmed and sid not in pending
            }
        yield from _settle_starts(context, window, starts, waiters, block=False)
        if carry.unconfirmed and watch is not None and not watch_short:
            _cancel_timer(watch)  # a START failed: the next pass comes sooner
            watch = None
        for sid, waiter in list(waiters.items()):
            if getattr(waiter, "is_completed", False):
                del waiters[sid]
                handled += 1
                outcome = _read_outcome(window.by_id[sid], waiter.result)
                window.finish(sid, outcome)
                if not context.is_replaying:
                    logger.info("subtask %s %s [instance=%s]", sid, outcome["status"], instance_id)

    _cancel_timer(watch)
    return (yield from _finish(context, window, reporter, cancelled))


def _settle_starts(
    context: OrchestrationContext,
    window: _Window,
    starts: list[tuple[Any, list[str], bool]],
    waiters: dict[str, Any],
    *,
    block: bool,
) -> EngineGenerator:
    """Take in finished START_SUBTASKS calls (``block``: wait for them first): collected outcomes are applied;
    a failed call leaves its subtasks unconfirmed, to be sent again, and fails them after :data:`START_ATTEMPTS`."""
    carry = window.carry
    for entry in list(starts):
        start, wave, saves = entry
        if block and not getattr(start, "is_completed", False):
            with contextlib.suppress(Exception):  # a failure is read from the task itself below
                yield start
        if not getattr(start, "is_completed", False):
            continue
        starts.remove(entry)
        failure = _task_error(start)
        if failure is not None:
            error = f"could not start: {failure_text(failure)}"
            for sid in wave:
                if sid not in waiters or carry.states[sid] in _TERMINAL:
                    continue
                carry.unconfirmed[sid] = carry.unconfirmed.get(sid, 0) + 1
                if carry.unconfirmed[sid] >= START_ATTEMPTS:
                    del carry.unconfirmed[sid]
                    del waiters[sid]
                    window.finish(sid, _outcome(window.by_id[sid], SubtaskState.FAILED, 0, error=error))
            continue
        carry.task_saved = carry.task_saved or saves
        for sid in wave:
            carry.unconfirmed.pop(sid, None)
        for sid, outcome in ((start.result or {}).get("outcomes") or {}).items():
            if sid in waiters and carry.states[sid] not in _TERMINAL:
                del waiters[sid]
                window.finish(sid, _read_outcome(window.by_id[sid], outcome))


def _child(carry: EngineCarry, window: _Window, instance_id: str, sid: str) -> dict[str, Any]:
    """What START_SUBTASKS needs to start one subtask: its instance id and small input."""
    subtask = window.by_id[sid]
    request = carry.request
    child_input: dict[str, Any] = {
        "parent_instance_id": instance_id,
        "subtask": subtask,
        "event_id": request.event_id,
        "chain_id": request.chain_id,
        "depth": request.depth,
        "tracking_issue": request.tracking_issue,
    }
    if carry.run:
        child_input["run"] = carry.run
    if subtask.get("dependencies"):
        child_input["dependency_summaries"] = {
            dep: truncate(_expand(window.by_id[dep], carry.outcomes[dep])["summary"], DEPENDENCY_SUMMARY_CHARS)
            for dep in subtask["dependencies"]
        }
    if window.policy_json:
        child_input["policy"] = window.policy_json
    return {"instance_id": subtask_instance_id(instance_id, sid, carry.run), "input": child_input}


def _cancel_running(
    context: OrchestrationContext,
    window: _Window,
    cancel: Any,
    instance_id: str,
    starts: list[tuple[Any, list[str], bool]],
    waiters: dict[str, Any],
) -> EngineGenerator:
    """Skip everything not finished and tell the running subtasks to stop; the parent does not wait for them.

    A START still queued is waited for first: it would otherwise start subtasks after the cancel went out."""
    carry = window.carry
    if starts:
        yield from _settle_starts(context, window, starts, waiters, block=True)
    reason = _cancelled(cancel)
    running = list(carry.running)
    for sid, state in carry.states.items():
        if state not in _TERMINAL:
            carry.states[sid] = SubtaskState.SKIPPED
            carry.outcomes[sid] = _compact(_outcome(window.by_id[sid], SubtaskState.SKIPPED, 0, error=reason))
    carry.running.clear()
    carry.unconfirmed.clear()
    if not running:
        return
    _publish(context, window, "cancelling")
    try:
        yield context.call_activity(
            CANCEL_SUBTASKS,
            {
                "instance_ids": [subtask_instance_id(instance_id, sid, carry.run) for sid in running],
                "by": approval_granted(cancel.result)[1],
            },
        )
    except Exception as exc:
        if not context.is_replaying:
            logger.warning("telling subtasks to stop failed: %s [instance=%s]", failure_text(exc), instance_id)


def _summaries(context: OrchestrationContext, window: _Window) -> EngineGenerator:
    """Read back the summaries the carry left with the subtasks (succeeded leaves): one START_SUBTASKS collect.
    Best effort: a failure leaves those outcomes without their summary, never the task unfinished."""
    carry = window.carry
    missing = {
        sid: subtask_instance_id(context.instance_id, sid, carry.run)
        for sid, outcome in carry.outcomes.items()
        if isinstance(outcome, int)
    }
    if not missing:
        return
    try:
        result = yield context.call_activity(
            START_SUBTASKS, {"parent_instance_id": context.instance_id, "children": [], "collect": missing}
        )
    except Exception as exc:
        if not context.is_replaying:
            logger.warning("reading subtask summaries failed: %s [instance=%s]", failure_text(exc),
                           context.instance_id)
        return
    for sid, value in ((result or {}).get("outcomes") or {}).items():
        if sid in missing and isinstance(value, dict) and value.get("summary"):
            carry.outcomes[sid] = {"status": SubtaskState.SUCCEEDED.value, "attempts": carry.outcomes[sid],
                                   "summary": truncate(str(value["summary"]), REPORT_TEXT_CHARS)}


def _finish(context: OrchestrationContext, window: _Window, reporter: _Reporter, cancelled: bool) -> EngineGenerator:
    carry = window.carry
    yield from _summaries(context, window)
    full = window.outcomes()
    ordered = [full[sid] for sid in window.ids]
    counts = window.counts()
    succeeded, failed, skipped = (
        counts[SubtaskState.SUCCEEDED],
        counts[SubtaskState.FAILED],
        counts[SubtaskState.SKIPPED],
    )
    if cancelled:
        phase = ReportPhase.CANCELLED
    elif succeeded == len(carry.states):
        phase = ReportPhase.SUCCEEDED
    elif succeeded:
        phase = ReportPhase.PARTIAL
    else:
        phase = ReportPhase.FAILED
    context.set_custom_status(_custom_status(window, phase.value))
    yield from reporter.report(phase, carry.states, full)
    context.set_custom_status(_custom_status(window, phase.value))

    if phase is ReportPhase.FAILED:
        first = next((o["error"] for o in ordered if o.get("error")), "no subtask succeeded")
        raise EngineFailed(truncate(f"no subtask succeeded ({failed} failed, {skipped} skipped): {first}"))
    return {
        "plan": Plan.model_validate(
            {"subtasks": carry.subtasks, "planner": carry.planner, "rationale": carry.rationale}
        ).model_dump(mode="json"),
        "outcomes": ordered,
        "succeeded": succeeded,
        "failed": failed,
        "skipped": skipped,
        "max_running": carry.max_running,
        "cancelled": cancelled,
        "report_failures": reporter.failures,
        "executions": carry.generation + 1,
    }


def _compact(outcome: dict[str, Any]) -> dict[str, Any]:
    """An outcome as the carry keeps it: without what the plan already says (id, specialist) or empty fields.
    The carry is written three times per continue-as-new; this keeps it about a third smaller."""
    compact = {"status": outcome["status"], "attempts": outcome["attempts"]}
    if outcome.get("summary"):
        compact["summary"] = outcome["summary"]
    if outcome.get("error") is not None:
        compact["error"] = outcome["error"]
    return compact


def _expand(subtask: dict[str, Any], compact: dict[str, Any] | int) -> dict[str, Any]:
    """The full ``SubtaskOutcome`` of a carried one."""
    if isinstance(compact, int):
        compact = {"status": SubtaskState.SUCCEEDED.value, "attempts": compact}
    return {"id": subtask["id"], "specialist": subtask["specialist"], "status": compact["status"],
            "attempts": compact.get("attempts", 0), "summary": compact.get("summary", ""),
            "error": compact.get("error")}


def _read_outcome(subtask: dict[str, Any], value: Any) -> dict[str, Any]:
    """A subtask's reported outcome; a crashed or malformed one becomes a failed outcome."""
    if isinstance(value, BaseException):
        return _outcome(subtask, SubtaskState.FAILED, 0, error=f"subtask failed: {failure_text(value)}")
    try:
        outcome = SubtaskOutcome.model_validate(value)
    except ValidationError:
        return _outcome(subtask, SubtaskState.FAILED, 0, error="malformed subtask outcome")
    if outcome.id != subtask["id"] or outcome.status not in _TERMINAL:
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
    "EngineCarry",
    "EngineFailed",
    "RunSubtaskResult",
    "SubtaskInput",
    "approval_granted",
    "run_orchestrate_task",
    "run_subtask",
    "subtask_instance_id",
]
