"""The AI layer: the Azure OpenAI client, the planner, the specialists and the safety guards.

The domain core never imports ``azure.functions``; activities call these services and let their typed
errors (``ModelThrottled``, ``ModelError``) raise.
"""

from shared.ai.client import (
    ModelError,
    ModelThrottled,
    ModelUnavailable,
    TokenBudget,
    TokenBudgetExceeded,
    classify_openai_error,
    make_openai_client,
    retry_after_from_message,
)
from shared.ai.planner import (
    InvalidPlan,
    analyze_potential,
    dependency_levels,
    offline_plan,
    plan_task,
    validate_dag,
)
from shared.ai.safety import UntrustedText, delimit_untrusted, redact_secrets, sanitize_output, secret_values
from shared.ai.specialists import (
    ProposedWrite,
    RefusedTool,
    SpecialistAnswer,
    SpecialistResult,
    ToolExecutor,
    get_profile,
    run_specialist,
)

__all__ = [
    "InvalidPlan",
    "ModelError",
    "ModelThrottled",
    "ModelUnavailable",
    "ProposedWrite",
    "RefusedTool",
    "SpecialistAnswer",
    "SpecialistResult",
    "TokenBudget",
    "TokenBudgetExceeded",
    "ToolExecutor",
    "UntrustedText",
    "analyze_potential",
    "classify_openai_error",
    "delimit_untrusted",
    "dependency_levels",
    "get_profile",
    "make_openai_client",
    "offline_plan",
    "plan_task",
    "redact_secrets",
    "retry_after_from_message",
    "run_specialist",
    "sanitize_output",
    "secret_values",
    "validate_dag",
]
