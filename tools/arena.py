"""``python -m tools.arena [--store memory|cosmos] SCENARIO.json...``: the loop arena.

Real Reynolds code (the registered webhook function, the loop guard, the orchestration through the real
durable replay, the activities, githubkit against the fake GitHub) runs with the "reply to every issue and
comment" routing profile, the worst case for loops. The fake GitHub turns every write, Reynolds' included,
into a signed webhook delivery as GitHub does, and scripted actors answer writes, all on a simulated clock.

Scenario format (stable; scenario files written elsewhere use it)::

    {"name": "…", "expect": "loop" | "legit",
     "max_reynolds_effects": 3, "expected_reynolds_effects": 4, "until_seconds": 86400, "max_events": 500,
     "start": [{"at": 0, "actor": {"login": "alice", "type": "User"}, "redeliver": 1, "action": ACTION}],
     "actors": [{"actor": {...}, "on": {"platform": "github", "kind": "comment" | "issue",
                                        "by": "reynolds" | "others" | "any" | "<login>"},
                 "do": ACTION, "delay_seconds": 5, "max_actions": 1000}]}
    ACTION = {"platform": "github", "kind": "comment" | "issue", "repo": "octo/app", "number": 7 | "same",
              "count": 1, "body": "text with {n} {text} {quote}" | ["first", "second", …]}

One JSON line per scenario on stdout; exit 1 when any scenario fails, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.marker import strip_markers
from tests.fakes.github import FakeGitHubError, WriteEvent
from tools.world import REYNOLDS_LOGIN, START, World, build_world

WEBHOOK_LATENCY_SECONDS = 1.0


class ActorSpec(BaseModel):
    """Who acts: a GitHub login and account type."""

    login: str = Field(min_length=1)
    type: Literal["User", "Bot"] = "User"


class Action(BaseModel):
    """What an actor does."""

    model_config = ConfigDict(extra="allow")

    platform: Literal["github"] = "github"
    kind: Literal["comment", "issue"]
    repo: str = "octo/app"
    number: int | Literal["same"] | None = None
    count: int = Field(1, ge=1, le=100)
    body: str | list[str] = ""


class Trigger(BaseModel):
    """Which writes an actor answers."""

    platform: Literal["github"] = "github"
    kind: Literal["comment", "issue"]
    by: str = "any"


class StartAction(BaseModel):
    """An action that opens the scenario."""

    at: float = Field(0, ge=0)
    actor: ActorSpec
    redeliver: int = Field(1, ge=1, le=1000)
    action: Action


class ScriptedActor(BaseModel):
    """An automation (or a person) that answers writes."""

    actor: ActorSpec
    on: Trigger
    do: Action
    delay_seconds: float = Field(5, ge=0)
    max_actions: int = Field(1000, ge=0)


class Scenario(BaseModel):
    """A loop-arena scenario (see the module docstring)."""

    name: str
    expect: Literal["loop", "legit"]
    max_reynolds_effects: int | None = Field(None, ge=0)
    expected_reynolds_effects: int | None = Field(None, ge=0)
    until_seconds: float = Field(86400, gt=0)
    max_events: int = Field(500, ge=1)
    start: list[StartAction] = Field(min_length=1)
    actors: list[ScriptedActor] = Field(default_factory=list)


@dataclass(order=True)
class _Item:
    at: float
    seq: int
    kind: str = field(compare=False)
    data: Any = field(compare=False)


@dataclass
class _Run:
    scenario: Scenario
    world: World
    queue: list[_Item] = field(default_factory=list)
    seq: itertools.count = field(default_factory=itertools.count)
    counters: dict[int, int] = field(default_factory=dict)
    verdicts: Counter[str] = field(default_factory=Counter)
    events: int = 0
    reynolds_effects: int = 0
    notes: int = 0
    blocked_human: int = 0
    now: float = 0.0
    pending_redeliver: int = 1

    def push(self, at: float, kind: str, data: Any) -> None:
        heapq.heappush(self.queue, _Item(at, next(self.seq), kind, data))


def _render(template: str, n: int, trigger_text: str) -> str:
    visible = strip_markers(trigger_text)
    return template.replace("{n}", str(n)).replace("{text}", visible).replace("{quote}", trigger_text)


def _body_for(action: Action, n: int) -> str:
    if isinstance(action.body, list):
        return action.body[min(n, len(action.body)) - 1] if action.body else ""
    return action.body


def _matches(trigger: Trigger, write: WriteEvent, actor_login: str) -> bool:
    kind = "comment" if write.kind == "comment" else "issue" if write.kind == "issue" else None
    if kind != trigger.kind:
        return False
    author = write.actor.get("login")
    if author == actor_login and trigger.by != actor_login:
        return False  # an actor never answers itself unless told to
    if trigger.by == "any":
        return True
    if trigger.by == "reynolds":
        return author == REYNOLDS_LOGIN
    if trigger.by == "others":
        return author != REYNOLDS_LOGIN
    return author == trigger.by


def _perform(run: _Run, login: str, action: Action, n: int, trigger: WriteEvent | None) -> None:
    world = run.world
    trigger_text = ""
    if trigger is not None:
        trigger_text = str((trigger.resource or {}).get("body") or "")
        if trigger.kind == "issue":
            trigger_text = f"{trigger.issue.get('title', '')}\n\n{trigger_text}".strip()
    body = _render(_body_for(action, n), n, trigger_text)
    number = trigger.number if action.number == "same" and trigger is not None else action.number
    with contextlib.suppress(ValueError):
        world.github.add_repo(action.repo)
    try:
        if action.kind == "comment":
            if not isinstance(number, int):
                number = 1
            world.ensure_issue(action.repo, number)
            world.github.create_comment(action.repo, number, body or f"comment {n}", login)
        else:
            for i in range(action.count):
                fixed = action.number if isinstance(action.number, int) and i == 0 else None
                title = (body.splitlines()[0] if body else f"issue {n}.{i + 1}")[:200] or "issue"
                world.github.create_issue(action.repo, title, body, login, number=fixed)
    except (FakeGitHubError, ValueError, KeyError) as exc:
        print(f"  actor {login} could not act: {exc}", file=sys.stderr)


def _on_write(run: _Run, write: WriteEvent) -> None:
    """GitHub's side of a write: a webhook delivery, and the scripted actors that notice it."""
    event = run.world.github.webhook_for(write)
    if event is not None:
        name, payload = event
        times = run.pending_redeliver
        delivery = str(uuid.UUID(int=next(run.seq) + 1))
        for _ in range(times):
            run.push(run.now + WEBHOOK_LATENCY_SECONDS, "delivery", (name, payload, delivery))
    for index, scripted in enumerate(run.scenario.actors):
        if _matches(scripted.on, write, scripted.actor.login):
            run.push(run.now + scripted.delay_seconds, "act", (index, write))


async def run_scenario(scenario: Scenario, store: str) -> dict[str, Any]:
    """Play one scenario to quiet (or to its caps); its result line."""
    with build_world(store=store, profile="reply-all") as world:
        run = _Run(scenario=scenario, world=world)
        for spec in [s.actor for s in scenario.start] + [a.actor for a in scenario.actors]:
            with contextlib.suppress(ValueError):
                world.github.add_user(spec.login, type=spec.type)
        world.github.on_write.append(lambda w: _on_write(run, w))
        for opening in scenario.start:
            run.push(opening.at, "start", opening)
        stopped = False
        while True:
            if not run.queue:
                stopped = True
                break
            item = heapq.heappop(run.queue)
            if item.at > scenario.until_seconds or run.events >= scenario.max_events:
                break
            run.now = item.at
            world.clock.set(START + timedelta(seconds=item.at))
            if item.kind == "start":
                start: StartAction = item.data
                run.pending_redeliver = start.redeliver
                _perform(run, start.actor.login, start.action, 1, None)
                run.pending_redeliver = 1
            elif item.kind == "act":
                index, write = item.data
                scripted = scenario.actors[index]
                done = run.counters.get(index, 0)
                if done < scripted.max_actions:
                    run.counters[index] = done + 1
                    _perform(run, scripted.actor.login, scripted.do, done + 1, write)
            else:
                await _deliver(run, *item.data)
        return _result(run, stopped)


async def _deliver(run: _Run, name: str, payload: dict[str, Any], delivery: str) -> None:
    world = run.world
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"X-GitHub-Event": name, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": "auto",
               "Content-Type": "application/json"}
    before = len(world.reynolds_writes)
    status, answer = await world.post_github(headers, body)
    run.events += 1
    verdict = str(answer.get("verdict"))
    run.verdicts[verdict] += 1
    written = world.reynolds_writes[before:]
    notes = sum(1 for w in written if "Reynolds · paused" in str((w.resource or {}).get("body") or ""))
    run.notes += notes
    run.reynolds_effects += len(written) - notes
    sender = payload.get("sender") or {}
    if sender.get("type") == "User" and sender.get("login") != REYNOLDS_LOGIN:
        suppressed = False
        instance = answer.get("instance_id")
        if instance and verdict == "accepted":
            output = world.client.run_of(instance).output or {}
            suppressed = any(e.get("suppressed") for e in output.get("effects", []))
        if verdict in ("loop", "rejected") or suppressed or status >= 400:
            run.blocked_human += 1


def _result(run: _Run, stopped: bool) -> dict[str, Any]:
    s = run.scenario
    if s.expect == "loop":
        limit = s.max_reynolds_effects if s.max_reynolds_effects is not None else 3
        passed = stopped and run.reynolds_effects <= limit
    else:
        passed = run.blocked_human == 0 and (
            s.expected_reynolds_effects is None or run.reynolds_effects == s.expected_reynolds_effects)
    return {"name": s.name, "expect": s.expect, "reynolds_effects": run.reynolds_effects, "notes": run.notes,
            "events": run.events, "verdicts": dict(sorted(run.verdicts.items())), "stopped": stopped,
            "blocked_human_events": run.blocked_human, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.arena", description="Run loop-arena scenarios.")
    parser.add_argument("--store", choices=("memory", "cosmos"), default="memory")
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO.json")
    args = parser.parse_args(argv)
    scenarios = []
    for path in args.scenarios:
        try:
            scenarios.append(Scenario.model_validate_json(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            print(f"arena: {path}: cannot read ({exc})", file=sys.stderr)
            return 2
        except ValidationError as exc:
            print(f"arena: {path}: not a valid scenario:\n{exc}", file=sys.stderr)
            return 2
    failed = 0
    for scenario in scenarios:
        result = asyncio.run(run_scenario(scenario, args.store))
        failed += not result["passed"]
        print(f"{'PASS' if result['passed'] else 'FAIL'} {scenario.name}: {result['reynolds_effects']} effects, "
              f"{result['events']} events, stopped={result['stopped']}", file=sys.stderr)
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
