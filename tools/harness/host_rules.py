"""What the Durable extension and DTFx do with the Python SDK's answer: the rules the replay harness applies.

Each rule is read from the upstream sources (Microsoft.Azure.WebJobs.Extensions.DurableTask 2.x,
``Azure/azure-functions-durable-extension``; DurableTask.Core, ``Azure/durabletask``; the Python SDK 1.7,
``Azure/azure-functions-durable-python``) and pinned by a minimal-orchestrator test in
``tests/test_durable_harness.py``.

* **Sequential awaits over the action list** — ``src/WebJobs.Extensions.DurableTask/Listener/
  OutOfProcOrchestrationShim.cs``, ``ProcessAsyncActionsV2``: for schema V2/V3 the shim walks the flat
  top-level action list in order; for each entry ``InvokeAPIFromAction`` schedules it (a ``WhenAny``/``WhenAll``
  entry schedules all of its compound children at once) and the shim ``await``s it before invoking the next
  entry. An entry that is not complete yet therefore holds back every later entry: they are not scheduled.
  The SDK puts only not-yet-scheduled tasks into a new compound action (``models/Task.py``,
  ``CompoundTask.__init__``: ``if not task._is_scheduled``; a compound whose children are all scheduled adds
  no action at all, ``TaskOrchestrationExecutor.resume_user_code``; pinned upstream by
  ``tests/orchestrator/test_sequential_orchestrator.py::test_reducing_when_any_pattern``), so a refill
  ``task_any([...in_flight, new])`` becomes ``WhenAny{new}`` and the host waits for *that* task alone.
* **Cancelled timers** — ``InvokeAPIFromAction`` ``CreateTimer`` case: the timer is created and, when the
  action says ``isCanceled``, its token is cancelled at once; DTFx's ``TaskOrchestrationContext.CreateTimer``
  then removes it from the open tasks and completes the task (cancelled), so the await returns immediately.
  The ``TimerCreated`` event is still recorded and the timer still fires later.
* **Open tasks hold completion** — ``src/DurableTask.Core/TaskOrchestrationExecutor.cs``, ``ExecuteCore``:
  the orchestration completes, fails or continues as new only ``if (!this.context.HasOpenTasks)``; open tasks
  (``TaskOrchestrationContext.openTasks``) are scheduled activities, sub-orchestrations and timers, removed
  only by their completion/failure/firing (or a timer's cancellation). External-event waits are not open
  tasks. The shim also checks the SDK's ``error``/``isDone`` only after the action walk returned
  (``ScheduleDurableTaskEvents``), so a walk blocked on an incomplete entry keeps the instance Running.
* **Custom status limit** — ``ScheduleDurableTaskEvents`` sets the custom status first;
  ``DurableOrchestrationContext.SetCustomStatus`` serialises it with ``MessagePayloadDataConverter.Serialize``
  (max 16 KB), which throws ``ArgumentException`` when ``(int)(Encoding.Unicode.GetByteCount(json) / 1024.0)``
  exceeds 16: the orchestration fails.
* **Activity failure text** — ``Listener/TaskActivityShim.cs``, ``RunAsync``: a user-code error becomes
  ``TaskFailureException("Activity function '<name>' failed: <message>", Utils.SerializeCause(...))``, the
  message being the worker's ``<Type>: <msg>`` (``OutOfProcExceptionHelpers.TryGetExceptionWithFriendlyMessage``
  cuts it out of the RPC text); DTFx's ``TaskActivityDispatcher`` stores it as ``TaskFailed.Reason`` and the
  serialised exception as ``Details``. The SDK raises ``Exception(f"{Reason} \\n {Details}")``
  (``TaskOrchestrationExecutor.set_task_value``).
* **Carryover of events after ContinueAsNew** — ``src/DurableTask.Core/TaskOrchestrationExecutor.cs``,
  ``ProcessEvent``, ``EventType.EventRaised`` case: once the orchestration called ContinueAsNew
  (``TaskOrchestrationContext.HasContinueAsNew``) and unless ``skipCarryOverEvents``
  (``EventBehaviourForContinueAsNew.Ignore``), an external event is not raised but handed to
  ``TaskOrchestrationContext.AddEventToNextIteration``, which adds it to the ContinueAsNew action's
  ``CarryoverEvents``; the dispatcher sends those to the new execution. On Azure Storage the behaviour is
  ``Carryover``. The shim calls ContinueAsNew when its walk reaches that action, so the events of a batch that
  DTFx processes after the event completing the last awaited entry move over (``ReplayHarness.carryover``;
  pinned in ``tests/test_durable_carryover.py``).
* **Activities per worker** — host.json ``extensions.durableTask.maxConcurrentActivityFunctions`` becomes DTFx's
  ``MaxConcurrentTaskActivityWorkItems`` (``Azure/azure-functions-durable-extension``, the durability provider
  factories, e.g. ``AzureManagedDurabilityProviderFactory``: ``options.MaxConcurrentActivityWorkItems =
  metadata.MaxConcurrentActivityFunctions``): a worker runs at most that many activities at once, the others
  stay queued (``ReplayHarness.max_concurrent_activities``, ``max_concurrent_activities_from_host_json``).
"""

from __future__ import annotations

import json
import traceback
from typing import Any

#: ``DurableOrchestrationContext.SetCustomStatus``: MaxCustomStatusPayloadSizeInKB.
MAX_CUSTOM_STATUS_KB = 16


def custom_status_error(value: Any) -> str | None:
    """The extension's ``ArgumentException`` text when ``value`` is too big for a custom status, else None.

    Newtonsoft's ``Formatting.None`` writes compact JSON without escaping non-ASCII; the size is counted in
    UTF-16 and truncated to whole KB before the comparison (so 16 KB + 1023 bytes still passes).
    """
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb <= MAX_CUSTOM_STATUS_KB:
        return None
    return (
        f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB:,} KB. "
        f"The current payload size is {size_kb:,} KB."
    )


def activity_failure(name: str, exc: BaseException) -> tuple[str, str]:
    """``(Reason, Details)`` of the ``TaskFailed`` event for an activity that raised ``exc`` in the worker."""
    friendly = f"{type(exc).__name__}: {exc}"
    stack = "".join(traceback.format_exception(exc)).rstrip()
    rpc_message = f"Result: Failure\nException: {friendly}\nStack: {stack}"
    details = {
        "$type": "System.Exception, System.Private.CoreLib",
        "ClassName": "System.Exception",
        "Message": friendly,
        "Data": None,
        "InnerException": {
            "$type": "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, Microsoft.Azure.WebJobs.Script",
            "ClassName": "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException",
            "Message": rpc_message,
            "RemoteStackTrace": stack,
        },
        "HelpURL": None,
        "StackTraceString": None,
        "HResult": -2146233088,
        "Source": None,
    }
    return f"Activity function '{name}' failed: {friendly}", json.dumps(details)
