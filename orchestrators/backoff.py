"""Retries for orchestrations, built from durable timers.

Python's ``RetryOptions`` are fixed-interval only and cannot honour a server's Retry-After, so a failed
activity is retried here: exponential backoff with deterministic jitter (seeded by instance and step, so
replay computes the same wait), never shorter than the Retry-After the failure carries
(``shared.errors.retry_after_in``). Deterministic: no clock but the context's, no random.

An accepted person's answer is never given up after a fixed number of attempts: ``ANSWER_RETRY`` keeps
retrying until at least ``keep_trying_seconds`` (26 h) of orchestration time have passed since the first
attempt, so a GitHub secondary limit of 20 minutes, a store outage of hours or a Retry-After of an hour all
cost delay, not the answer. Each wait is one durable timer (at most 30 min apart once backed off), so a day of
retries is about 60 attempts in the history, well inside what replay handles.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from orchestrators.context import OrchestrationContext
from shared.errors import retry_after_in
from shared.work.policy import RetryPolicy, retry_delay_seconds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteRetry:
    """Backoff shape plus how long to keep trying: at least ``policy.max_attempts`` attempts, and more until
    ``keep_trying_seconds`` have passed since the first one (orchestration time)."""

    policy: RetryPolicy
    keep_trying_seconds: float = 0.0


#: Writes that answer a person (GitHub comments, Teams messages, Service Bus replies): 5 s doubling to 30 min,
#: for at least 26 h (GitHub keeps a delivery redeliverable for 3 days; a day of retries covers any documented
#: rate-limit wait and a long store outage).
ANSWER_RETRY = WriteRetry(RetryPolicy(max_attempts=5, base=5.0, cap=1800.0), keep_trying_seconds=26 * 3600.0)
#: Everything else (maintenance, ingest): 5 attempts, 5 s doubling, at most 5 min apart; the default.
WRITE_RETRY = WriteRetry(RetryPolicy(max_attempts=5, base=5.0, cap=300.0))


def call_with_backoff(context: OrchestrationContext, name: str, payload: Any, *, seed: str,
                      policy: WriteRetry | RetryPolicy = WRITE_RETRY) -> Generator[Any, Any, Any]:
    """Call an activity; on failure wait (durable timer: backoff, at least Retry-After) and try again.

    Gives up (re-raises) only when both ``max_attempts`` attempts were made and ``keep_trying_seconds`` have
    passed since the first attempt. The activity receives ``attempt`` (1-based) and ``run`` (unique per
    orchestration execution: a restarted instance gets a new one) in its payload when the payload is a dict, so
    an effect can tell a retry or a restart (which may take over an unfinished write) from a concurrent
    duplicate of the same attempt.
    """
    retry = policy if isinstance(policy, WriteRetry) else WriteRetry(policy)
    attempt = 1
    run = str(context.new_uuid())
    first = context.current_utc_datetime
    while True:
        try:
            body = {**payload, "attempt": attempt, "run": run} if isinstance(payload, dict) else payload
            return (yield context.call_activity(name, body))
        except Exception as exc:
            elapsed = (context.current_utc_datetime - first).total_seconds()
            if attempt >= retry.policy.max_attempts and elapsed >= retry.keep_trying_seconds:
                raise
            delay = retry_delay_seconds(retry.policy, attempt, seed=seed, retry_after=retry_after_in(str(exc)))
            if not context.is_replaying:
                logger.warning("%s attempt %d failed (%s); retrying in %.1f s [instance=%s]", name, attempt,
                               str(exc)[:200], delay, context.instance_id)
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delay))
            attempt += 1
