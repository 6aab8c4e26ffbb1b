"""Replay a recorded history in a fresh interpreter, to catch non-determinism one process cannot see.

A replay inside the process that recorded the history shares its hash seed, imported module state and caches:
an orchestrator iterating a ``set`` of strings, or reading a module-level counter, replays "fine" there and
diverges on the worker that picks the instance up next (DTFx then raises ``NonDeterministicOrchestrationException``
on the mismatched ``TaskScheduled``; the extension's out-of-proc shim reports the same through
``ProcessAsyncActionsV2``). :func:`fresh_process_actions` runs the SDK's orchestrator handle on the final
history in a new ``python`` with another ``PYTHONHASHSEED`` and returns the action keys it produced;
:func:`assert_replays_alike` compares them with the same replay in this process.

``python -m tools.harness.replay_check`` reads ``{"target": "module:attribute", "context": {...}}`` on stdin.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from azure.functions._durable_functions import OrchestrationContext as WorkerOrchestrationContext

ROOT = Path(__file__).resolve().parents[2]
_LABEL = "\n\n$OutOfProcData$:"


def _keys(state_text: str) -> list[list[Any]]:
    from tools.harness.durable import _action_key, parse_orchestrator_state

    return [list(_action_key(a)) for a in parse_orchestrator_state(state_text)["actions"]]


def replay_keys(target: str, context: dict[str, Any]) -> list[list[Any]]:
    """The action keys the orchestrator ``module:attribute`` yields when replaying ``context`` here."""
    from tools.harness.durable import _orchestrator_handle

    module, _, attribute = target.partition(":")
    handle = _orchestrator_handle(getattr(importlib.import_module(module), attribute))
    try:
        text = handle(WorkerOrchestrationContext(json.dumps(context)))
    except Exception as exc:  # the SDK reports an orchestrator failure as an exception carrying the state
        message = str(exc)
        if _LABEL not in message:
            raise
        text = message.split(_LABEL, 1)[1]
    return _keys(text)


def fresh_process_actions(target: str, context: dict[str, Any], hash_seed: int = 4242) -> list[list[Any]]:
    """The same replay in a new interpreter with ``PYTHONHASHSEED=hash_seed``."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tools.harness.replay_check"],
        input=json.dumps({"target": target, "context": context}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    keys: list[list[Any]] = json.loads(completed.stdout.strip().splitlines()[-1])
    return keys


def replay_context(run: Any, input_json: str | None = None) -> dict[str, Any]:
    """The context JSON the extension would send to replay ``run``'s final history (``OrchestrationRun``)."""
    started = next(e for e in run.history if e["EventType"] == 0)
    return {
        "history": run.history,
        "input": input_json if input_json is not None else started.get("Input"),
        "instanceId": run.instance_id,
        "isReplaying": True,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
        "maximumShortTimerDuration": "6.00:00:00",
        "longRunningTimerIntervalDuration": "3.00:00:00",
    }


def assert_replays_alike(target: str, run: Any, hash_seed: int = 4242) -> list[list[Any]]:
    """Raise ``NonDeterminismError`` unless a fresh process replays ``run`` into the same actions as this one."""
    from tools.harness.durable import NonDeterminismError

    context = replay_context(run)
    here = replay_keys(target, context)
    there = fresh_process_actions(target, context, hash_seed)
    if here != there:
        raise NonDeterminismError(f"{run.instance_id}: this process replays {here}, a fresh one {there}")
    return here


def main() -> int:
    """Entry point of the child interpreter: print the action keys as one JSON line."""
    request = json.loads(sys.stdin.read())
    print(json.dumps(replay_keys(request["target"], request["context"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
