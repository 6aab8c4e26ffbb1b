"""The plan cache: a successful plan reused for the same task, with 0 planner tokens, visibly.

The key is exact: SHA-256 over

* the **normalised task**: type, description (whitespace collapsed, case folded: "Fix the  build" and "fix the
  build" are one task; any other change of words is another), components (sorted), priority;
* the **repository** the task is about (``TaskSpec.repo``, else the tracking issue's repository);
* the **planner id**: ``offline`` or ``azure-openai:<deployment>``;
* the **prompt version**: ``shared.ai.planner`` has no version constant, so the version is derived from the
  text itself, the first 12 hex of SHA-256 of ``PLANNER_SYSTEM_PROMPT``: any edit of the prompt is a new version,
  with nothing to remember to bump;
* the **specialist-profile versions**: likewise derived from each ``shared.ai.specialists`` profile's system
  prompt and tool schemas (``get_profile``), for every specialist.

Document ``plan:<key hex>`` (own partition) holds the plan, where it came from (``from_run``: the run whose plan
it is, shown as "plan reused from …") and a ``ttl`` of ``PLAN_CACHE_TTL_HOURS`` (``shared.settings``; 0 turns the
cache off): the store expires it. Only a run that **succeeded** fills it (``store_plan`` refuses anything else),
so a plan that led to a failure is planned afresh next time. The write is create-if-absent: two runs of one task
finishing together keep the first plan.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.errors import Conflict, NotFound
from shared.store.base import DocumentStore, safe_id
from shared.work.tasks import Plan, Specialist, TaskSpec

_SPACE = re.compile(r"\s+")


@cache
def prompt_version() -> str:
    """The planner prompt's version: a digest of its text."""
    from shared.ai.planner import PLANNER_SYSTEM_PROMPT

    return hashlib.sha256(PLANNER_SYSTEM_PROMPT.encode()).hexdigest()[:12]


@cache
def profile_versions() -> dict[str, str]:
    """Every specialist profile's version: a digest of its system prompt and tool schemas."""
    from shared.ai.specialists import get_profile

    versions = {}
    for specialist in Specialist:
        profile = get_profile(specialist)
        basis = json.dumps([profile.system_prompt, profile.tool_schemas()], sort_keys=True)
        versions[specialist.value] = hashlib.sha256(basis.encode()).hexdigest()[:12]
    return versions


def normalised_task(task: TaskSpec) -> str:
    """The task as the key sees it."""
    description = _SPACE.sub(" ", task.description).strip().casefold()
    components = sorted(_SPACE.sub(" ", c).strip().casefold() for c in task.components)
    return json.dumps({"type": task.type.casefold(), "description": description, "components": components,
                       "priority": task.priority}, sort_keys=True)


@dataclass(frozen=True)
class CacheKey:
    """The parts of a plan's key and its digest."""

    task: str
    repo: str
    planner: str
    prompt_version: str
    profile_versions: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of every part."""
        basis = json.dumps([self.task, self.repo, self.planner, self.prompt_version, list(self.profile_versions)])
        return hashlib.sha256(basis.encode()).hexdigest()


def cache_key(task: TaskSpec, *, repo: str | None, planner: str, prompt: str | None = None,
              profiles: dict[str, str] | None = None) -> CacheKey:
    """The key of ``task`` planned by ``planner`` for ``repo``; ``prompt``/``profiles`` default to the versions
    derived from the code (tests pass others to see a version change make a new key)."""
    versions = profile_versions() if profiles is None else profiles
    return CacheKey(normalised_task(task), (task.repo or repo or "").lower(), planner,
                    prompt_version() if prompt is None else prompt, tuple(sorted(versions.items())))


def _doc_id(key: CacheKey) -> str:
    return safe_id(f"plan:{key.digest}")


@dataclass(frozen=True)
class CachedPlan:
    """A reused plan and the run it came from."""

    plan: Plan
    from_run: str
    cached_at: str

    @property
    def notice(self) -> str:
        """What the status comment says."""
        return f"plan reused from {self.from_run} (cached {self.cached_at}, 0 planner tokens)"


def lookup(store: DocumentStore, key: CacheKey, *, ttl_hours: int) -> CachedPlan | None:
    """The cached plan for ``key``, or None (also when the cache is off, ``ttl_hours`` 0)."""
    if ttl_hours <= 0:
        return None
    doc_id = _doc_id(key)
    try:
        doc = store.read(doc_id, doc_id)
    except NotFound:
        return None
    if doc.get("key") != key.digest:
        return None
    return CachedPlan(Plan.model_validate(doc["plan"]), str(doc["from_run"]), str(doc["cached_at"]))


def store_plan(store: DocumentStore, key: CacheKey, plan: Plan, *, run_id: str, succeeded: bool,
               ttl_hours: int, now: str) -> bool:
    """Cache ``plan`` after its run ``run_id`` ended; only when it ``succeeded`` and the cache is on.
    True when this call stored it (False: off, failed, or an earlier run's plan is already there)."""
    if ttl_hours <= 0 or not succeeded:
        return False
    doc_id = _doc_id(key)
    doc: dict[str, Any] = {"id": doc_id, "pk": doc_id, "kind": "plan-cache", "key": key.digest,
                           "plan": plan.model_dump(mode="json"), "from_run": run_id, "cached_at": now,
                           "repo": key.repo, "planner": key.planner, "ttl": ttl_hours * 3600}
    try:
        store.create(doc)
    except Conflict:
        return False
    return True
