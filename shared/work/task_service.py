"""Planning and running subtasks: the domain logic behind the plan and run-subtask activities and the task API.

* **Planning**: the Azure OpenAI planner when a model is configured, else the deterministic ``offline_plan``.
* **Running a subtask**: offline, a deterministic stand-in specialist (clearly marked ``(offline)``); with a model,
  ``run_specialist`` with the read-only GitHub tool executor. Model throttling and permanent model errors become
  the engine's classified results; every other failure raises (the engine retries it). One model token budget
  per orchestration is shared by its subtasks (a ``budget:<instance>`` document).

Reporting lives in :mod:`shared.work.task_report`, specialist statistics in :mod:`shared.work.agents`.
No ``azure.functions`` import here: activities and triggers are thin adapters over :class:`TaskService`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.ai.client import ModelError, ModelThrottled, TokenBudget, make_openai_client
from shared.ai.planner import analyze_potential, offline_plan, plan_task
from shared.ai.safety import UntrustedText, secret_values
from shared.ai.specialists import run_specialist
from shared.errors import NotFound, StoreError
from shared.platforms.github.read_tools import GitHubReadTools
from shared.services import Services
from shared.store.base import safe_id, update_document
from shared.telemetry import record_llm_tokens
from shared.work.agents import AgentRegistry
from shared.work.task_report import TASK_DOC_TTL_SECONDS, github_for
from shared.work.tasks import Plan, Subtask, TaskLineage, TaskRequest, TaskSpec

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)
_T = TypeVar("_T")



# --- payload models (the activities' contracts, see orchestrators/engine.py) -------------------------------


class TaskSpecRef(BaseModel):
    """Where a subtask's attempt finds its task: saved once per parent run by ``START_SUBTASKS``, so the
    description enters neither the subtasks' histories nor an O(N) read of the parent's input per subtask."""

    model_config = ConfigDict(extra="forbid")

    parent_instance_id: str = Field(min_length=1, max_length=200)
    run: str = Field("", max_length=40)


def _task_spec_doc_id(ref: TaskSpecRef) -> str:
    return safe_id(f"taskspec:{ref.parent_instance_id}:{ref.run}")


class RunSubtaskPayload(TaskLineage):
    """Input of ``run_subtask_activity``."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    subtask_instance_id: str
    idempotency_key: str
    attempt: int = Field(ge=1)
    subtask: Subtask
    #: The task itself (a subtask started on its own) or, from the engine, a reference to the saved task.
    task: TaskSpec | None = None
    task_ref: TaskSpecRef | None = None
    dependency_summaries: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_task(self) -> RunSubtaskPayload:
        if (self.task is None) == (self.task_ref is None):
            raise ValueError("exactly one of task and task_ref is required")
        return self


# --- timeouts in the right order -------------------------------------------------------------------------
#
# host.json ``functionTimeout`` (600 s) > the engine's attempt timeout (``RetryPolicy.attempt_timeout_seconds``,
# 300 s) > this deadline (240 s) > one model call (``AZURE_OPENAI_TIMEOUT_SECONDS``, 30 s) and one GitHub call
# (``GITHUB_TIMEOUT_SECONDS``, 10 s). A specialist run is up to 6 turns of one model call and 8 tool calls
# (660 s at the worst), so the activity stops waiting for it at the deadline and answers a retryable failure:
# no invocation reaches ``functionTimeout``, where the host restarts the Python worker and aborts every
# invocation running on it (Azure/azure-functions-host#8720), and the orchestration's attempt timeout stays a
# backstop that never has to fire. The abandoned run finishes on its own daemon thread within its own client
# timeouts; it writes nothing (specialists only propose writes).

#: How long one attempt's activity waits for its specialist run.
SPECIALIST_DEADLINE_SECONDS = 240.0


class SpecialistDeadline(Exception):
    """The specialist run did not finish within the activity's deadline (retryable)."""


def within_deadline(call: Callable[[], _T], seconds: float) -> _T:
    """``call()`` on a daemon thread, waited for at most ``seconds``; raises :class:`SpecialistDeadline` after."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the waiting activity below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="specialist-run", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SpecialistDeadline(f"specialist run exceeded the activity deadline of {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return cast(_T, outcome["value"])


# --- process-wide model clients ---------------------------------------------------------------------

_lock = threading.Lock()
_model_clients: dict[str, Any] = {}


def set_model_client(endpoint: str, client: Any | None) -> None:
    """Install the model client for ``endpoint`` (tests point it at a local fake); ``None`` forgets it."""
    with _lock:
        if client is None:
            _model_clients.pop(endpoint, None)
        else:
            _model_clients[endpoint] = client


class TaskService:
    """Planning and subtask execution over one ``Services`` container."""

    def __init__(self, services: Services, *, deadline_seconds: float | None = None) -> None:
        self.services = services
        self.deadline_seconds = SPECIALIST_DEADLINE_SECONDS if deadline_seconds is None else deadline_seconds
        self.settings = services.settings
        self.store = services.store
        self.agents = AgentRegistry(services)

    # -- the model ---------------------------------------------------------------------------------------
    def model_client(self) -> openai.OpenAI | None:
        """The Azure OpenAI client, or None in offline mode (no ``AZURE_OPENAI_ENDPOINT``)."""
        endpoint = self.settings.openai_endpoint
        if not endpoint:
            return None
        with _lock:
            client = _model_clients.get(endpoint)
            if client is None:
                client = make_openai_client(self.settings)
                _model_clients[endpoint] = client
        return client

    @property
    def offline(self) -> bool:
        """True when no model is configured: deterministic planner and offline specialists."""
        return not self.settings.openai_endpoint

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, request: TaskRequest) -> Plan:
        """The plan of ``request``: the model's when configured, the offline planner's otherwise.

        A model that is throttled or keeps answering invalid plans does not fail the orchestration: the
        offline planner takes over and the plan says so (``planner: offline`` and the reason in ``rationale``).
        """
        client = self.model_client()
        if client is None:
            return offline_plan(request.task)
        try:
            return plan_task(request.task, client, self.settings.openai_deployment,
                             budget=TokenBudget(self.settings.openai_token_budget))
        except (ModelThrottled, ModelError) as exc:
            logger.warning("event %s chain %s: model planner failed (%s); offline plan instead",
                           request.event_id, request.chain_id, exc)
            fallback = offline_plan(request.task)
            return fallback.model_copy(update={"rationale": f"model planner failed ({exc}); {fallback.rationale}"})

    def analyze(self, request: TaskRequest) -> dict[str, Any]:
        """Plan ``request`` and predict its parallel speedup from the specialists' learned durations."""
        plan = self.plan(request)
        durations = self.agents.learned_durations()
        analysis = analyze_potential(plan, durations, request.strategy.max_concurrency)
        return {"plan": plan.model_dump(mode="json"), "analysis": analysis,
                "durations": {key.value: value for key, value in durations.items()},
                "mode": "offline" if self.offline else "model"}

    # -- the task, saved once per run ------------------------------------------------------------------
    def save_task_spec(self, parent_instance_id: str, run: str, spec: dict[str, Any]) -> None:
        """Save a run's task for its subtasks (a second save of the same run is the same document)."""
        doc_id = _task_spec_doc_id(TaskSpecRef(parent_instance_id=parent_instance_id, run=run))
        task = TaskSpec.model_validate(spec)
        self.store.upsert({"id": doc_id, "pk": doc_id, "kind": "taskspec", "task": task.model_dump(mode="json"),
                           "ttl": TASK_DOC_TTL_SECONDS})

    def task_of(self, payload: RunSubtaskPayload) -> TaskSpec:
        """The attempt's task: given, or read by reference (one point read of a small document)."""
        if payload.task is not None:
            return payload.task
        assert payload.task_ref is not None  # the payload validator requires one of them
        doc_id = _task_spec_doc_id(payload.task_ref)
        return TaskSpec.model_validate(self.store.read(doc_id, doc_id)["task"])

    # -- running a subtask -------------------------------------------------------------------------------
    def run_subtask(self, payload: RunSubtaskPayload) -> dict[str, Any]:
        """One attempt of a subtask; returns the engine's ``RunSubtaskResult`` dict (see module docstring)."""
        specialist = payload.subtask.specialist
        attempt_key = f"{payload.idempotency_key}:{payload.attempt}"
        wait = self.agents.breaker_wait(specialist)
        if wait > 0:
            logger.warning("instance %s subtask %s: %s breaker open; retry in %.0f s", payload.instance_id,
                           payload.subtask.id, specialist.value, wait)
            return {"ok": False, "retryable": True, "retry_after": wait,
                    "error": f"{specialist.value} circuit breaker is open"}
        started = time.perf_counter()
        try:
            result = self._run_offline(payload) if self.offline else self._run_with_model(payload)
        except Exception:
            self.agents.record_call(specialist, attempt_key, ok=False, seconds=time.perf_counter() - started)
            raise
        self.agents.record_call(specialist, attempt_key, ok=bool(result["ok"]), seconds=time.perf_counter() - started)
        logger.info("event %s chain %s instance %s subtask %s attempt %d: %s", payload.event_id, payload.chain_id,
                    payload.instance_id, payload.subtask.id, payload.attempt, "ok" if result["ok"] else "failed")
        return result

    @staticmethod
    def _run_offline(payload: RunSubtaskPayload) -> dict[str, Any]:
        subtask = payload.subtask
        return {"ok": True, "summary": f"{subtask.specialist.value} (offline): {subtask.title}"}

    def _run_with_model(self, payload: RunSubtaskPayload) -> dict[str, Any]:
        client = self.model_client()
        if client is None:  # pragma: no cover - offline is decided before
            return self._run_offline(payload)
        task, subtask = self.task_of(payload), payload.subtask
        allowed = [task.repo] if task.repo else []
        context = [UntrustedText("task-description", task.type, task.description)]
        if task.components:
            context.append(UntrustedText("task-components", task.type, "\n".join(task.components)))
        context.extend(UntrustedText("dependency-result", dep, text)
                       for dep, text in payload.dependency_summaries.items())
        tools = GitHubReadTools(github_for(self.services, task.repo), allowed_repos=allowed)
        # One token budget per orchestration, shared by its subtasks (parallel ones may overshoot by what
        # their calls in flight spend: each checks before every model call).
        spent = self.tokens_spent(payload.instance_id)
        budget = TokenBudget(self.settings.openai_token_budget, used=spent)
        try:
            result = within_deadline(
                lambda: run_specialist(client, self.settings.openai_deployment, subtask.specialist, subtask, context,
                                       tools, budget, allowed_repos=allowed, secrets=secret_values(self.settings)),
                self.deadline_seconds,
            )
        except SpecialistDeadline as exc:
            return {"ok": False, "retryable": True, "error": str(exc)}
        except ModelThrottled as exc:
            return {"ok": False, "retryable": True, "retry_after": exc.retry_after_seconds, "error": str(exc)}
        except ModelError as exc:
            return {"ok": False, "retryable": False, "error": str(exc)}
        finally:
            self._spend(payload.instance_id, budget.used - spent)
        record_llm_tokens(result.tokens_used, subtask.specialist.value)
        summary = result.answer.summary
        if result.proposed_writes:
            proposed = ", ".join(sorted({write.tool for write in result.proposed_writes}))
            summary = f"{summary} — approval needed: proposed {proposed} (not executed)"
        return {"ok": True, "summary": summary}

    def tokens_spent(self, instance_id: str) -> int:
        """Model tokens the orchestration ``instance_id`` has spent so far (all its subtasks)."""
        doc_id = safe_id(f"budget:{instance_id}")
        try:
            return int(self.store.read(doc_id, doc_id).get("used", 0))
        except NotFound:
            return 0

    def _spend(self, instance_id: str, tokens: int) -> None:
        if tokens <= 0:
            return

        def update(doc: dict[str, Any] | None) -> dict[str, Any]:
            used = int((doc or {}).get("used", 0)) + tokens
            return {"kind": "budget", "instance_id": instance_id, "used": used, "ttl": TASK_DOC_TTL_SECONDS}

        update_document(self.store, safe_id(f"budget:{instance_id}"), update)

    def store_reachable(self) -> bool:
        """One point read: True when the store answers (a missing document is an answer)."""
        try:
            self.store.read("health", "health")
        except NotFound:
            return True
        except StoreError:
            return False
        return True


__all__ = [
    "SPECIALIST_DEADLINE_SECONDS",
    "RunSubtaskPayload",
    "SpecialistDeadline",
    "TaskService",
    "TaskSpecRef",
    "set_model_client",
    "within_deadline",
]
