"""Telemetry: OpenTelemetry to Azure Monitor, a metrics facade, structured-log helpers and secret redaction.

Structured logs: ``log_context(event_id=…, chain_id=…, instance_id=…, verdict=…, rule=…)`` binds correlation
ids for the code inside it, and ``install_log_context`` (called by ``configure_telemetry``) makes every log record
a root handler emits there carry them as attributes. OpenTelemetry's ``LoggingHandler`` exports a record's non-standard
attributes as log attributes, which Azure Monitor stores as custom dimensions: Application Insights can filter
``traces`` by ``customDimensions.chain_id``. ``correlated`` does the binding for an activity from its payload.

``configure_telemetry`` turns on the Azure Monitor distro only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is
set (Entra-authenticated: the credential is the app's managed identity), so tests and local runs without it
configure nothing. The metric names below are a contract with ``infra/app/workbook.bicep`` and
``infra/app/alerts.bicep``. Until a meter provider is installed, ``opentelemetry.metrics`` hands out no-op
instruments, so the facade is always safe to call.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry import metrics
from pydantic import SecretStr

from shared.settings import Settings

logger = logging.getLogger(__name__)

METER_NAME = "reynolds"

# Metric names: keep in step with the workbook and alert queries in infra/app/.
VERDICTS = "reynolds.verdicts"
LOOPS_STOPPED = "reynolds.loops_stopped"
BREAKER_TRANSITIONS = "reynolds.breaker.transitions"
BREAKER_OPENED = "reynolds.breaker.opened"
ORCHESTRATIONS = "reynolds.orchestrations"
ORCHESTRATION_DURATION = "reynolds.orchestration.duration"
LLM_TOKENS = "reynolds.llm.tokens"
GITHUB_WRITES = "reynolds.github.writes"
INBOX_POISONED = "reynolds.inbox.poisoned"

_lock = threading.Lock()
_configured = False
_instruments: dict[str, Any] = {}

MASK = "***"
# Shapes of secrets that may reach a log line even when no setting holds them.
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(sha(?:1|256)=)[0-9a-fA-F]{16,}"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE),
    re.compile(r"(HMAC\s+)[A-Za-z0-9+/]+=*"),
    re.compile(r"((?:AccountKey|SharedAccessKey|sig)=)[^;&\s]+", re.IGNORECASE),
    re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
)


#: The correlation ids a log record carries (custom dimensions in Application Insights).
CORRELATION_FIELDS = ("event_id", "chain_id", "instance_id", "verdict", "rule")
_log_ids: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("reynolds_log_ids", default={})  # noqa: B039
_factory_lock = threading.Lock()

F = TypeVar("F", bound=Callable[..., Any])


def current_log_context() -> dict[str, str]:
    """The correlation ids bound in the current context (a copy)."""
    return dict(_log_ids.get())


def _clean(ids: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in ids.items() if k in CORRELATION_FIELDS and v not in (None, "")}


@contextlib.contextmanager
def log_context(*, fresh: bool = False, **ids: Any) -> Iterator[dict[str, str]]:
    """Bind correlation ids (only ``CORRELATION_FIELDS``, empty values ignored) for the code inside the block;
    ``fresh`` drops the ids bound outside it (a new invocation)."""
    merged = {**({} if fresh else _log_ids.get()), **_clean(ids)}
    token = _log_ids.set(merged)
    try:
        yield merged
    finally:
        _log_ids.reset(token)


def bind_log_context(*, replace: bool = False, **ids: Any) -> None:
    """Add correlation ids to the current context until it ends (an async invocation runs in its own task);
    ``replace`` drops the ids bound before (a trigger starting on a new event)."""
    _log_ids.set({**({} if replace else _log_ids.get()), **_clean(ids)})


def invocation_context() -> contextvars.Context:
    """A copy of the current context with no correlation id bound: what one function invocation runs in.

    The Python worker runs each async invocation in a task of its own (a copy of the dispatcher's context, where
    nothing is bound), but a sync invocation on a reused thread-pool thread, or a local harness awaiting handlers
    one after another, would see the ids the previous invocation bound. ``correlated`` and the local harness
    (``tools.world.call_function``) start every invocation here, so no id leaks from one into the next.
    """
    context = contextvars.copy_context()
    context.run(_log_ids.set, {})
    return context


class LogContextFilter(logging.Filter):
    """Handler filter that adds the bound correlation ids to each record it passes (never drops one).

    A filter, not a record factory: ``Logger.makeRecord`` refuses an ``extra=`` key the record already has, and
    code passes ``extra=log_extra(...)``; an explicit ``extra`` value wins over the bound one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the missing correlation attributes in place."""
        for key, value in _log_ids.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def install_log_context(logger: logging.Logger | None = None) -> None:
    """Attach one ``LogContextFilter`` to each handler of the root logger (idempotent; call again after a
    handler is added, as ``configure_telemetry`` does after the Azure Monitor exporter's)."""
    target = logger or logging.getLogger()
    with _factory_lock:
        for handler in target.handlers:
            if not any(isinstance(f, LogContextFilter) for f in handler.filters):
                handler.addFilter(LogContextFilter())


def _ids_from_payload(payload: Any) -> dict[str, Any]:
    """Correlation ids in an activity payload: top-level keys, then those of a nested ``request``."""
    if not isinstance(payload, Mapping):
        return {}
    found: dict[str, Any] = {}
    nested = payload.get("request")
    for source in (nested if isinstance(nested, Mapping) else {}, payload):
        found.update({k: source[k] for k in ("event_id", "chain_id", "instance_id") if source.get(k)})
    return found


def correlated(func: F) -> F:
    """Bind the correlation ids found in an activity's ``payload`` for the call (sync or async activity), and
    only those: ids an earlier invocation on the same thread bound are not carried over.

    Placed under ``@bp.activity_trigger``; ``functools.wraps`` keeps the signature the Functions indexer reads.
    """
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def run_async(payload: Any, *args: Any, **kwargs: Any) -> Any:
            with log_context(fresh=True, **_ids_from_payload(payload)):
                return await func(payload, *args, **kwargs)
        return run_async  # type: ignore[return-value]

    @functools.wraps(func)
    def run(payload: Any, *args: Any, **kwargs: Any) -> Any:
        with log_context(fresh=True, **_ids_from_payload(payload)):
            return func(payload, *args, **kwargs)
    return run  # type: ignore[return-value]


def is_configured() -> bool:
    """Whether ``configure_telemetry`` installed the Azure Monitor exporters in this process."""
    return _configured


def configure_telemetry(settings: Settings) -> bool:
    """Enable OpenTelemetry export to Azure Monitor once per process; return whether it is (now) enabled.

    Does nothing without ``APPLICATIONINSIGHTS_CONNECTION_STRING``. The exporter authenticates with Entra ID:
    ``ManagedIdentityCredential`` for the user-assigned identity when ``AZURE_CLIENT_ID`` is set, otherwise
    ``DefaultAzureCredential`` (a developer's ``az login``). A redaction filter is attached to the root logger
    either way, so secrets never reach a log sink.
    """
    global _configured
    install_redaction(secret_values(settings))
    install_log_context()
    connection = settings.appinsights_connection_string
    if connection is None or not connection.get_secret_value():
        return False
    with _lock:
        if _configured:
            return True
        # Imported lazily: the distro is heavy and optional for tests.
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
        from azure.monitor.opentelemetry import configure_azure_monitor

        credential: Any = (
            ManagedIdentityCredential(client_id=settings.azure_client_id)
            if settings.azure_client_id
            else DefaultAzureCredential()
        )
        configure_azure_monitor(
            connection_string=connection.get_secret_value(),
            credential=credential,
            logger_name="",
        )
        _instruments.clear()  # re-create instruments on the real meter provider
        install_redaction(secret_values(settings))  # the exporter's log handler is new: filter it too
        install_log_context()
        _configured = True
        logger.info("telemetry: Azure Monitor export enabled")
        return True


def _meter() -> metrics.Meter:
    return metrics.get_meter(METER_NAME)


def _counter(name: str, unit: str, description: str) -> Any:
    instrument = _instruments.get(name)
    if instrument is None:
        instrument = _meter().create_counter(name, unit=unit, description=description)
        _instruments[name] = instrument
    return instrument


def _histogram(name: str, unit: str, description: str) -> Any:
    instrument = _instruments.get(name)
    if instrument is None:
        instrument = _meter().create_histogram(name, unit=unit, description=description)
        _instruments[name] = instrument
    return instrument


def record_verdict(verdict: str, platform: str) -> None:
    """Count one loop-guard verdict (accepted, duplicate, self, loop, ignored, rejected) for a platform."""
    _counter(VERDICTS, "1", "Loop-guard verdicts").add(1, {"verdict": verdict, "platform": platform})


def record_loop_stopped(rule: str) -> None:
    """Count a chain the loop guard stopped, by the rule that stopped it (cycle, depth, breaker, budget)."""
    _counter(LOOPS_STOPPED, "1", "Loops stopped").add(1, {"rule": rule})


def record_breaker_transition(key_kind: str, state: str) -> None:
    """Count a circuit-breaker state change; an ``open`` also counts on the alerting metric."""
    _counter(BREAKER_TRANSITIONS, "1", "Breaker state transitions").add(1, {"key_kind": key_kind, "state": state})
    if state == "open":
        _counter(BREAKER_OPENED, "1", "Breakers opened").add(1, {"key_kind": key_kind})


def record_orchestration(name: str, outcome: str, duration_s: float) -> None:
    """Count a finished orchestration by outcome (completed, failed, ...) and record its duration."""
    attributes = {"orchestration": name, "outcome": outcome}
    _counter(ORCHESTRATIONS, "1", "Orchestrations finished").add(1, attributes)
    _histogram(ORCHESTRATION_DURATION, "s", "Orchestration duration").record(max(duration_s, 0.0), attributes)


def record_llm_tokens(n: int, specialist: str) -> None:
    """Count LLM tokens spent by a specialist."""
    _counter(LLM_TOKENS, "{token}", "LLM tokens").add(max(n, 0), {"specialist": specialist})


def record_github_write(kind: str) -> None:
    """Count one write to GitHub (comment, label, issue, ...)."""
    _counter(GITHUB_WRITES, "1", "GitHub writes").add(1, {"kind": kind})


def record_inbox_poisoned(cause: str) -> None:
    """Count one item read from the inbox's poison queue, by how it got there (the alerting metric)."""
    _counter(INBOX_POISONED, "1", "Inbox items poisoned").add(1, {"cause": cause})


def log_extra(
    *, event_id: str | None = None, chain_id: str | None = None, instance_id: str | None = None
) -> dict[str, str]:
    """``extra=`` for a log call carrying the correlation ids (only those given); exported as custom dimensions."""
    values = {"event_id": event_id, "chain_id": chain_id, "instance_id": instance_id}
    return {key: value for key, value in values.items() if value}


def secret_values(settings: Settings) -> list[str]:
    """The values of every configured ``SecretStr`` setting (what the redaction filter must never let through)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
    return found


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values and anything shaped like a signature, bearer token or key in ``text``."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that masks secrets in the message, its arguments and string ``extra`` fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        cleaned = redact(message, self.secrets)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS or not isinstance(value, str):
                continue
            setattr(record, key, redact(value, self.secrets))
        return True


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message"}


def install_redaction(secrets: Iterable[str] = (), loggers: Mapping[str, logging.Logger] | None = None) -> None:
    """Attach (or refresh) one ``RedactingFilter`` on the root logger's handlers and the root logger itself."""
    targets = list((loggers or {"": logging.getLogger()}).values())
    values = list(secrets)
    for target in targets:
        for owner in [target, *target.handlers]:
            existing = next((f for f in owner.filters if isinstance(f, RedactingFilter)), None)
            if existing is None:
                owner.addFilter(RedactingFilter(values))
            else:
                existing.secrets = sorted(set(existing.secrets) | set(values))


def reset_for_tests() -> None:
    """Forget cached instruments and the configured flag (tests only)."""
    global _configured
    with _lock:
        _configured = False
        _instruments.clear()
