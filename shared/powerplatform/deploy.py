"""A solution deployment as a pure state machine: the orchestration asks :func:`next_step` what to do, does it
(an activity, a durable timer or an approval wait) and feeds the result back with one of the ``on_*`` functions.

The steps, as Power Platform Build Tools / ``pac solution import`` run them, with what their users miss added
(stage first, approval on production, follow the async job to the end):

1. ``fetch`` — the solution file from a release or a path (the activity stores it and passes a reference);
2. ``stage`` — ``StageSolution`` (learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/
   stagesolution): its ``StageSolutionResults.MissingDependencies`` are read *before anything changes*; any
   missing dependency stops the deployment, naming each required component and the solution it comes from;
3. ``approval`` — when the environment is production (BAP ``properties.environmentSku == "Production"``), an
   approved proposal is required; a rejection stops it;
4. ``import`` — ``ImportSolutionAsync`` with the staged upload id; it answers ``AsyncOperationId``;
5. ``poll`` — read ``asyncoperations(id)`` at :func:`poll_delay` intervals on durable timers, for up to
   ``max_hours`` (imports of large solutions take hours);
6. ``publish`` — ``PublishAllXml``;
7. ``report`` — done, or failed with the Dataverse error text and the failing component.

Every function is pure (times come from the caller: ``context.current_utc_datetime``), so the orchestrator
stays deterministic; the state is a small pydantic model carried between steps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.powerplatform.asyncops import AsyncOperation

Phase = Literal["fetch", "stage", "approval", "import", "poll", "publish", "done", "failed", "stopped"]
PRODUCTION_SKU = "Production"
DEFAULT_MAX_HOURS = 12


class MissingDependency(BaseModel):
    """A component the solution needs that the environment lacks (from ``MissingDependencies``)."""

    model_config = ConfigDict(frozen=True)

    required_component: str
    required_type: str | None = None
    required_solution: str | None = None
    dependent_component: str | None = None

    def describe(self) -> str:
        """``<component> (from solution <name>), needed by <dependent>``."""
        text = self.required_component
        if self.required_solution:
            text += f" (from solution {self.required_solution})"
        if self.dependent_component:
            text += f", needed by {self.dependent_component}"
        return text


class Failure(BaseModel):
    """Why a deployment failed: the step, Dataverse's error code and text, and the failing component if known."""

    model_config = ConfigDict(frozen=True)

    step: str
    message: str
    code: str | None = None
    component: str | None = None


class Deployment(BaseModel):
    """The deployment's state (what the orchestration carries)."""

    model_config = ConfigDict(frozen=True)

    environment: str
    solution: str
    source: str
    production: bool
    phase: Phase = "fetch"
    file_ref: str | None = None
    upload_id: str | None = None
    async_operation_id: str | None = None
    import_started_at: datetime | None = None
    polls: int = 0
    next_poll_at: datetime | None = None
    max_hours: int = Field(default=DEFAULT_MAX_HOURS, ge=1, le=48)
    missing: tuple[MissingDependency, ...] = ()
    failure: Failure | None = None
    stopped_reason: str | None = None


Step = Literal["fetch", "stage", "request_approval", "import", "wait_then_poll", "publish", "report"]


class NextStep(BaseModel):
    """What to do next; ``at`` is the durable timer's fire time for ``wait_then_poll``."""

    model_config = ConfigDict(frozen=True)

    step: Step
    at: datetime | None = None


def start(environment: str, solution: str, source: str, *, environment_sku: str | None,
          max_hours: int = DEFAULT_MAX_HOURS) -> Deployment:
    """A new deployment; production when the environment's SKU is ``Production`` (an unknown SKU is treated
    as production: asking for an approval that was not needed is cheaper than skipping one that was)."""
    return Deployment(environment=environment, solution=solution, source=source, max_hours=max_hours,
                      production=environment_sku is None or environment_sku == PRODUCTION_SKU)


def next_step(state: Deployment) -> NextStep:
    """The step the state asks for."""
    mapping: dict[str, Step] = {"fetch": "fetch", "stage": "stage", "approval": "request_approval",
                                "import": "import", "publish": "publish"}
    if state.phase == "poll":
        return NextStep(step="wait_then_poll", at=state.next_poll_at)
    return NextStep(step=mapping.get(state.phase, "report"))


def poll_delay(polls: int) -> timedelta:
    """Every minute for the first ten polls, every five minutes to the first hour, then every fifteen."""
    if polls < 10:
        return timedelta(minutes=1)
    if polls < 20:
        return timedelta(minutes=5)
    return timedelta(minutes=15)


def on_fetched(state: Deployment, file_ref: str) -> Deployment:
    """The solution file is stored under ``file_ref``."""
    _expect(state, "fetch")
    return state.model_copy(update={"file_ref": file_ref, "phase": "stage"})


def on_staged(state: Deployment, upload_id: str, missing: list[MissingDependency]) -> Deployment:
    """``StageSolution`` answered: stop before importing when anything is missing."""
    _expect(state, "stage")
    if missing:
        names = "; ".join(dep.describe() for dep in missing)
        return state.model_copy(update={
            "phase": "stopped", "missing": tuple(missing), "upload_id": upload_id,
            "stopped_reason": f"not imported: {len(missing)} missing dependenc{'y' if len(missing) == 1 else 'ies'}"
                              f" in {state.environment}: {names}"})
    return state.model_copy(update={"upload_id": upload_id, "phase": "approval" if state.production else "import"})


def on_approval(state: Deployment, approved: bool, who: str = "") -> Deployment:
    """The production approval's decision."""
    _expect(state, "approval")
    if approved:
        return state.model_copy(update={"phase": "import"})
    by = f" by {who}" if who else ""
    return state.model_copy(update={"phase": "stopped", "stopped_reason": f"the import was rejected{by}"})


def on_import_started(state: Deployment, async_operation_id: str, now: datetime) -> Deployment:
    """``ImportSolutionAsync`` answered with its async operation."""
    _expect(state, "import")
    return state.model_copy(update={"async_operation_id": async_operation_id, "import_started_at": now,
                                    "phase": "poll", "polls": 0, "next_poll_at": now + poll_delay(0)})


def on_polled(state: Deployment, operation: AsyncOperation, now: datetime, *,
              component: str | None = None) -> Deployment:
    """A poll's answer: succeeded → publish; failed/canceled → failed with Dataverse's text (and the failing
    component the import job names); still running → the next timer, unless ``max_hours`` have passed."""
    _expect(state, "poll")
    outcome = operation.outcome
    if outcome == "succeeded":
        return state.model_copy(update={"phase": "publish", "polls": state.polls + 1, "next_poll_at": None})
    if outcome in ("failed", "canceled"):
        text = operation.message or operation.friendlymessage or f"the import was {outcome} without a message"
        return state.model_copy(update={"phase": "failed", "polls": state.polls + 1, "next_poll_at": None,
                                        "failure": Failure(step="import", message=text, component=component)})
    assert state.import_started_at is not None
    if now - state.import_started_at >= timedelta(hours=state.max_hours):
        return state.model_copy(update={"phase": "failed", "polls": state.polls + 1, "next_poll_at": None,
                                        "failure": Failure(step="import", message=(
                                            f"still {outcome} after {state.max_hours} hours (async operation "
                                            f"{operation.asyncoperationid}); Reynolds stopped waiting, the import "
                                            "may still finish"))})
    polls = state.polls + 1
    return state.model_copy(update={"polls": polls, "next_poll_at": now + poll_delay(polls)})


def on_published(state: Deployment) -> Deployment:
    """``PublishAllXml`` succeeded."""
    _expect(state, "publish")
    return state.model_copy(update={"phase": "done"})


def on_error(state: Deployment, message: str, *, code: str | None = None, component: str | None = None) -> Deployment:
    """A call failed for good (after the activity's retries): the deployment fails at its current step."""
    return state.model_copy(update={"phase": "failed", "next_poll_at": None,
                                    "failure": Failure(step=state.phase, message=message, code=code,
                                                       component=component)})


def report(state: Deployment) -> str:
    """The sentence people read on the tracking issue or in the chat."""
    head = f"Solution {state.solution} → {state.environment}"
    if state.phase == "done":
        took = ""
        if state.import_started_at is not None:
            took = f" after {state.polls} poll{'s' if state.polls != 1 else ''}"
        return f"{head}: imported and published{took}."
    if state.phase == "stopped":
        return f"{head}: {state.stopped_reason}."
    if state.phase == "failed" and state.failure is not None:
        where = f" (component {state.failure.component})" if state.failure.component else ""
        code = f" [{state.failure.code}]" if state.failure.code else ""
        return f"{head}: failed at {state.failure.step}{where}{code}: {state.failure.message}"
    return f"{head}: {state.phase}."


def _expect(state: Deployment, phase: Phase) -> None:
    if state.phase != phase:
        raise ValueError(f"deployment is at {state.phase}, not {phase}")
