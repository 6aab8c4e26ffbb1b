"""Retries for orchestrations, built from durable timers.

Python's ``RetryOptions`` are fixed-interval only and cannot honour a server's Retry-After, so a failed
activity is retried here: exponential backoff with deterministic jitter (seeded by instance and step, so
replay computes the same wait), never shorter than the Retry-After the failure carries
(``shared.errors.retry_after_in``). Deterministic: no clock but the context's, no random.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from orchestrators.context import OrchestrationContext
from shared.errors import retry_after_in
from shared.work.policy import RetryPolicy, retry_delay_seconds

logger = logging.getLogger(__name__)

#: Writes to GitHub, Graph and Service Bus: 5 attempts, 5 s doubling, at most 5 min apart.
WRITE_RETRY = RetryPolicy(max_attempts=5, base=5.0, cap=300.0)


def call_with_backoff(context: OrchestrationContext, name: str, payload: Any, *, seed: str,
                      policy: RetryPolicy = WRITE_RETRY) -> Generator[Any, Any, Any]:
    """Call an activity; on failure wait (durable timer: backoff, at least Retry-After) and try again.

    The activity receives ``attempt`` (1-based) and ``run`` (unique per orchestration execution: a restarted
    instance gets a new one) in its payload when the payload is a dict, so an effect can tell a retry or a
    restart (which may take over an unfinished write) from a concurrent duplicate of the same attempt.
    """
    attempt = 1
    run = str(context.new_uuid())
    while True:
        try:
            body = {**payload, "attempt": attempt, "run": run} if isinstance(payload, dict) else payload
            return (yield context.call_activity(name, body))
        except Exception as exc:
            if attempt >= policy.max_attempts:
                raise
            delay = retry_delay_seconds(policy, attempt, seed=seed, retry_after=retry_after_in(str(exc)))
            if not context.is_replaying:
                logger.warning("%s attempt %d failed (%s); retrying in %.1f s [instance=%s]", name, attempt,
                               str(exc)[:200], delay, context.instance_id)
            yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delay))
            attempt += 1
