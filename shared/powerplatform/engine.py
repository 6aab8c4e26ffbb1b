"""The deployment orchestration's engine: a deterministic generator over the Durable context, driving
:mod:`shared.powerplatform.deploy`. The registered orchestrator (to come, in ``orchestrators/``) is the usual shim
``return (yield from run_deployment(context))``; the context is anything with the shape of
``orchestrators.context.OrchestrationContext`` (not imported: ``shared`` does not depend on ``orchestrators``).

Activities (thin, idempotent; names are constants): fetch the file and store it (→ a reference), stage it (→
upload id and missing dependencies), request an approval (posts the proposal; production only), start the
import (→ async operation id; the import job id is ``context.new_uuid()``, stable on replay, so the import log can
be read after a crash), poll (→ the async operation, and the failing component when it failed), publish, report.
Waiting is on durable timers only: between polls (:func:`~shared.powerplatform.deploy.poll_delay`) and for the
approval (the event or its expiry, whichever comes first). An activity that fails for good fails the deployment
with its message (Dataverse's text, from :func:`shared.powerplatform.tool.explain`).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.powerplatform.asyncops import AsyncOperation
from shared.powerplatform.deploy import (
    MissingDependency,
    next_step,
    on_approval,
    on_error,
    on_fetched,
    on_import_started,
    on_polled,
    on_published,
    on_staged,
    report,
    start,
)

FETCH = "pp_fetch_solution"
STAGE = "pp_stage_solution"
REQUEST_APPROVAL = "pp_request_approval"
IMPORT = "pp_import_solution"
POLL = "pp_poll_import"
PUBLISH = "pp_publish_all"
REPORT = "pp_report_deployment"
APPROVAL_EVENT = "deployment_approval"
#: As for other proposals (shared.act.deadlines): a pending approval expires after 72 hours.
APPROVAL_EXPIRES_AFTER = timedelta(hours=72)


class Context(Protocol):
    """The slice of the Durable orchestration context the engine uses."""

    @property
    def current_utc_datetime(self) -> Any: ...

    def get_input(self) -> Any: ...

    def call_activity(self, name: str, input_: Any = None) -> Any: ...

    def create_timer(self, fire_at: Any) -> Any: ...

    def wait_for_external_event(self, name: str) -> Any: ...

    def task_any(self, activities: list[Any]) -> Any: ...

    def new_uuid(self) -> str: ...


class DeploymentInput(BaseModel):
    """The orchestration's input (the approved ``deploy_solution`` call plus what the trigger looked up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str
    solution: str
    source: str
    environment_sku: str | None
    instance_url: str
    max_hours: int = Field(default=12, ge=1, le=48)


def run_deployment(context: Context) -> Generator[Any, Any, dict[str, Any]]:
    """Run one deployment to its report; returns the final state (JSON)."""
    spec = DeploymentInput.model_validate(context.get_input())
    state = start(spec.environment, spec.solution, spec.source, environment_sku=spec.environment_sku,
                  max_hours=spec.max_hours)
    where = {"environment": spec.environment, "instance_url": spec.instance_url}
    import_job_id = ""
    while True:
        step = next_step(state)
        try:
            if step.step == "fetch":
                ref = yield context.call_activity(FETCH, {"source": spec.source, "solution": spec.solution})
                state = on_fetched(state, str(ref))
            elif step.step == "stage":
                staged = yield context.call_activity(STAGE, {**where, "file_ref": state.file_ref})
                missing = [MissingDependency.model_validate(m) for m in staged.get("missing", [])]
                state = on_staged(state, str(staged["upload_id"]), missing)
            elif step.step == "request_approval":
                yield context.call_activity(REQUEST_APPROVAL, {**where, "solution": spec.solution,
                                                               "source": spec.source})
                expiry = context.create_timer(context.current_utc_datetime + APPROVAL_EXPIRES_AFTER)
                event = context.wait_for_external_event(APPROVAL_EVENT)
                winner = yield context.task_any([event, expiry])
                if winner is expiry:
                    state = state.model_copy(update={"phase": "stopped",
                                                     "stopped_reason": "the approval expired after 72 hours"})
                else:
                    decision = winner.result if isinstance(winner.result, dict) else {}
                    if hasattr(expiry, "cancel"):
                        expiry.cancel()
                    state = on_approval(state, bool(decision.get("approved")), str(decision.get("by", "")))
            elif step.step == "import":
                import_job_id = import_job_id or context.new_uuid()
                operation_id = yield context.call_activity(IMPORT, {**where, "upload_id": state.upload_id,
                                                                    "import_job_id": import_job_id})
                state = on_import_started(state, str(operation_id), context.current_utc_datetime)
            elif step.step == "wait_then_poll":
                yield context.create_timer(step.at)
                polled = yield context.call_activity(POLL, {**where, "async_operation_id": state.async_operation_id,
                                                            "import_job_id": import_job_id})
                state = on_polled(state, AsyncOperation.model_validate(polled["operation"]),
                                  context.current_utc_datetime, component=polled.get("component"))
            elif step.step == "publish":
                yield context.call_activity(PUBLISH, where)
                state = on_published(state)
            else:
                yield context.call_activity(REPORT, {**where, "solution": spec.solution, "phase": state.phase,
                                                     "text": report(state)})
                return state.model_dump(mode="json")
        except Exception as exc:  # an activity failed after its retries: the deployment fails, and says why
            if state.phase in ("done", "failed", "stopped"):
                raise
            state = on_error(state, str(exc)[:1000])
