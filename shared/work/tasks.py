"""Models of the orchestrate_task engine: the task, the strategy, the plan and every subtask's outcome.

These are the orchestration's input and output contracts (pydantic at every boundary); activities receive
and return ``model_dump(mode="json")`` dicts of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

REPO_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$"


class Specialist(StrEnum):
    """The AI specialists a subtask can be given to."""

    DEVOPS = "devops"
    PLATFORM = "platform"
    CODE = "code_intelligence"


class TaskSpec(BaseModel):
    """What a caller asks Reynolds to do."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=8000)
    components: list[str] = Field(default_factory=list, max_length=64)
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    repo: str | None = Field(None, pattern=REPO_PATTERN)

    @field_validator("components")
    @classmethod
    def _components_are_names(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or len(item) > 100:
                raise ValueError("each component is a non-empty name of at most 100 characters")
        return value


class Strategy(BaseModel):
    """How to run the plan."""

    model_config = ConfigDict(extra="forbid")

    approach: Literal["parallel_optimized", "sequential"] = "parallel_optimized"
    max_concurrency: int = Field(8, ge=1, le=64)


class Subtask(BaseModel):
    """One node of the plan's dependency graph."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=1, max_length=300)
    specialist: Specialist
    dependencies: list[str] = Field(default_factory=list)
    risk: Literal["low", "medium", "high"] = "low"
    #: True when the subtask writes outside the tracking thread (needs an approval first).
    writes: bool = False


class Plan(BaseModel):
    """The planner's answer: subtasks forming a DAG."""

    subtasks: list[Subtask] = Field(min_length=1, max_length=256)
    planner: Literal["azure-openai", "offline"] = "offline"
    rationale: str = ""


class SubtaskState(StrEnum):
    """Where a subtask is (the status comment's checklist and custom status)."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class SubtaskOutcome(BaseModel):
    """What became of one subtask."""

    id: str
    specialist: Specialist
    status: SubtaskState
    attempts: int = 0
    summary: str = ""
    error: str | None = None


class TaskLineage(BaseModel):
    """Lineage and tracking every task payload carries, filled by ingress (HTTP, MCP, Teams, Service Bus,
    GitHub command) and passed on to the engine's sub-orchestrations and activities."""

    event_id: str | None = None
    chain_id: str | None = None
    depth: int = 0
    tracking_issue: str | None = None


class TaskRequest(TaskLineage):
    """Input of the orchestrate_task orchestration."""

    model_config = ConfigDict(extra="forbid")

    task: TaskSpec
    strategy: Strategy = Field(default_factory=Strategy)


def request_of(orchestration_input: Any) -> TaskRequest:
    """The ``TaskRequest`` inside an orchestrate_task input: the first execution's input is the request itself,
    a continued execution (``continue_as_new``) carries it under ``"request"``."""
    if isinstance(orchestration_input, dict) and "request" in orchestration_input:
        return TaskRequest.model_validate(orchestration_input["request"])
    return TaskRequest.model_validate(orchestration_input)
