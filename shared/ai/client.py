"""The Azure OpenAI client factory, the typed model errors and the per-orchestration token budget.

The SDK never retries (``max_retries=0``): a retry inside an activity would hold a worker and hide the
throttling from the orchestration. Instead every SDK failure is classified: ``ModelThrottled`` (429, or a
transient outage) carries the seconds to wait so the orchestration backs off with a durable timer, and
``ModelError`` is permanent (bad request, content filter, invalid output).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

from shared.errors import ConfigurationError, ReynoldsError
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from openai.types.chat import ChatCompletion

logger = logging.getLogger(__name__)

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
#: Wait when a 429 or an outage names no retry-after (Azure OpenAI rate windows are 1-10 s).
DEFAULT_RETRY_AFTER_SECONDS = 10.0
#: Never ask the orchestration to sleep longer than this on a header's word.
MAX_RETRY_AFTER_SECONDS = 600.0
_MAX_ERROR_TEXT = 300


class ModelError(ReynoldsError):
    """A permanent model failure (bad request, content filter, output that never validates)."""


class ModelThrottled(ReynoldsError):
    """The model is rate limited (429) or briefly unavailable: retry after ``retry_after_seconds``.

    The message carries the figure (``retry_after_seconds=12.5``) because Durable Functions hands an
    orchestration only the failed activity's message; ``retry_after_from_message`` reads it back.
    """

    def __init__(self, retry_after_seconds: float, reason: str = "model throttled") -> None:
        self.retry_after_seconds = float(retry_after_seconds)
        self.reason = reason
        super().__init__(f"{reason}; retry_after_seconds={self.retry_after_seconds:.3f}")


class ModelUnavailable(ModelThrottled):
    """A transient outage (timeout, connection error, 5xx): retryable like throttling."""


class TokenBudgetExceeded(ModelError):
    """The orchestration's token budget is spent; no further model call is made."""


_RETRY_IN_MESSAGE = re.compile(r"retry_after_seconds=([0-9]+(?:\.[0-9]+)?)")


def retry_after_from_message(message: str) -> float | None:
    """The retry-after of a ``ModelThrottled`` message (as a failed activity reports it), else ``None``."""
    match = _RETRY_IN_MESSAGE.search(message)
    return float(match.group(1)) if match else None


class TokenBudget:
    """Tokens an orchestration may spend on the model, counted from ``usage.total_tokens``.

    ``used`` is plain data so activities can carry it across calls (``TokenBudget(limit, used=...)``).
    """

    def __init__(self, limit: int, used: int = 0) -> None:
        if limit < 1 or used < 0:
            raise ValueError("a token budget needs a positive limit and a non-negative usage")
        self.limit = limit
        self.used = used

    @property
    def remaining(self) -> int:
        """Tokens left (never negative)."""
        return max(0, self.limit - self.used)

    def check(self) -> None:
        """Raise ``TokenBudgetExceeded`` when no tokens are left for another call."""
        if self.used >= self.limit:
            raise TokenBudgetExceeded(f"token budget exhausted: used {self.used} of {self.limit} tokens")

    def charge(self, tokens: int) -> None:
        """Count a call's tokens; raise ``TokenBudgetExceeded`` once the limit is passed."""
        self.used += max(0, int(tokens))
        if self.used > self.limit:
            raise TokenBudgetExceeded(f"token budget exceeded: used {self.used} of {self.limit} tokens")


def _endpoint_is_safe(endpoint: str) -> bool:
    """A bearer token may travel only over https, or plain http to a loopback test server."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def make_openai_client(
    settings: Settings,
    credential: TokenCredential | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
) -> openai.OpenAI | None:
    """Build the OpenAI client for the Azure OpenAI v1 endpoint, or ``None`` when no endpoint is set.

    Keyless in Azure: the SDK's ``api_key`` accepts a callable, so an Entra bearer-token provider for
    the Cognitive Services scope refreshes the token per request (role "Cognitive Services OpenAI User").
    ``api_key`` and ``base_url`` exist for local fakes only. The SDK does not retry; see ``ModelThrottled``.
    """
    endpoint = base_url or settings.openai_endpoint
    if not endpoint:
        return None
    if not _endpoint_is_safe(endpoint):
        raise ConfigurationError("AZURE_OPENAI_ENDPOINT", "must be an https URL")
    url = base_url or f"{endpoint.rstrip('/')}/openai/v1/"
    key: str | Callable[[], str]
    if api_key is not None:
        key = api_key
    else:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider

        cred = credential or DefaultAzureCredential(
            managed_identity_client_id=settings.azure_client_id, exclude_interactive_browser_credential=True
        )
        key = get_bearer_token_provider(cred, COGNITIVE_SERVICES_SCOPE)
    return openai.OpenAI(base_url=url, api_key=key, timeout=settings.openai_timeout_seconds, max_retries=0)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return min(value, MAX_RETRY_AFTER_SECONDS)
    raw = headers.get("retry-after")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            try:
                when = parsedate_to_datetime(raw)
                # Header dates are relative to the server's clock; without our own clock here, a date
                # header only tells us "later": use the default wait.
                value = DEFAULT_RETRY_AFTER_SECONDS if when else math.nan
            except (TypeError, ValueError):
                value = math.nan
        if math.isfinite(value) and value >= 0:
            return min(value, MAX_RETRY_AFTER_SECONDS)
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def _error_code(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("code") is not None:
            return str(inner.get("code"))
    return None


def classify_openai_error(exc: BaseException) -> ReynoldsError:
    """Map an openai SDK exception to ``ModelThrottled``/``ModelUnavailable`` (retry) or ``ModelError``.

    The returned error's text is short and holds the service's message, never request content.
    """
    if isinstance(exc, ReynoldsError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailable(DEFAULT_RETRY_AFTER_SECONDS, "model request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailable(DEFAULT_RETRY_AFTER_SECONDS, "model endpoint unreachable")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        headers: Mapping[str, str] = exc.response.headers
        wait = _retry_after(headers)
        if status == 429:
            return ModelThrottled(DEFAULT_RETRY_AFTER_SECONDS if wait is None else wait, "model throttled (429)")
        if status in (408, 409) or status >= 500:
            return ModelUnavailable(DEFAULT_RETRY_AFTER_SECONDS if wait is None else wait, f"model HTTP {status}")
        code = _error_code(exc.body)
        if code == "content_filter":
            return ModelError("model request blocked by the content filter")
        return ModelError(f"model HTTP {status} ({code or 'no code'}): {_short(exc.message)}")
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return ModelError("model output blocked by the content filter")
    if isinstance(exc, openai.LengthFinishReasonError):
        return ModelError("model output truncated at the token limit")
    if isinstance(exc, openai.OpenAIError):
        return ModelError(f"model client error: {_short(str(exc))}")
    return ModelError(f"unexpected model failure: {type(exc).__name__}")


def create_chat_completion(
    client: openai.OpenAI,
    *,
    deployment: str,
    messages: list[dict[str, Any]],
    budget: TokenBudget | None = None,
    tools: list[dict[str, Any]] | None = None,
    response_format: dict[str, Any] | None = None,
    max_completion_tokens: int | None = None,
) -> ChatCompletion:
    """One chat completion, with errors classified and tokens charged to ``budget``."""
    if budget is not None:
        budget.check()
    kwargs: dict[str, Any] = {"model": deployment, "messages": messages}
    if tools:
        kwargs["tools"] = tools
        kwargs["parallel_tool_calls"] = True
    if response_format is not None:
        kwargs["response_format"] = response_format
    if max_completion_tokens is not None:
        kwargs["max_completion_tokens"] = max_completion_tokens
    try:
        completion: ChatCompletion = client.chat.completions.create(**kwargs)
    except Exception as exc:
        raise classify_openai_error(exc) from exc
    if budget is not None and completion.usage is not None:
        budget.charge(completion.usage.total_tokens)
    if not completion.choices:
        raise ModelError("model returned no choices")
    return completion
