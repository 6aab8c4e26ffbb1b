"""Reynolds as MCP tools, through the Azure Functions MCP extension (``mcp_tool_trigger``).

The host serves the MCP endpoint (``/runtime/webhooks/mcp``, protected by the ``mcp_extension`` system key)
and calls these functions with a JSON context whose ``arguments`` hold the tool's arguments. Each tool
validates them with pydantic and answers JSON text; invalid arguments answer ``{"error", "errors"}``.

Tools: ``orchestrate_task`` (starts the orchestration exactly like ``POST /api/orchestrations``),
``analyze_orchestration_potential``, ``get_agent_status``, ``get_chain`` (the lineage explorer) and
``get_reynolds_wisdom``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TypeVar

import azure.durable_functions as df
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import IncomingRequestError, StoreError
from shared.platforms.limits import check_json
from shared.services import get_services
from shared.work.agents import AgentRegistry
from shared.work.task_service import TaskService
from shared.work.tasks import Specialist, Strategy, TaskRequest, TaskSpec
from shared.work.wisdom import get_reynolds_wisdom
from triggers.http_api import MAX_BODY_BYTES as MAX_CONTEXT_BYTES
from triggers.http_api import TaskBody, field_errors, start_task, task_instance_id

logger = logging.getLogger(__name__)

bp = df.Blueprint()

_M = TypeVar("_M", bound=BaseModel)


def _props(*items: tuple[str, str, str, bool]) -> str:
    """``toolProperties`` JSON as the MCP extension reads it."""
    return json.dumps([{"propertyName": name, "propertyType": kind, "description": text, "isRequired": required}
                       for name, kind, text, required in items])


_TASK_PROPS = (
    ("task", "object", "The task: {type, description, components?, priority?, repo?}.", True),
    ("strategy", "object", "Optional: {approach: parallel_optimized|sequential, max_concurrency 1-64}.", False),
)


class OrchestrateArgs(BaseModel):
    """Arguments of ``orchestrate_task``."""

    model_config = ConfigDict(extra="forbid")

    task: TaskSpec
    strategy: Strategy = Field(default_factory=Strategy)
    tracking_issue: str | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class AnalyzeArgs(BaseModel):
    """Arguments of ``analyze_orchestration_potential``."""

    model_config = ConfigDict(extra="forbid")

    task: TaskSpec
    strategy: Strategy = Field(default_factory=Strategy)


class AgentArgs(BaseModel):
    """Arguments of ``get_agent_status``."""

    model_config = ConfigDict(extra="forbid")

    specialist: Specialist | None = None


class ChainArgs(BaseModel):
    """Arguments of ``get_chain``."""

    model_config = ConfigDict(extra="forbid")

    chain_id: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.:-]+$")


class WisdomArgs(BaseModel):
    """Arguments of ``get_reynolds_wisdom``."""

    model_config = ConfigDict(extra="forbid")

    situation: str = Field("", max_length=2000)


class InvalidArguments(ValueError):
    """The tool's arguments do not validate; carries the field errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid arguments")
        self.errors = errors


def tool_arguments(context: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The ``arguments`` object of an MCP tool invocation context (JSON text or an already-decoded dict)."""
    if isinstance(context, bytes | str):
        try:
            check_json(context or "{}", max_bytes=MAX_CONTEXT_BYTES, what="context")
        except IncomingRequestError as exc:
            raise InvalidArguments([{"loc": "context", "msg": exc.reason, "type": "too_large_or_deep"}]) from None
        try:
            context = json.loads(context or "{}")
        except ValueError:
            raise InvalidArguments([{"loc": "context", "msg": "not valid JSON", "type": "json_invalid"}]) from None
    if not isinstance(context, dict):
        raise InvalidArguments([{"loc": "context", "msg": "not a JSON object", "type": "dict_type"}])
    arguments = context.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidArguments([{"loc": "arguments", "msg": "not a JSON object", "type": "dict_type"}])
    return arguments


def _validated(model: type[_M], context: str | bytes | dict[str, Any]) -> _M:
    try:
        return model.model_validate(tool_arguments(context))
    except ValidationError as exc:
        raise InvalidArguments(field_errors(exc)) from None


def _invalid(exc: InvalidArguments) -> str:
    return json.dumps({"error": "invalid arguments", "errors": exc.errors})


@bp.function_name("mcp_orchestrate_task")
@bp.mcp_tool_trigger(arg_name="context", tool_name="orchestrate_task",
                     description="Plan a task and run its subtasks in parallel with Reynolds' specialists; "
                                 "returns the orchestration id and its status URL.",
                     tool_properties=_props(*_TASK_PROPS,
                                            ("tracking_issue", "string", "Optional owner/repo#N to report on.", False),
                                            ("idempotency_key", "string", "Optional: the same key never starts "
                                                                          "a second run.", False)))
@bp.durable_client_input(client_name="client")
async def mcp_orchestrate_task(context: str, client: df.DurableOrchestrationClient) -> str:
    """Start orchestrate_task like the HTTP API does."""
    try:
        args = _validated(OrchestrateArgs, context)
        body = TaskBody(task=args.task, strategy=args.strategy, tracking_issue=args.tracking_issue)
    except InvalidArguments as exc:
        return _invalid(exc)
    except ValidationError as exc:
        return _invalid(InvalidArguments(field_errors(exc)))
    raw = body.model_dump_json().encode()
    try:
        answer = await start_task(client, body, task_instance_id(raw, args.idempotency_key, door="mcp"), door="mcp")
    except StoreError:
        return json.dumps({"error": "the store is unavailable; try again later"})
    return json.dumps(answer)


@bp.function_name("mcp_analyze_orchestration_potential")
@bp.mcp_tool_trigger(arg_name="context", tool_name="analyze_orchestration_potential",
                     description="Plan a task and predict its parallel speedup (Amdahl) from the specialists' "
                                 "learned durations.",
                     tool_properties=_props(*_TASK_PROPS))
async def mcp_analyze_orchestration_potential(context: str) -> str:
    """Plan + ``analyze_potential``."""
    try:
        args = _validated(AnalyzeArgs, context)
    except InvalidArguments as exc:
        return _invalid(exc)
    request = TaskRequest(task=args.task, strategy=args.strategy)
    return json.dumps(await asyncio.to_thread(TaskService(get_services()).analyze, request))


@bp.function_name("mcp_get_agent_status")
@bp.mcp_tool_trigger(arg_name="context", tool_name="get_agent_status",
                     description="Calls, success rate, p50/p95 duration and circuit-breaker state per specialist.",
                     tool_properties=_props(("specialist", "string",
                                             "Optional: devops, platform or code_intelligence.", False)))
async def mcp_get_agent_status(context: str) -> str:
    """Learned statistics, all specialists or one."""
    try:
        args = _validated(AgentArgs, context)
    except InvalidArguments as exc:
        return _invalid(exc)
    stats = await asyncio.to_thread(AgentRegistry(get_services()).agent_stats)
    chosen = [item for item in stats if args.specialist is None or item.specialist == args.specialist]
    return json.dumps({"agents": [item.model_dump(mode="json") for item in chosen]})


@bp.function_name("mcp_get_chain")
@bp.mcp_tool_trigger(arg_name="context", tool_name="get_chain",
                     description="An event chain's lineage: its head, events with loop-guard verdicts and effects.",
                     tool_properties=_props(("chain_id", "string", "The chain id (c-...).", True)))
async def mcp_get_chain(context: str) -> str:
    """``LineageService.explore``; ``{"found": false}`` for an unknown chain."""
    try:
        args = _validated(ChainArgs, context)
    except InvalidArguments as exc:
        return _invalid(exc)
    chain = await asyncio.to_thread(get_services().lineage.explore, args.chain_id)
    if chain is None:
        return json.dumps({"chain_id": args.chain_id, "found": False})
    return json.dumps({"found": True, **chain}, default=str)


@bp.function_name("mcp_get_reynolds_wisdom")
@bp.mcp_tool_trigger(arg_name="context", tool_name="get_reynolds_wisdom",
                     description="A short line in Reynolds' voice for a situation (deterministic).",
                     tool_properties=_props(("situation", "string", "What is going on, in a few words.", False)))
def mcp_get_reynolds_wisdom(context: str) -> str:
    """A line of wisdom for the situation."""
    try:
        args = _validated(WisdomArgs, context)
    except InvalidArguments as exc:
        return _invalid(exc)
    return json.dumps({"situation": args.situation, "wisdom": get_reynolds_wisdom(args.situation)})
