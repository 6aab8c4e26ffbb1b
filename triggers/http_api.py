"""Reynolds' HTTP API (function-key auth, JSON in and out, pydantic-validated).

* ``POST /api/orchestrations`` — start orchestrate_task (202 + status URL); ``Idempotency-Key`` makes the
  instance id deterministic, so a retried request never starts a second run.
* ``GET /api/orchestrations/{id}`` — runtime status, custom status, output (404 when unknown).
* ``POST /api/orchestrations/{id}/approve`` — raise ``approval`` on one waiting subtask or on all of them.
* ``POST /api/analyze`` — plan + predicted parallel speedup from learned specialist durations.
* ``GET /api/agents`` — per-specialist statistics; ``GET /api/health`` — readiness, deep health (200/503);
  ``GET /api/health/live`` — liveness, anonymous: the process answers (no store read, no setting named);
  ``GET /api/status`` — version, routing profile, counts.

Invalid JSON or schema → 422 with field errors. The start trigger never calls GitHub: the tracking issue is
opened by the report activity.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import shared
from shared import names
from shared.admission import open_task_chain, task_request_event
from shared.errors import ConfigurationError, IncomingRequestError, StoreError
from shared.loop.lineage import new_chain_id
from shared.platforms.limits import check_json
from shared.platforms.teams.permissions import graph_permission_status, graph_unhealthy
from shared.services import get_services
from shared.telemetry import bind_log_context
from shared.work.agents import AgentRegistry
from shared.work.task_report import TaskReporter, waiting_subtask_instances
from shared.work.task_service import TaskService
from shared.work.tasks import Strategy, TaskRequest, TaskSpec
from triggers.ingress import json_response

logger = logging.getLogger(__name__)

bp = df.Blueprint()

_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_ISSUE_REF = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}#[1-9][0-9]{0,9}$"
MAX_IDEMPOTENCY_KEY = 200
MAX_BODY_BYTES = 256 * 1024


class TaskBody(BaseModel):
    """What a caller sends to start a task (lineage is filled in by the API, never by the caller)."""

    model_config = ConfigDict(extra="forbid")

    task: TaskSpec
    strategy: Strategy = Field(default_factory=Strategy)
    #: ``owner/repo#N`` when the task belongs to an existing issue; else a tracking issue is opened.
    tracking_issue: str | None = Field(None, pattern=_ISSUE_REF)


class ApproveBody(BaseModel):
    """Approve one waiting subtask (``subtask``) or every waiting one."""

    model_config = ConfigDict(extra="forbid")

    subtask: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    by: str | None = Field(None, min_length=1, max_length=100)


class Unprocessable(IncomingRequestError):
    """422 with pydantic-style field errors."""

    status_code = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed", 422)
        self.errors = errors


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may be large or sensitive)."""
    return [{"loc": ".".join(str(part) for part in error["loc"]) or "body", "msg": error["msg"],
             "type": error["type"]} for error in exc.errors()]


def parse_model(model: type[BaseModel], raw: bytes, *, empty_ok: bool = False) -> Any:
    """Parse and validate a JSON body; raises :class:`Unprocessable` (422) with field errors."""
    check_json(raw, max_bytes=MAX_BODY_BYTES)  # size and nesting before json.loads
    if not raw.strip() and empty_ok:
        raw = b"{}"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable([{"loc": "body", "msg": "body is not valid JSON", "type": "json_invalid"}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unprocessable(field_errors(exc)) from None


def api_error(exc: Exception) -> func.HttpResponse:
    """Translate domain errors to HTTP: 4xx for the caller's mistakes, 503 for configuration and the store."""
    if isinstance(exc, Unprocessable):
        return json_response(422, {"error": exc.reason, "errors": exc.errors})
    if isinstance(exc, IncomingRequestError):
        return json_response(exc.status_code, {"error": exc.reason})
    if isinstance(exc, ConfigurationError):
        return json_response(503, {"error": str(exc), "setting": exc.setting})
    if isinstance(exc, StoreError):
        logger.error("store unavailable: %s", type(exc).__name__)
        return json_response(503, {"error": "the store is unavailable; try again later"})
    logger.exception("unexpected API failure")
    return json_response(500, {"error": "internal error"})


def status_url(instance_id: str) -> str:
    """The API route of an orchestration's status (the GitHub webhook's answer points here too)."""
    return f"/api/orchestrations/{instance_id}"


def task_instance_id(body: bytes, idempotency_key: str | None, door: str = "http") -> str:
    """Deterministic from ``Idempotency-Key`` when given, else a body hash plus a fresh uuid.

    The key is namespaced by ``door`` (``http``, ``mcp``): an HTTP caller's key never names an MCP caller's run.
    """
    if idempotency_key is not None:
        key = idempotency_key.strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            raise Unprocessable([{"loc": "header.Idempotency-Key", "msg": f"1 to {MAX_IDEMPOTENCY_KEY} characters",
                                  "type": "string_length"}])
        return "task-" + hashlib.sha256(f"idempotency:{door}:{key}".encode()).hexdigest()[:32]
    return f"task-{hashlib.sha256(body).hexdigest()[:12]}-{uuid.uuid4().hex}"


async def start_task(client: df.DurableOrchestrationClient, body: TaskBody, instance_id: str,
                     door: str = "http") -> dict[str, Any]:
    """Record the request as the first event of its chain, then start orchestrate_task as ``instance_id`` unless
    it already exists; the JSON answer. The chain is recorded first so that the explorer link the status comment
    carries resolves (a store outage raises before anything starts: the caller retries, nothing is lost)."""
    event_id = f"api-{instance_id}"
    services = get_services()
    event = task_request_event(event_id, door, body.task, body.tracking_issue, services.clock())
    decision = await asyncio.to_thread(open_task_chain, services, event)
    chain_id = decision.chain_id or new_chain_id(event_id)
    bind_log_context(replace=True, event_id=event_id, chain_id=chain_id, instance_id=instance_id)
    existing = await client.get_status(instance_id)
    started = not (existing and existing.runtime_status is not None)
    if started:
        request = TaskRequest(task=body.task, strategy=body.strategy, event_id=event_id, chain_id=chain_id,
                              depth=0, tracking_issue=body.tracking_issue)
        await client.start_new(names.ORCHESTRATE_TASK, instance_id, request.model_dump(mode="json"))
        logger.info("event %s chain %s: started %s as %s", event_id, chain_id, names.ORCHESTRATE_TASK, instance_id)
    else:
        logger.info("event %s chain %s: %s exists; not started again", event_id, chain_id, instance_id)
    return {"instance_id": instance_id, "started": started, "chain_id": chain_id,
            "status_url": status_url(instance_id)}


def _header(req: func.HttpRequest, name: str) -> str | None:
    for key, value in req.headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _instance_param(req: func.HttpRequest) -> str:
    instance_id = req.route_params.get("instance_id") or ""
    if not _INSTANCE_ID.match(instance_id):
        raise IncomingRequestError("unknown orchestration", 404)
    return instance_id


def _value(value: Any) -> Any:
    if hasattr(value, "value"):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


async def _status_or_404(client: df.DurableOrchestrationClient, instance_id: str) -> Any:
    status = await client.get_status(instance_id)
    if not status or status.runtime_status is None:
        raise IncomingRequestError("unknown orchestration", 404)
    return status


@bp.function_name("api_start_orchestration")
@bp.route(route="orchestrations", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def api_start_orchestration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Validate the task, start orchestrate_task, answer 202 with the status URL."""
    try:
        raw = req.get_body()
        body = parse_model(TaskBody, raw)
        answer = await start_task(client, body, task_instance_id(raw, _header(req, "Idempotency-Key")))
    except Exception as exc:
        return api_error(exc)
    response = json_response(202, answer)
    response.headers["Location"] = answer["status_url"]
    return response


@bp.function_name("api_get_orchestration")
@bp.route(route="orchestrations/{instance_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def api_get_orchestration(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Runtime status, custom status and output of one orchestration."""
    try:
        instance_id = _instance_param(req)
        status = await _status_or_404(client, instance_id)
    except Exception as exc:
        return api_error(exc)
    return json_response(200, {
        "instance_id": instance_id, "name": status.name, "runtime_status": _value(status.runtime_status),
        "custom_status": status.custom_status, "output": status.output,
        "created_time": _value(status.created_time), "last_updated_time": _value(status.last_updated_time),
    })


@bp.function_name("api_approve_orchestration")
@bp.route(route="orchestrations/{instance_id}/approve", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def api_approve_orchestration(req: func.HttpRequest,
                                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Raise ``approval`` on the named waiting subtask, or on every waiting subtask (202), 409 when none waits."""
    try:
        instance_id = _instance_param(req)
        body: ApproveBody = parse_model(ApproveBody, req.get_body(), empty_ok=True)
        status = await _status_or_404(client, instance_id)
        instances = waiting_subtask_instances(instance_id, status.custom_status)
        waiting = sorted(instances)
        if body.subtask is not None:
            if body.subtask not in waiting:
                raise IncomingRequestError(f"subtask {body.subtask} is not waiting for approval", 409)
            targets = [body.subtask]
        else:
            targets = waiting
        if not targets:
            raise IncomingRequestError("no subtask is waiting for approval", 409)
        data = {"approved": True, "by": body.by or "api"}
        for sid in targets:
            await client.raise_event(instances[sid], names.APPROVAL_EVENT, data)
            logger.info("instance %s: approval raised on subtask %s by %s", instance_id, sid, data["by"])
    except Exception as exc:
        return api_error(exc)
    return json_response(202, {"instance_id": instance_id, "approved": targets, "status_url": status_url(instance_id)})


@bp.function_name("api_analyze")
@bp.route(route="analyze", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def api_analyze(req: func.HttpRequest) -> func.HttpResponse:
    """Plan the task and predict what running it in parallel buys."""
    try:
        body: TaskBody = parse_model(TaskBody, req.get_body())
        request = TaskRequest(task=body.task, strategy=body.strategy)
        answer = await asyncio.to_thread(TaskService(get_services()).analyze, request)
    except Exception as exc:
        return api_error(exc)
    return json_response(200, answer)


@bp.function_name("api_agents")
@bp.route(route="agents", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def api_agents(req: func.HttpRequest) -> func.HttpResponse:
    """Learned statistics per specialist."""
    try:
        stats = await asyncio.to_thread(AgentRegistry(get_services()).agent_stats)
    except Exception as exc:
        return api_error(exc)
    return json_response(200, {"agents": [item.model_dump(mode="json") for item in stats]})


@bp.function_name("api_health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def api_health(req: func.HttpRequest) -> func.HttpResponse:
    """Deep health: the store answers a point read, settings are complete, model configured or offline, and the
    identity's Graph token carries the permissions the configured Teams subscriptions need (names any missing)."""
    try:
        services = get_services()
        reachable = await asyncio.to_thread(TaskService(services).store_reachable)
    except Exception as exc:
        return api_error(exc)
    missing = services.settings.missing()
    graph = await graph_permission_status(services.settings, services.graph_token)
    healthy = reachable and not missing and not graph_unhealthy(graph)
    return json_response(200 if healthy else 503, {
        "status": "healthy" if healthy else "unhealthy", "store": "reachable" if reachable else "unreachable",
        "missing_settings": missing, "model": "configured" if services.settings.openai_endpoint else "offline",
        "graph": graph,
    })


@bp.function_name("api_liveness")
@bp.route(route="health/live", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def api_liveness(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for a load balancer or App Service health check: the worker answers. Anonymous, so it reads
    nothing and says nothing beyond the version (readiness, with the store and settings, is keyed)."""
    return json_response(200, {"status": "alive", "version": app_version()})


def app_version() -> str:
    """The app's version (``shared.__version__``: deployed with the code, unlike ``pyproject.toml``)."""
    return shared.__version__


@bp.function_name("api_status")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def api_status(req: func.HttpRequest) -> func.HttpResponse:
    """Version, routing profile, mode and counts (orchestrations by last phase, subtask attempts)."""
    try:
        services = get_services()
        orchestrations = await asyncio.to_thread(TaskReporter(services).task_counts)
        agents = await asyncio.to_thread(AgentRegistry(services).agent_stats)
    except Exception as exc:
        return api_error(exc)
    return json_response(200, {
        "version": app_version(), "profile": services.settings.routing_profile,
        "mode": "offline" if TaskService(services).offline else "model",
        "counts": {"orchestrations": orchestrations, "subtask_attempts": sum(a.calls for a in agents),
                   "subtask_failures": sum(a.failures for a in agents)},
    })
