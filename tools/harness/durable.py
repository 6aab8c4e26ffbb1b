"""Drive Durable orchestrators through the real ``azure-functions-durable`` replay, offline.

The Functions host and the Durable extension cannot run here, so this module plays the extension's part:
it keeps each instance's history, calls the SDK's orchestrator handle once per episode with the same context
JSON the extension sends (``history``, ``input``, ``instanceId``, ``isReplaying``, ``parentInstanceId``,
``upperSchemaVersion`` 1 / ``upperSchemaVersionNew`` 2, timer limits), reads back the orchestrator state
(``isDone``, ``actions``, ``output``, ``error``, ``customStatus``) and turns new actions into history events on a
simulated clock: activities run in-process and finish after ``latency(name, input)`` seconds, timers fire at
their ``FireAt``, external events arrive at their scheduled time, sub-orchestrations run as child instances.
Every payload crosses JSON like on the wire; activity inputs and outputs go through the worker's own
``ActivityTriggerConverter``.

What the extension then does with the SDK's answer is modelled too (rules, upstream files and functions in
``tools.harness.host_rules``): the top-level actions are invoked in order and each is awaited before the next
(``OutOfProcOrchestrationShim.ProcessAsyncActionsV2``), so only the prefix up to the first incomplete entry is
scheduled; a cancelled timer completes its entry at once; the instance completes, fails or continues as new
only once the walk is through and no activity, sub-orchestration or uncancelled timer it scheduled is open
(DTFx ``TaskOrchestrationExecutor``: ``!HasOpenTasks``); a custom status above 16 KB of UTF-16 fails it; a
failed activity arrives with the extension's Reason/Details. Sub-orchestrations are registered instances
(``ReplayHarness.instances``), reachable through :class:`FakeDurableClient`, and so are instances started by
activities that take a durable client binding. ``ReplayHarness.run`` drives every instance on one clock, one
batch at a time in time order; the client fast-forwards activity latency and waits for ``advance`` before
firing an orchestrator's timers. ``tools.harness.replay_check`` replays a history in a fresh interpreter.

Task ids follow the SDK's sequence numbering: every CallActivity/CreateTimer/CallSubOrchestrator action
(flattened depth-first through WhenAll/WhenAny) takes the next id, and so do the retry timers and
re-scheduled attempts of ``*_with_retry`` calls, which the SDK (like DTFx's ``RetryInterceptor``) expects as
``TaskFailed`` -> ``TimerCreated``/``TimerFired`` -> ``TaskScheduled`` ... with one extra timer after the last
failed attempt. Retry events are fed first in a batch so that their ids precede those of newly yielded tasks,
which is the order in which the SDK assigns them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import inspect
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus
from azure.functions._durable_functions import OrchestrationContext as WorkerOrchestrationContext
from azure.functions.durable_functions import ActivityTriggerConverter

from tools.harness.host_rules import activity_failure, custom_status_error

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
_OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Action types of the out-of-proc protocol (ActionType in the SDK, AsyncActionType in the extension).
_CALL_ACTIVITY, _CALL_ACTIVITY_RETRY, _CALL_SUB, _CALL_SUB_RETRY = 0, 1, 2, 3
_CONTINUE_AS_NEW, _CREATE_TIMER, _WAIT_EVENT = 4, 5, 6
_WHEN_ANY, _WHEN_ALL = 11, 12
_TAKES_ID = {_CALL_ACTIVITY, _CALL_ACTIVITY_RETRY, _CALL_SUB, _CALL_SUB_RETRY, _CREATE_TIMER}
_NOT_SUPPORTED = {7: "CallEntity", 8: "CallHttp", 9: "SignalEntity", 10: "ScheduledSignalEntity"}

Latency = Callable[[str, Any], float]


class HarnessError(RuntimeError):
    """The harness met something the extension would reject (bad state JSON, non-determinism, runaway)."""


class NonDeterminismError(HarnessError):
    """A replay produced different actions than the history recorded (DTFx's NonDeterministicOrchestrationException)."""


@dataclass(frozen=True)
class ExternalEvent:
    """An event raised to the instance ``at_seconds`` after the run starts (simulated time)."""

    at_seconds: float
    name: str
    data: Any = None


@dataclass
class OrchestrationRun:
    """What one orchestration instance did, as far as the simulation got."""

    name: str
    instance_id: str
    runtime_status: str  # "Completed" | "Failed" | "Running" (waits with nothing scheduled) | "Terminated"
    output: Any
    custom_status: Any
    error: str | None
    history: list[dict[str, Any]]
    activity_calls: list[tuple[str, Any]]
    timers: list[tuple[datetime, datetime]]
    max_concurrent: int
    elapsed_seconds: float
    episodes: int
    sub_orchestrations: list[OrchestrationRun] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)
    #: Scheduled tasks still open (DTFx holds completion while there are any).
    open_tasks: int = 0
    #: Largest size the history of one execution reached (compact JSON, UTF-8 bytes).
    max_history_bytes: int = 0
    #: CPU time the SDK's orchestrator handle took over every episode (replays included).
    cpu_seconds: float = 0.0
    #: When the instance reached a terminal state, in seconds after its start (None: it did not).
    finished_at_seconds: float | None = None
    #: Task-hub storage this instance wrote and read (``_Instance.storage_written``), bytes of compact JSON.
    storage_written: int = 0
    storage_read: int = 0


@dataclass(order=True)
class _Pending:
    at: datetime
    priority: int  # 0: retry events that take a task id; they must reach the SDK before anything else
    seq: int
    event: dict[str, Any] = field(compare=False)
    retry: _Retry | None = field(default=None, compare=False)
    finishes_work: bool = field(default=False, compare=False)
    user_timer: bool = field(default=False, compare=False)
    completes: int | None = field(default=None, compare=False)  # the task id this event completes


@dataclass
class _Retry:
    kind: str  # "activity" | "sub"
    name: str
    input: str  # JSON text, as the SDK put it in the action
    instance_id: str | None
    interval: timedelta
    max_attempts: int
    root: int = -1  # the task id the SDK (and the host's await) knows the retried call by
    attempt: int = 1


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_TS_FORMAT)


def _parse_dt(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _run_maybe_async(result: Any) -> Any:
    if not inspect.iscoroutine(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(result)
    # Called from inside a running loop (e.g. an async HTTP trigger using FakeDurableClient).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, result).result()


def _flatten(actions: Iterable[Any]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for action in actions:
        if not isinstance(action, dict) or "actionType" not in action:
            raise HarnessError(f"malformed action in orchestrator state: {action!r}")
        if action["actionType"] in (_WHEN_ANY, _WHEN_ALL):
            flat.extend(_flatten(action.get("compoundActions") or []))
        else:
            flat.append(action)
    return flat


def _action_key(action: dict[str, Any]) -> tuple[Any, ...]:
    return (action.get("actionType"), action.get("functionName"), action.get("externalEventName"))


def parse_orchestrator_state(text: Any) -> dict[str, Any]:
    """Parse the JSON the SDK's orchestrator handle returns into a normalised dict.

    Keys: ``isDone`` (bool), ``actions`` (flat list of atomic action dicts, compound actions expanded),
    ``top`` (the top-level entries the extension walks, compound ones unexpanded),
    ``output``, ``error``, ``customStatus``, ``schemaVersion``. The SDK omits ``output``/``error`` when
    ``None`` and ``customStatus`` when falsy; missing keys come back as ``None``.
    """
    state = json.loads(text) if isinstance(text, str | bytes) else text
    if not isinstance(state, dict):
        raise HarnessError(f"orchestrator state is not a JSON object: {text!r}")
    schema = state.get("schemaVersion", 0)
    raw_actions = state.get("actions") or []
    if not isinstance(raw_actions, list):
        raise HarnessError(f"'actions' is not a list: {raw_actions!r}")
    if schema >= 1:
        # ReplayPatchV1+: one flat list per invocation, nested once for legacy reasons (the extension
        # rejects any other outer length).
        if len(raw_actions) > 1:
            raise HarnessError(f"schema {schema} expects one action list, got {len(raw_actions)}")
        top = list(raw_actions[0]) if raw_actions else []
        actions = _flatten(top)
    elif any(raw_actions):
        raise NotImplementedError("replay schema V1 (list of lists per execution) is not simulated")
    else:
        top, actions = [], []
    return {
        "isDone": bool(state.get("isDone", False)),
        "actions": actions,
        "top": top,
        "output": state.get("output"),
        "error": state.get("error"),
        "customStatus": state.get("customStatus"),
        "schemaVersion": schema,
    }


def _orchestrator_handle(obj: Any) -> Callable[[Any], str]:
    """Accept a plain generator function, an ``Orchestrator.create`` handle or a decorated FunctionBuilder."""
    if hasattr(obj, "build") and hasattr(obj, "_function"):
        obj = obj.build().get_user_function()
    if hasattr(obj, "orchestrator_function"):
        handle: Callable[[Any], str] = obj
        return handle
    if callable(obj):
        return df.Orchestrator.create(obj)
    raise TypeError(f"not an orchestrator: {obj!r}")


class ReplayHarness:
    """Run orchestrations through the real SDK replay on a simulated clock (see module docstring)."""

    def __init__(
        self,
        orchestrators: Mapping[str, Any],
        activities: Mapping[str, Callable[[Any], Any]],
        start: datetime = DEFAULT_START,
        latency: Latency | None = None,
        *,
        max_short_timer: timedelta | None = timedelta(days=6),
        long_timer_interval: timedelta = timedelta(days=3),
        clock: Callable[[], datetime] | None = None,
        on_time: Callable[[datetime], None] | None = None,
        carryover: bool = True,
        max_concurrent_activities: int | None = None,
    ) -> None:
        # ``clock``/``on_time`` tie the harness to a world's clock: new instances start at the world's now,
        # and an instance's simulated time moving (timers, latency) moves the world's clock along.
        self.clock = clock
        self.on_time = on_time
        self.orchestrators: dict[str, Callable[[Any], str]] = {
            name: _orchestrator_handle(fn) for name, fn in orchestrators.items()
        }
        self.activities: dict[str, Callable[[Any], Any]] = dict(activities)
        self.start = start if start.tzinfo else start.replace(tzinfo=UTC)
        self.latency: Latency = latency or (lambda _name, _input: 0.0)
        # Azure Storage caps a single durable timer (6 days); with replay schema V3 the SDK splits longer
        # timers into intervals itself. ``None`` leaves the timer limits out of the context.
        self.max_short_timer = max_short_timer
        self.long_timer_interval = long_timer_interval
        # Every instance, children included, by id: the task hub's instance table.
        self.instances: dict[str, _Instance] = {}
        # (orchestrator, instance id, history length) per episode: what each replay had to parse.
        self.context_log: list[tuple[str, str, int]] = []
        # The simulated time of the activity being run, so a client call from it lands at that moment.
        self.acting: list[datetime] = []
        self.client: FakeDurableClient | None = None
        # In ``run_in_time_order`` one loop drives every instance; nested calls only queue events.
        self.global_mode = False
        # Activities that take a durable client binding (``@bp.durable_client_input``): name -> parameter.
        self.client_params: dict[str, str] = {}
        # DTFx carries external events processed after ContinueAsNew into the next execution (Azure Storage's
        # ``EventBehaviourForContinueAsNew.Carryover``); False models ``Ignore`` (and the harness before it).
        self.carryover = carryover
        # host.json ``maxConcurrentActivityFunctions`` of the one worker modelled (None: unlimited): activities
        # beyond it wait for a slot (``max_concurrent_activities_from_host_json``).
        self.max_concurrent_activities = max_concurrent_activities
        self.activity_slots: list[datetime] = []  # when each busy slot frees (a heap)
        self.client_read_bytes = 0  # instance-table bytes the durable client's status queries read
        self.max_activities_at_once = 0

    @contextlib.contextmanager
    def acting_at(self, at: datetime) -> Iterator[None]:
        """Mark ``at`` as the current simulated moment while an activity runs (client calls happen then)."""
        self.acting.append(at)
        try:
            yield
        finally:
            self.acting.pop()

    def current_time(self, default: datetime) -> datetime:
        """The moment of the activity being run, else ``default``."""
        return max(self.acting[-1], default) if self.acting else default

    def durable_client(self) -> FakeDurableClient:
        """The client handed to activities with a durable client binding (created on first use)."""
        if self.client is None:
            self.client = FakeDurableClient(self)
        return self.client

    @classmethod
    def from_app(cls, app: Any, **kw: Any) -> ReplayHarness:
        """Discover orchestrators and activities from ``app.get_functions()`` (a ``df.DFApp``).

        Orchestrators: the indexed function's user function *is* the SDK handle from
        ``Orchestrator.create`` (it carries ``.orchestrator_function`` and the decorator's input type), so the
        harness calls exactly what the worker calls. Activities: the user function is called with its
        ``activityTrigger`` binding parameter as keyword, holding the JSON-decoded input like the worker.
        """
        orchestrators: dict[str, Any] = {}
        activities: dict[str, Callable[[Any], Any]] = {}
        client_params: dict[str, str] = {}
        # ``get_functions()`` may run once per app (a second call fails name validation): accept its result.
        listed = app.get_functions() if hasattr(app, "get_functions") else app
        for function in listed:
            trigger = function.get_trigger()
            if trigger is None:
                continue
            if trigger.type == "orchestrationTrigger":
                name = getattr(trigger, "orchestration", None) or function.get_function_name()
                orchestrators[name] = function.get_user_function()
            elif trigger.type == "activityTrigger":
                name = getattr(trigger, "activity", None) or function.get_function_name()
                client_param = next(
                    (b.name for b in function.get_bindings() if getattr(b, "type", None) == "durableClient"), None
                )
                user = function.get_user_function()
                if client_param is not None:
                    client_params[name] = client_param
                    user = getattr(user, "__wrapped__", user)  # the worker's middleware builds a real client
                activities[name] = _bind_activity(user, trigger.name)
        orchestrators.update(kw.pop("orchestrators", {}))
        overrides = kw.pop("activities", {})
        activities.update(overrides)
        harness = cls(orchestrators, activities, **kw)
        harness.client_params = {k: v for k, v in client_params.items() if k not in overrides}
        return harness

    def run(
        self,
        name: str,
        input: Any = None,  # noqa: A002 - mirrors the SDK's wording
        instance_id: str = "harness-instance",
        events: Sequence[ExternalEvent] = (),
        max_episodes: int = 10_000,
    ) -> OrchestrationRun:
        """Run ``name`` until it completes, fails, or waits with nothing left to happen."""
        execution = self.start_instance(name, input, instance_id, self.start)
        for event in events:
            execution.raise_event(event.name, event.data, at=self.start + timedelta(seconds=event.at_seconds))
        self.run_in_time_order(max_episodes)
        return execution.snapshot()

    def run_in_time_order(self, max_episodes: int = 10_000) -> None:
        """Run every instance, one batch at a time, always the instance whose next event is earliest: one clock
        for all of them. Instances started or signalled meanwhile (children, client calls from activities) only
        queue their events; nothing runs ahead of the others."""
        self.global_mode = True
        try:
            while True:
                best: tuple[tuple[datetime, int], _Instance] | None = None
                for instance in self.instances.values():
                    if instance.is_finished:
                        continue
                    if instance.status == "Pending":
                        key = (instance.now, 0)
                    elif instance.queue:
                        key = (instance.queue[0].at, 1)
                    else:
                        continue
                    if best is None or key < best[0]:
                        best = (key, instance)
                if best is None:
                    return
                best[1].step(max_episodes)
        finally:
            self.global_mode = False

    def settle_all(self, max_episodes: int = 10_000, horizon: datetime | None = None) -> None:
        """Run every unfinished instance until none has anything left to do before ``horizon``."""
        progress = True
        while progress:
            progress = False
            for instance in list(self.instances.values()):
                if instance.is_finished or not instance.queue:
                    continue
                if horizon is not None and instance.queue[0].user_timer and instance.queue[0].at > horizon:
                    continue
                episodes = instance.episodes
                instance.run_until_idle(max_episodes, timer_horizon=horizon)
                progress = progress or instance.episodes != episodes

    def start_instance(
        self, name: str, input: Any, instance_id: str, at: datetime, parent_instance_id: str | None = None
    ) -> _Instance:
        """Create an instance (no episode run yet); drive it with ``run_until_idle``."""
        if name not in self.orchestrators:
            raise KeyError(f"The function '{name}' doesn't exist or is not an orchestrator function.")
        instance = _Instance(self, name, json.dumps(input), instance_id, at)
        instance.parent_instance_id = parent_instance_id
        self.instances[instance_id] = instance
        return instance

    def claim_activity_slot(self, now: datetime, seconds: float) -> datetime:
        """When an activity scheduled at ``now`` starts on the worker, taking a slot for ``seconds``.

        The extension hands ``maxConcurrentActivityFunctions`` to DTFx as ``MaxConcurrentTaskActivityWorkItems``
        (``AzureStorageDurabilityProviderFactory``/``DurableTaskOptions``; the Azure Managed provider factory
        sets ``options.MaxConcurrentActivityWorkItems`` from it): a worker runs at most that many activity work
        items at once and leaves the others in the work-item queue until one ends."""
        slots = self.activity_slots
        while slots and slots[0] <= now:
            heapq.heappop(slots)
        begin = now
        if self.max_concurrent_activities is not None and len(slots) >= self.max_concurrent_activities:
            begin = max(now, heapq.heappop(slots))
        heapq.heappush(slots, begin + timedelta(seconds=seconds))
        self.max_activities_at_once = max(self.max_activities_at_once, sum(1 for t in slots if t > begin))
        return begin

    def _invoke_activity(self, name: str, input_json: str) -> tuple[bool, str, Any, Any]:
        """Run an activity like the worker: returns (ok, result_json_or_reason, details, decoded_input)."""
        decoded = ActivityTriggerConverter.decode(func.meta.Datum(input_json, "json"), trigger_metadata=None)
        fn = self.activities.get(name)
        if fn is None:
            reason = f"The function '{name}' doesn't exist, is disabled, or is not an activity function."
            return False, reason, "FunctionFailedException", decoded
        try:
            if name in self.client_params:
                result = _run_maybe_async(fn(decoded, **{self.client_params[name]: self.durable_client()}))
            else:
                result = _run_maybe_async(fn(decoded))
            encoded = ActivityTriggerConverter.encode(result, expected_type=None).value
        except Exception as exc:  # every activity exception becomes TaskFailed, like the host
            reason, details = activity_failure(name, exc)
            return False, reason, details, decoded
        return True, encoded, None, decoded


def _bind_activity(user_function: Callable[..., Any], param: str) -> Callable[..., Any]:
    def call(payload: Any, **extra: Any) -> Any:
        return user_function(**{param: payload}, **extra)

    call.__name__ = getattr(user_function, "__name__", "activity")
    return call


class _Instance:
    """One orchestration instance: its history, pending events, simulated clock and the host's action walk.

    The walk follows ``OutOfProcOrchestrationShim.ProcessAsyncActionsV2`` (see ``tools.harness.host_rules``):
    top-level actions are invoked in order and each is awaited before the next is invoked, so only the prefix
    up to the first incomplete entry is ever scheduled. The instance completes, fails or continues as new only
    when the walk got through every entry and no scheduled task is open (DTFx ``HasOpenTasks``).
    """

    def __init__(
        self,
        harness: ReplayHarness,
        name: str,
        input_json: str,
        instance_id: str,
        at: datetime,
        parent: tuple[_Instance, int, _Retry | None] | None = None,
    ) -> None:
        self.harness = harness
        self.name = name
        self.handle = harness.orchestrators[name]
        self.instance_id = instance_id
        self.parent = parent
        self.parent_instance_id = parent[0].instance_id if parent is not None else None
        self.started_at = at
        self.finished_at: datetime | None = None
        self.now = at
        self.created_at = at
        self.last_updated = at
        self.queue: list[_Pending] = []
        self.seq = itertools.count()
        self.status = "Pending"
        self.output: Any = None
        self.custom_status: Any = None
        self.error: str | None = None
        self.episodes = 0
        self.activity_calls: list[tuple[str, Any]] = []
        self.timers: list[tuple[datetime, datetime]] = []
        self.sub_runs: list[OrchestrationRun] = []
        self.children: list[_Instance] = []
        self.in_flight = 0
        self.max_concurrent = 0
        self.waiting_for: list[str] = []
        self.busy = False
        self.horizon: datetime | None = None
        self.max_history_bytes = 0
        self.history_bytes = 0  # the current execution's history, compact JSON
        # Task-hub storage (Azure Storage provider, no extended sessions) in bytes of compact JSON: every episode
        # reads the execution's history and its new messages, appends its new history events, and writes the
        # instance row's custom status; the messages it consumed were written by their senders.
        self.storage_written = 0
        self.storage_read = 0
        self.cpu_seconds = 0.0  # CPU spent in the SDK's orchestrator handle (replays), all executions
        self._reset_execution(input_json)

    # -- public surface used by ReplayHarness and FakeDurableClient ---------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in ("Completed", "Failed", "Terminated")

    def raise_event(self, name: str, data: Any = None, at: datetime | None = None) -> None:
        event = self._event(HistoryEventType.EVENT_RAISED, Name=name, Input=json.dumps(data))
        self._push(at or self.now, event)

    def terminate(self, reason: str) -> None:
        self.history.append(
            self._event(HistoryEventType.EXECUTION_TERMINATED, Input=json.dumps(reason), Timestamp=_ts(self.now))
        )
        self.status, self.output = "Terminated", reason
        self.finished_at = self.now
        self.queue.clear()

    def run_until_idle(self, max_episodes: int = 10_000, timer_horizon: datetime | None = None) -> None:
        """Feed episodes until nothing is pending; with ``timer_horizon``, stop before a durable timer
        (created by the orchestrator, not a retry timer) that fires after it. Re-entrant calls (a child or an
        activity reaching back into a busy instance) only leave their events queued for the running loop."""
        if self.busy:
            return
        if self.harness.global_mode:
            if self.status == "Pending":
                self.step(max_episodes)
            return
        self.busy = True
        saved_horizon, self.horizon = self.horizon, timer_horizon
        try:
            if self.status == "Pending":
                self.status = "Running"
                self._episode([self._execution_started()], [])
            while not self.is_finished and self.queue:
                top = self.queue[0]
                if timer_horizon is not None and top.user_timer and top.at > timer_horizon:
                    break
                if self.episodes >= max_episodes:
                    raise HarnessError(f"{self.name}/{self.instance_id}: more than {max_episodes} episodes")
                self._next_batch()
            if timer_horizon is not None and not self.is_finished:
                self.now = max(self.now, timer_horizon)  # the waiting instance's clock keeps running
        finally:
            self.busy = False
            self.horizon = saved_horizon

    def step(self, max_episodes: int = 10_000) -> None:
        """Run the first episode, or the next batch of due events (the time-ordered driver's unit of work)."""
        if self.busy or self.is_finished:
            return
        self.busy = True
        try:
            if self.status == "Pending":
                self.status = "Running"
                self._episode([self._execution_started()], [])
            elif self.queue:
                if self.episodes >= max_episodes:
                    raise HarnessError(f"{self.name}/{self.instance_id}: more than {max_episodes} episodes")
                self._next_batch()
        finally:
            self.busy = False

    def snapshot(self) -> OrchestrationRun:
        return OrchestrationRun(
            name=self.name,
            instance_id=self.instance_id,
            runtime_status=self.status,
            output=self.output,
            custom_status=self.custom_status,
            error=self.error,
            history=json.loads(json.dumps(self.history)),
            activity_calls=list(self.activity_calls),
            timers=list(self.timers),
            max_concurrent=self.max_concurrent,
            elapsed_seconds=(self.now - self.started_at).total_seconds(),
            episodes=self.episodes,
            sub_orchestrations=[child.snapshot() for child in self.children],
            waiting_for=list(self.waiting_for),
            open_tasks=len(self._open_task_ids()),
            max_history_bytes=self.max_history_bytes,
            cpu_seconds=self.cpu_seconds,
            storage_written=self.storage_written,
            storage_read=self.storage_read,
            finished_at_seconds=(
                None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()
            ),
        )

    # -- simulation ------------------------------------------------------------------------------------------

    def _reset_execution(self, input_json: str) -> None:
        self.input_json = input_json
        self.execution_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.instance_id}/{self.now.isoformat()}").hex
        self.history: list[dict[str, Any]] = []
        self.history_bytes = 0
        self.next_id = 0
        # The host's walk: atomic actions invoked so far (flat, in order) with their task ids, how many
        # top-level entries were invoked, and whether the last invoked one is still awaited.
        self.invoked: list[tuple[dict[str, Any], int | None]] = []
        self.top_invoked = 0
        self.walk_blocked = False
        self.done_ids: set[int] = set()
        self.timer_ids: set[int] = set()
        self.events_received: dict[str, int] = {}
        self.waiters: dict[int, tuple[str, int]] = {}  # flat index -> (event name, ordinal)
        self.waiters_per_name: dict[str, int] = {}
        self.pending_terminal: tuple[str, Any] | None = None
        # Carryover (DTFx ``EventBehaviourForContinueAsNew.Carryover``): external events processed after the
        # ContinueAsNew call, handed to the next execution.
        self.carryover: list[dict[str, Any]] = []
        # What each event of the current batch completes: (task id, event name), in processing order.
        self.batch_effects: list[tuple[int | None, str | None]] = []

    def _event(self, event_type: HistoryEventType, event_id: int = -1, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "EventType": int(event_type),
            "EventId": event_id,
            "IsPlayed": False,
            "Timestamp": _ts(self.now),
        }
        event.update(fields)
        return event

    def _execution_started(self) -> dict[str, Any]:
        parent = None
        if self.parent_instance_id is not None:
            parent = {"OrchestrationInstance": {"InstanceId": self.parent_instance_id}}
        return self._event(
            HistoryEventType.EXECUTION_STARTED,
            Name=self.name,
            Input=self.input_json,
            Version="",
            OrchestrationInstance={"InstanceId": self.instance_id, "ExecutionId": self.execution_id},
            ParentInstance=parent,
        )

    def _push(
        self,
        at: datetime,
        event: dict[str, Any],
        *,
        priority: int = 1,
        retry: _Retry | None = None,
        finishes_work: bool = False,
        user_timer: bool = False,
        completes: int | None = None,
    ) -> None:
        heapq.heappush(
            self.queue, _Pending(at, priority, next(self.seq), event, retry, finishes_work, user_timer, completes)
        )

    def _next_batch(self) -> None:
        first = heapq.heappop(self.queue)
        batch = [first]
        while self.queue and self.queue[0].at == first.at:
            batch.append(heapq.heappop(self.queue))
        self.now = max(self.now, first.at)
        if self.harness.on_time is not None:
            self.harness.on_time(self.now)
        batch.sort(key=lambda p: (p.priority, p.seq))
        new_events: list[dict[str, Any]] = []
        follow_ups: list[tuple[str, Any]] = []  # history appended / work started after the episode
        self.batch_effects = []
        for pending in batch:
            pending.event["Timestamp"] = _ts(self.now)
            new_events.append(pending.event)
            if pending.finishes_work:
                self.in_flight -= 1
            if pending.completes is not None:
                self.done_ids.add(pending.completes)
            raised = None
            if pending.event["EventType"] == HistoryEventType.EVENT_RAISED:
                raised = pending.event["Name"]
                self.events_received[raised] = self.events_received.get(raised, 0) + 1
            self.batch_effects.append((pending.completes, raised))
            retry = pending.retry
            if retry is None:
                continue
            if pending.event["EventType"] in (
                HistoryEventType.TASK_FAILED,
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
            ):
                timer_id = self._take_id()
                fire_at = self.now + retry.interval
                follow_ups.append(
                    ("history", self._event(HistoryEventType.TIMER_CREATED, timer_id, FireAt=_ts(fire_at)))
                )
                self.timers.append((self.now, fire_at))
                # The timer after the last attempt takes no new id when it fires: the SDK then fails the task.
                last = retry.attempt >= retry.max_attempts
                fired = self._event(HistoryEventType.TIMER_FIRED, TimerId=timer_id, FireAt=_ts(fire_at))
                self._push(
                    fire_at,
                    fired,
                    priority=1 if last else 0,
                    retry=None if last else retry,
                    completes=retry.root if last else None,
                )
            else:  # a retry timer fired: schedule the next attempt under a fresh id
                retry.attempt += 1
                follow_ups.append(("retry", (self._take_id(), retry)))
        self._episode(new_events, follow_ups)

    def _take_id(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    def _episode(self, new_events: list[dict[str, Any]], follow_ups: list[tuple[str, Any]]) -> None:
        replaying = bool(self.history)
        messages = len(json.dumps(new_events, separators=(",", ":")).encode("utf-8"))
        self.storage_read += self.history_bytes + messages
        self.storage_written += messages
        history_before = self.history_bytes
        self.history.append(self._event(HistoryEventType.ORCHESTRATOR_STARTED))
        self.history.extend(new_events)
        context = {
            "history": self.history,
            "input": self.input_json,
            "instanceId": self.instance_id,
            "isReplaying": replaying,
            "parentInstanceId": self.parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
        if self.harness.max_short_timer is not None:
            context["maximumShortTimerDuration"] = _timespan(self.harness.max_short_timer)
            context["longRunningTimerIntervalDuration"] = _timespan(self.harness.long_timer_interval)
        self.episodes += 1
        self.last_updated = self.now
        self.harness.context_log.append((self.name, self.instance_id, len(self.history)))
        failure: str | None = None
        started = time.process_time()
        try:
            state_text = self.handle(WorkerOrchestrationContext(json.dumps(context)))
        except Exception as exc:
            message = str(exc)
            if _OUT_OF_PROC_LABEL not in message:
                raise HarnessError(f"orchestrator handle crashed outside the SDK protocol: {exc!r}") from exc
            failure, state_text = message.split(_OUT_OF_PROC_LABEL, 1)
        finally:
            self.cpu_seconds += time.process_time() - started
        for event in self.history:
            event["IsPlayed"] = True
        state = parse_orchestrator_state(state_text)

        for kind, item in follow_ups:
            if kind == "history":
                self.history.append(item)
            else:
                task_id, retry = item
                self._start_work(task_id, retry.kind, retry.name, retry.input, retry.instance_id, retry)

        self._check_determinism(state["actions"])
        status_error = custom_status_error(state["customStatus"])
        if status_error is not None:
            # SetCustomStatus throws before the action walk: nothing new is scheduled, the orchestration fails.
            self.pending_terminal = ("Failed", status_error)
        else:
            # DTFx's TaskOrchestrationDispatcher stores, every episode, the status the orchestrator set in that
            # episode (``runtimeState.Status = result?.CustomStatus``): one not set this time is cleared.
            self.custom_status = state["customStatus"]
            already_continued = self.pending_terminal is not None and self.pending_terminal[0] == "ContinueAsNew"
            walk_from = (self.top_invoked, self.walk_blocked)
            walked = self._walk(state["top"], state["actions"])
            if walked is None:
                return  # the walk failed the instance (invalid timer)
            if walked:
                if failure is not None or state["error"]:
                    self.pending_terminal = ("Failed", state["error"] or failure)
                elif state["isDone"]:
                    can = next((a for a in state["actions"] if a["actionType"] == _CONTINUE_AS_NEW), None)
                    done = ("ContinueAsNew", can) if can is not None else ("Completed", state["output"])
                    self.pending_terminal = done
                    if can is not None:
                        first = 0 if already_continued else self._continued_after(state["top"], walk_from)
                        self.carryover += [e for e in new_events[first:]
                                           if e["EventType"] == HistoryEventType.EVENT_RAISED]
        self.history.append(self._event(HistoryEventType.ORCHESTRATOR_COMPLETED))
        self._record_size()
        self.storage_written += max(0, self.history_bytes - history_before)
        if self.custom_status is not None:
            self.storage_written += len(json.dumps(self.custom_status, separators=(",", ":")).encode("utf-8"))
        self._settle()

    def _continued_after(self, top: list[dict[str, Any]], walk_from: tuple[int, bool]) -> int:
        """How many events of this batch DTFx processed before the walk reached ContinueAsNew.

        DTFx feeds a batch's events to the orchestration one at a time; the shim's walk moves on as they complete
        its awaited entries and calls ContinueAsNew when it gets there. Every ``EventRaised`` processed after that
        is carried to the next execution (``TaskOrchestrationExecutor.ProcessEvent``, ``EventRaised`` case:
        ``AddEventToNextIteration`` once ``HasContinueAsNew``). The walk is re-checked on each prefix of the batch.
        """
        firsts = list(itertools.accumulate((len(_flatten([a])) for a in top), initial=0))
        done_ids, received = self.done_ids, self.events_received
        start = walk_from[0] - 1 if walk_from[1] else walk_from[0]
        try:
            for count in range(len(self.batch_effects) + 1):
                self.done_ids = set(done_ids)
                self.events_received = dict(received)
                for task_id, name in self.batch_effects[count:]:  # take back what the later events did
                    if task_id is not None:
                        self.done_ids.discard(task_id)
                    if name is not None:
                        self.events_received[name] -= 1
                if all(self._complete(top[p], firsts[p]) for p in range(max(start, 0), len(top))):
                    return count
        finally:
            self.done_ids, self.events_received = done_ids, received
        return len(self.batch_effects)

    def _record_size(self) -> None:
        size = len(json.dumps(self.history, separators=(",", ":")).encode("utf-8"))
        self.history_bytes = size
        self.max_history_bytes = max(self.max_history_bytes, size)

    def _settle(self) -> None:
        """Complete, fail or continue as new once DTFx allows it: the walk is through and no task is open."""
        if self.pending_terminal is None or self._open_task_ids():
            return
        kind, value = self.pending_terminal
        if kind == "Completed":
            self._finish("Completed", output=value)
        elif kind == "Failed":
            self._finish("Failed", error=value)
        else:
            self.history.append(self._event(HistoryEventType.CONTINUE_AS_NEW, Result=_wire_input(value)))
            # A new execution: fresh history and ids; events not yet delivered move over to it, and so do the
            # events processed after the ContinueAsNew call (DTFx carryover: the dispatcher sends
            # ``CarryoverEvents`` to the new execution after its ExecutionStarted).
            self.queue = [p for p in self.queue if p.event["EventType"] == HistoryEventType.EVENT_RAISED]
            heapq.heapify(self.queue)
            carried = self.carryover
            self.in_flight = 0
            self._reset_execution(_wire_input(value))
            if not self.harness.carryover:
                carried = []
            self._episode([self._execution_started()], [])
            for event in carried:
                self.raise_event(event["Name"], json.loads(event["Input"]) if event.get("Input") else None,
                                 at=self.now)

    def _open_task_ids(self) -> set[int]:
        """Scheduled activities, sub-orchestrations and timers not yet completed (cancelled timers excluded)."""
        open_ids: set[int] = set()
        for action, task_id in self.invoked:
            if task_id is None or task_id in self.done_ids:
                continue
            if action["actionType"] == _CREATE_TIMER and action.get("isCanceled"):
                continue
            open_ids.add(task_id)
        return open_ids

    def _check_determinism(self, actions: list[dict[str, Any]]) -> None:
        if len(actions) < len(self.invoked) or any(
            _action_key(a) != _action_key(b) for a, (b, _) in zip(actions, self.invoked, strict=False)
        ):
            raise NonDeterminismError(
                f"{self.name}/{self.instance_id}: replay produced {[_action_key(a) for a in actions]}, "
                f"history recorded {[_action_key(b) for b, _ in self.invoked]}"
            )
        # The latest answer carries the current cancellation flags of timers already scheduled.
        self.invoked = [(actions[i], task_id) for i, (_, task_id) in enumerate(self.invoked)]

    def _complete(self, top: dict[str, Any], first_flat: int) -> bool:
        """Whether the awaited top-level entry is complete given the events delivered so far."""
        flat = _flatten([top])
        states = [self._atomic_done(first_flat + i) for i in range(len(flat))]
        if top["actionType"] == _WHEN_ALL:
            return all(states)
        return any(states) if top["actionType"] == _WHEN_ANY else states[0]

    def _atomic_done(self, index: int) -> bool:
        action, task_id = self.invoked[index]
        kind = action["actionType"]
        if kind == _CONTINUE_AS_NEW:
            return True
        if kind == _WAIT_EVENT:
            name, ordinal = self.waiters[index]
            return self.events_received.get(name, 0) > ordinal
        if kind == _CREATE_TIMER and action.get("isCanceled"):
            return True
        return task_id is not None and task_id in self.done_ids

    def _walk(self, top: list[dict[str, Any]], flat: list[dict[str, Any]]) -> bool | None:
        """Advance the host's walk; True when every entry was invoked and completed, None when it failed."""
        firsts = list(itertools.accumulate((len(_flatten([a])) for a in top), initial=0))
        while True:
            if self.walk_blocked:
                position = self.top_invoked - 1
                if not self._complete(top[position], firsts[position]):
                    return False
                self.walk_blocked = False
            if self.top_invoked >= len(top):
                return True
            position = self.top_invoked
            for index in range(firsts[position], firsts[position + 1]):
                if not self._invoke(flat[index], index):
                    return None
            self.top_invoked += 1
            self.walk_blocked = True

    def _invoke(self, action: dict[str, Any], index: int) -> bool:
        action_type = action["actionType"]
        if action_type in _NOT_SUPPORTED:
            raise NotImplementedError(f"{_NOT_SUPPORTED[action_type]} actions are not simulated")
        task_id: int | None = None
        if action_type == _WAIT_EVENT:
            name = action["externalEventName"]
            ordinal = self.waiters_per_name.get(name, 0)
            self.waiters_per_name[name] = ordinal + 1
            self.waiters[index] = (name, ordinal)
            self.waiting_for.append(name)
        elif action_type == _CREATE_TIMER:
            task_id = self._take_id()
            if not self._create_timer(action, task_id):
                return False
        elif action_type in _TAKES_ID:
            task_id = self._take_id()
            self._schedule(action, task_id)
        self.invoked.append((action, task_id))
        return True

    def _create_timer(self, action: dict[str, Any], timer_id: int) -> bool:
        fire_at = _parse_dt(action["fireAt"])
        limit = self.harness.max_short_timer
        if limit is not None and fire_at - self.now > limit:
            # The extension's ThrowIfInvalidTimerLengthForStorageProvider fails the orchestration.
            self._finish("Failed", error=f"Timer duration {fire_at - self.now} exceeds the maximum {limit}.")
            return False
        self.history.append(self._event(HistoryEventType.TIMER_CREATED, timer_id, FireAt=_ts(fire_at)))
        self.timers.append((self.now, fire_at))
        self.timer_ids.add(timer_id)
        fired = self._event(HistoryEventType.TIMER_FIRED, TimerId=timer_id, FireAt=_ts(fire_at))
        self._push(max(fire_at, self.now), fired, user_timer=True, completes=timer_id)
        return True

    def _schedule(self, action: dict[str, Any], task_id: int) -> None:
        action_type = action["actionType"]
        kind = "activity" if action_type in (_CALL_ACTIVITY, _CALL_ACTIVITY_RETRY) else "sub"
        retry: _Retry | None = None
        if action_type in (_CALL_ACTIVITY_RETRY, _CALL_SUB_RETRY):
            options = action.get("retryOptions") or {}
            retry = _Retry(
                kind=kind,
                name=action["functionName"],
                input=_wire_input(action),
                instance_id=action.get("instanceId"),
                interval=timedelta(milliseconds=options["firstRetryIntervalInMilliseconds"]),
                max_attempts=int(options["maxNumberOfAttempts"]),
                root=task_id,
            )
        self._start_work(task_id, kind, action["functionName"], _wire_input(action), action.get("instanceId"), retry)

    def _start_work(
        self, task_id: int, kind: str, name: str, input_json: str, instance_id: str | None, retry: _Retry | None
    ) -> None:
        self.in_flight += 1
        self.max_concurrent = max(self.max_concurrent, self.in_flight)
        priority_on_failure = 0 if retry is not None else 1
        root = task_id if retry is None else retry.root
        done_on_failure = None if retry is not None else root
        if kind == "activity":
            self.history.append(
                self._event(HistoryEventType.TASK_SCHEDULED, task_id, Name=name, Version="", Input=input_json)
            )
            seconds = float(self.harness.latency(name, _decode_activity_input(input_json)))
            begin = self.harness.claim_activity_slot(self.now, seconds)
            with self.harness.acting_at(begin):
                ok, payload, details, decoded = self.harness._invoke_activity(name, input_json)
            self.activity_calls.append((name, decoded))
            done_at = begin + timedelta(seconds=seconds)
            if ok:
                event = self._event(HistoryEventType.TASK_COMPLETED, TaskScheduledId=task_id, Result=payload)
                self._push(done_at, event, finishes_work=True, completes=root)
            else:
                event = self._event(
                    HistoryEventType.TASK_FAILED, TaskScheduledId=task_id, Reason=payload, Details=details
                )
                self._push(
                    done_at,
                    event,
                    priority=priority_on_failure,
                    retry=retry,
                    finishes_work=True,
                    completes=done_on_failure,
                )
            return

        child_id = instance_id or f"{self.instance_id}:{task_id:04X}"
        self.history.append(
            self._event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
                task_id,
                Name=name,
                InstanceId=child_id,
                Input=input_json,
                Version="",
            )
        )
        if name not in self.harness.orchestrators:
            reason = f"The function '{name}' doesn't exist or is not an orchestrator function."
            event = self._event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                TaskScheduledId=task_id,
                Reason=reason,
                Details="FunctionFailedException",
            )
            self._push(
                self.now,
                event,
                priority=priority_on_failure,
                retry=retry,
                finishes_work=True,
                completes=done_on_failure,
            )
            return
        # The child is a registered instance of its own (raise_event reaches it); it reports back when it ends.
        child = _Instance(self.harness, name, input_json, child_id, self.now, (self, task_id, retry))
        self.harness.instances[child_id] = child
        self.children = [c for c in self.children if c.instance_id != child_id] + [child]
        child.run_until_idle(timer_horizon=self.horizon)

    def _report_to_parent(self) -> None:
        if self.parent is None:
            return
        parent, task_id, retry = self.parent
        if parent.is_finished:
            return
        if self.status == "Completed":
            event = parent._event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                TaskScheduledId=task_id,
                Result=json.dumps(self.output),
            )
            parent._push(self.now, event, finishes_work=True, completes=task_id if retry is None else retry.root)
        elif self.status == "Failed":
            event = parent._event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                TaskScheduledId=task_id,
                Reason=f"Orchestrator function '{self.name}' failed: {self.error}",
                Details=self.error,
            )
            parent._push(
                self.now,
                event,
                priority=0 if retry is not None else 1,
                retry=retry,
                finishes_work=True,
                completes=None if retry is not None else task_id,
            )
        else:
            return
        # A parent waiting for this child resumes now (a busy parent picks the event up in its own loop).
        parent.run_until_idle(timer_horizon=self.horizon if self.horizon is not None else parent.horizon)

    def _finish(self, status: str, output: Any = None, error: str | None = None) -> None:
        self.status, self.output, self.error = status, output, error
        self.finished_at = self.now
        if status == "Completed":
            result = json.dumps(output)
            completed = self._event(HistoryEventType.EXECUTION_COMPLETED, OrchestrationStatus=status, Result=result)
        else:
            completed = self._event(HistoryEventType.EXECUTION_COMPLETED, OrchestrationStatus=status, Result=error)
        if not self.history or self.history[-1]["EventType"] != HistoryEventType.ORCHESTRATOR_COMPLETED:
            self.history.append(self._event(HistoryEventType.ORCHESTRATOR_COMPLETED))
        self.history.append(completed)
        self.queue.clear()
        self._report_to_parent()


def _decode_activity_input(input_json: str) -> Any:
    return ActivityTriggerConverter.decode(func.meta.Datum(input_json, "json"), trigger_metadata=None)


def max_concurrent_activities_from_host_json(path: str = "host.json") -> int | None:
    """``extensions.durableTask.maxConcurrentActivityFunctions`` of a host.json (None when unset)."""
    with open(path, encoding="utf-8") as handle:
        host = json.load(handle)
    value = ((host.get("extensions") or {}).get("durableTask") or {}).get("maxConcurrentActivityFunctions")
    return None if value is None else int(value)


def _wire_input(action: dict[str, Any]) -> str:
    """The SDK pre-serialises action inputs (``df_dumps``); the extension passes that JSON text through."""
    value = action.get("input")
    return value if isinstance(value, str) else json.dumps(value)


def _timespan(value: timedelta) -> str:
    total = int(value.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    return f"{days}.{hours:02d}:{minutes:02d}:{seconds:02d}"


# -- the client ----------------------------------------------------------------------------------------------

_FAKE_ORIGIN = "http://localhost:7071"
_FAKE_QUERY = "taskHub=ReynoldsHub&connection=Storage&code=fake-system-key"


def _binding_json(task_hub: str) -> str:
    base = f"{_FAKE_ORIGIN}/runtime/webhooks/durabletask"
    query = _FAKE_QUERY.replace("ReynoldsHub", task_hub)
    instance = f"{base}/instances/INSTANCEID"
    return json.dumps(
        {
            "taskHubName": task_hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?code=fake",
                "createAndWaitOnNewInstancePostUri": (
                    f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&code=fake"
                ),
            },
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": f"{instance}?{query}",
                "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
                "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
                "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
                "purgeHistoryDeleteUri": f"{instance}?{query}",
                "restartPostUri": f"{instance}/restart?{query}",
                "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
                "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
            },
            "baseUrl": base,
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": "http://127.0.0.1:17071/durabletask/",
            "httpBaseUrl": "",
        }
    )


async def _unexpected_request(url: str, *args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"FakeDurableClient does not simulate {url}")


class FakeDurableClient(df.DurableOrchestrationClient):
    """A ``DurableOrchestrationClient`` whose instances run in-process on a :class:`ReplayHarness`.

    ``start_new`` runs the orchestration until it completes, fails, or only waits: on external events, on
    work that never reports back, or on a durable timer of its own. The client's clock stands still: it
    fast-forwards through activity latency, sub-orchestrations and retry intervals, but fires an
    orchestrator's timers only when told, with ``advance(seconds)`` (``None``: run every instance to idle).
    Instance state is kept; ``raise_event`` resumes it at the instance's current simulated time.

    Instance-id reuse follows the extension's default (``overridableExistingInstanceStates`` =
    NonRunningStates): starting an id whose instance is Pending or Running raises like the extension's 409;
    a Completed/Failed/Terminated instance is replaced by a fresh run. ``starts`` counts the instances
    actually started by callers outside the task hub (``start_log`` keeps (name, id, input));
    ``activity_start_log`` those started by activities holding a client binding (the engine's subtasks).
    ``create_check_status_response``/``create_http_management_payload`` are the SDK's own, fed a fake binding
    with ``http://localhost:7071`` URLs. Any other client call that would reach the host raises.
    """

    def __init__(self, harness: ReplayHarness, task_hub: str = "ReynoldsHub") -> None:
        super().__init__(_binding_json(task_hub))
        self._post_async_request = _unexpected_request
        self._get_async_request = _unexpected_request
        self._delete_async_request = _unexpected_request
        self.harness = harness
        if harness.client is None:
            harness.client = self
        self.instances: dict[str, _Instance] = harness.instances
        self.starts = 0
        self.start_log: list[tuple[str, str, Any]] = []
        self.activity_start_log: list[tuple[str, str, Any]] = []
        self.events_raised: list[tuple[str, str, Any]] = []
        self.max_episodes = 10_000

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any | None = None,
        version: str | None = None,
    ) -> str:
        instance_id = instance_id or uuid.uuid4().hex
        existing = self.instances.get(instance_id)
        if existing is not None and not existing.is_finished:
            raise Exception(f"An Orchestration instance with the status {existing.status} already exists.")
        # The client serialises the input before the host sees it; round-trip the same way.
        wire_input = json.loads(self._get_json_input(client_input) or "null")
        now = self.harness.clock() if self.harness.clock is not None else self.harness.start
        now = self.harness.current_time(now)
        start_at = max(existing.now, now) if existing is not None else now
        instance = self.harness.start_instance(orchestration_function_name, wire_input, instance_id, start_at)
        if self.harness.acting:  # started by an activity (the engine's subtasks): the task hub's business
            self.activity_start_log.append((orchestration_function_name, instance_id, wire_input))
        else:
            self.starts += 1
            self.start_log.append((orchestration_function_name, instance_id, wire_input))
        instance.run_until_idle(self.max_episodes, timer_horizon=instance.now)
        return instance_id

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus:
        instance = self.instances.get(instance_id)
        if instance is None:
            # The real client turns the host's 404 into a status object with no runtime status (falsy).
            return DurableOrchestrationStatus.from_json(f"No instance with ID '{instance_id}' found.")
        output = instance.output
        status = instance.status
        if instance.status == "Failed":
            output = f"Orchestrator function '{instance.name}' failed: {instance.error}"
        asked_at = self.harness.current_time(instance.started_at) if self.harness.acting else None
        if asked_at is not None and instance.finished_at is not None and instance.finished_at > asked_at:
            # Instances run ahead on their own clocks; an activity asking at ``asked_at`` sees it still running.
            status, output = "Running", None
        payload: dict[str, Any] = {
            "name": instance.name,
            "instanceId": instance.instance_id,
            "createdTime": _ts(instance.created_at),
            "lastUpdatedTime": _ts(instance.last_updated),
            "input": json.loads(instance.input_json) if show_input else None,
            "output": output,
            "runtimeStatus": status,
            "customStatus": instance.custom_status,
        }
        if show_history:
            payload["history"] = json.loads(json.dumps(instance.history))
        # What the status query reads from the instance table (input included when asked for).
        self.harness.client_read_bytes += len(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        return DurableOrchestrationStatus.from_json(payload)

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
        instance_id_prefix: str | None = None,
    ) -> list[DurableOrchestrationStatus]:
        """The instances matching every given condition (the SDK's query over the host's instance list)."""
        wanted = {getattr(s, "value", s) for s in runtime_status or []}
        found = []
        for instance_id, instance in self.instances.items():
            if wanted and instance.status not in wanted:
                continue
            if created_time_from is not None and instance.created_at < created_time_from:
                continue
            if created_time_to is not None and instance.created_at > created_time_to:
                continue
            if instance_id_prefix and not instance_id.startswith(instance_id_prefix):
                continue
            found.append(await self.get_status(instance_id))
        return found

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        if event_name == "":
            raise ValueError("event_name must be a non-empty string.")
        instance = self.instances.get(instance_id)
        if instance is None:
            raise Exception(f"No instance with ID {instance_id} found.")
        if instance.is_finished:
            raise Exception(f"Instance with ID {instance_id} is gone: either completed or failed")
        self.events_raised.append((instance_id, event_name, event_data))
        # The event lands at the caller's moment: the running activity's, else the world's clock, never before
        # the instance's own clock.
        world_now = self.harness.clock() if self.harness.clock is not None else instance.now
        at = self.harness.current_time(max(instance.now, world_now))
        instance.raise_event(event_name, json.loads(json.dumps(event_data)), at=at)
        instance.run_until_idle(self.max_episodes, timer_horizon=at)

    async def advance(self, seconds: float | None = None) -> None:
        """Move every unfinished instance ``seconds`` forward (``None``: until it completes or only waits)."""
        for instance in list(self.instances.values()):
            if not instance.is_finished:
                horizon = None if seconds is None else instance.now + timedelta(seconds=seconds)
                instance.run_until_idle(self.max_episodes, timer_horizon=horizon)
        if seconds is None:
            self.harness.settle_all(self.max_episodes)

    async def terminate(self, instance_id: str, reason: str) -> None:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise Exception(f"No instance with ID '{instance_id}' found.")
        if not instance.is_finished:
            instance.terminate(reason)

    def run_of(self, instance_id: str) -> OrchestrationRun:
        """The harness view (history, activity calls, clock) of a started instance."""
        return self.instances[instance_id].snapshot()


__all__ = [
    "DEFAULT_START",
    "ExternalEvent",
    "FakeDurableClient",
    "HarnessError",
    "NonDeterminismError",
    "OrchestrationRun",
    "OrchestrationRuntimeStatus",
    "ReplayHarness",
    "parse_orchestrator_state",
]
