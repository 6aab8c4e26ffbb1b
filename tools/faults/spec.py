"""The ``"faults"`` of an arena scenario (or a test): what to break in a simulated world, and ``install``.

::

    "faults": {
      "store": {"fraction": 0.3, "kinds": ["429", "503", "timeout"], "seed": 14,
                "outages": [{"at": 60, "seconds": 600}]},
      "durable": {"outages": [{"at": 60, "seconds": 120}]},
      "github": [{"mode": "5xx", "status": 502, "times": 3},
                 {"mode": "secondary", "retry_after": 60, "times": 2},   # null: no Retry-After header
                 {"mode": "after_write", "times": 1},                      # stored, then 502
                 {"mode": "late_commit", "delay_seconds": 15, "times": 1}]}

``at`` is seconds after the world's start (the arena's timeline). GitHub faults apply to
``method`` + ``path`` (default: POST of an issue comment). The store faults wrap the world's lineage store
(:class:`tools.faults.store.FaultyStore`, under ``ResilientStore`` as in production) for everything Reynolds
does — decisions, effects, the shared pacer — while ``world.store`` stays the unwrapped store for inspection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.platforms.github.pacer import GitHubPacer, set_pacer
from shared.store.resilient import ResilientStore
from tools.faults.store import FaultyStore, Outage

if TYPE_CHECKING:
    from tools.world import World

COMMENTS = r"/issues/\d+/comments$"


class OutageSpec(BaseModel):
    """A window in which every call fails."""

    model_config = ConfigDict(extra="forbid")

    at: float = Field(ge=0)
    seconds: float = Field(gt=0)


class StoreFaults(BaseModel):
    """Faults of the lineage store (Cosmos DB)."""

    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(0.0, ge=0, le=1)
    kinds: list[Literal["429", "503", "timeout"]] = ["429", "503", "timeout"]  # noqa: RUF012 - pydantic copies it
    seed: int = 14
    outages: list[OutageSpec] = Field(default_factory=list)


class DurableFaults(BaseModel):
    """Outages of the Durable client (the task hub unreachable from the doors and the inbox)."""

    model_config = ConfigDict(extra="forbid")

    outages: list[OutageSpec] = Field(default_factory=list)


class GitHubFault(BaseModel):
    """One fake-GitHub fault mode."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["5xx", "secondary", "primary", "after_write", "late_commit"]
    method: str = "POST"
    path: str = COMMENTS
    status: int | None = None
    retry_after: int | None = None
    times: int = Field(1, ge=1, le=10_000)
    delay_seconds: float = Field(15.0, ge=0)


class FaultSpec(BaseModel):
    """Everything a scenario breaks."""

    model_config = ConfigDict(extra="forbid")

    store: StoreFaults | None = None
    durable: DurableFaults | None = None
    github: list[GitHubFault] = Field(default_factory=list)


@dataclass
class Installed:
    """What ``install`` put in place (counters for reports)."""

    store: FaultyStore | None
    durable_failures: list[int]


def _outages(start: datetime, specs: list[OutageSpec]) -> list[Outage]:
    return [Outage(start + timedelta(seconds=o.at), o.seconds) for o in specs]


def install(world: World, spec: FaultSpec, *, start: datetime | None = None) -> Installed:
    """Break ``world`` as ``spec`` says (from now on); ``start`` anchors ``at`` (default: the world's start)."""
    from tools.world import START

    origin = start or START
    faulty = None
    if spec.store is not None:
        faulty = FaultyStore(world.store, world.clock, fraction=spec.store.fraction, kinds=tuple(spec.store.kinds),
                             outages=_outages(origin, spec.store.outages), seed=spec.store.seed)
        # As in production (``shared.services.build_services``): transient failures retried a few times.
        resilient = ResilientStore(faulty, sleep=lambda _seconds: None)
        world.services.store = resilient
        world.services._lineage = None  # rebuilt over the faulty store on next use
        clock = world.clock
        set_pacer(GitHubPacer(clock=lambda: clock().timestamp(), sleep=clock.advance, store=resilient))
    failures = [0]
    if spec.durable is not None and spec.durable.outages:
        windows = _outages(origin, spec.durable.outages)
        for name in ("start_new", "get_status", "raise_event"):
            setattr(world.client, name, _down_during(getattr(world.client, name), windows, world.clock, failures))
    for fault in spec.github:
        _github_fault(world, fault)
    return Installed(faulty, failures)


def _down_during(call: Callable[..., Any], windows: list[Outage], clock: Callable[[], datetime],
                 failures: list[int]) -> Callable[..., Any]:
    @functools.wraps(call)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(w.covers(clock()) for w in windows):
            failures[0] += 1
            raise ConnectionError("Durable Functions HTTP API: 503 Service Unavailable (injected outage)")
        return await call(*args, **kwargs)

    return wrapper


def _github_fault(world: World, fault: GitHubFault) -> None:
    github = world.github
    if fault.mode == "5xx":
        github.fail_next(fault.method, fault.path, fault.status or 502, times=fault.times)
    elif fault.mode == "secondary":
        github.secondary_rate_limit(fault.method, fault.path, retry_after=fault.retry_after,
                                    status=fault.status or 403, times=fault.times)
    elif fault.mode == "primary":
        reset = int(world.clock().timestamp()) + (fault.retry_after or 600)
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
                   "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core"}
        github.fail_next(fault.method, fault.path, fault.status or 403,
                         {"message": "API rate limit exceeded for installation.",
                          "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                         headers, times=fault.times)
    elif fault.mode == "after_write":
        github.fail_after_write(fault.method, fault.path, fault.status or 502, times=fault.times)
    else:
        github.commit_late(fault.method, fault.path, fault.delay_seconds, fault.status or 504, times=fault.times)
