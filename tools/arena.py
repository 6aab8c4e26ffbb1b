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

Cross-platform scenarios add::

    ACTION = {"platform": "teams", "kind": "message", "channel": "<channel id>" | "same", "team": "arena-team",
              "body": …}   # a channel message by the actor; Reynolds sees it through a Graph change notification
    ACTION = {"platform": "servicebus", "kind": "message", "queue": "<name>", "count": 1, "body": …}
             # a CloudEvent (data.text = the body, actorkind from the actor's type), no lineage properties
    on = {"platform": "teams" | "servicebus", "kind": "message", "by": …, "channel": "<id>", "queue": "<name>"}

Loop guard v2 adds, all optional (older files run unchanged)::

    {"linked_scopes": "github:octo=teams:default=servicebus:default",   # LOOP_LINKED_SCOPES of the run
     "start": [{…, "repeat": 300, "interval_seconds": 10,     # the opening action 300 times, {n} = 1…300
                "actor": {"login": "person-{n}"}}],           # … by 300 different people
     "actors": [{…, "every": 3, "skip": 1,                    # act on matching writes 2, 5, 8, … only
                 "on": {…, "repo": "octo/app", "number": 7}}]} # notice writes on this repo / issue only
    ACTION = {…, "repo": "octo/r{n}", "team": "team-{n}", "channel": "c{n}",  # {n} (and {i}, 1…count) in places
              "number": "{n}",         # the n-th issue
              "actorkind": "human"}    # what a Service Bus producer claims to be (default: from the actor's type)
    {"humans_never_blocked": true}   # a loop scenario that also fails when any person goes unanswered
                                     # (people: the actors of "start" that are not scripted actors; the result
                                     # line then adds "blocked_people_events")

Loop guard v3 adds, all optional (older files run unchanged)::

    ACTION = {…, "created_at_offset_seconds": -1500}   # the event's own timestamp, 1500 s before its delivery
    ACTION = {"platform": "github", "kind": "reaction", "content": "+1" | "-1" | "laugh" | "confused" | "heart"
                                                                  | "hooray" | "rocket" | "eyes",
              "repo": …, "number": "same" | 7}        # on the triggering comment, else on the issue
    ACTION = {"platform": "teams", "kind": "reaction", "channel": "same" | "<id>", "content": "+1" | "like" | …}
                                                       # on the triggering message, else the channel's latest
    ACTION = {"platform": "github", "kind": "label", "label": "triaged-{n}", "repo": …, "number": "same" | 7}
    on = {"platform": "github" | "teams", "kind": "reaction" | "label", "by": …}   # actors may answer those too
    on = {…, "thread": "own"}   # only writes on threads (issue, channel, queue) the actor opened or wrote in

*The event's own timestamp.* ``created_at_offset_seconds`` (≤ 0, default 0) is when the event happened relative
to when it is delivered: the platform stamps what the actor writes that many seconds before the world's time
while the delivery happens now — GitHub's ``created_at``/``updated_at`` of the comment or issue, Teams'
``createdDateTime`` (and ``lastModifiedDateTime``), a Service Bus message's enqueued time and its CloudEvent
``time``. Reynolds' own writes are never shifted. A backlog is written as actions delivered in a burst, each with
its own (earlier) time; with ``faults``, an action scheduled while Reynolds is held by an outage is performed
when the arena gets to it (the world's clock has moved on), so the offset is what gives it back its time.

*Reactions and labels reach Reynolds only as the platforms deliver them* (each from the upstream docs):

- GitHub reaction: stored (``POST …/reactions``; it shows in the comment's or issue's ``reactions`` roll-up)
  and **never delivered**: GitHub has no webhook event for reactions (docs.github.com, "Webhook events and
  payloads"; community discussions #7168 and #20824 ask for one; octokit/webhooks has no reaction payload).
- GitHub label: ``issues`` ``labeled`` with ``label``, ``issue``, ``repository``, ``sender``, ``installation``
  (tests check the fake's payload against ``../shared/fixtures/github-webhooks/…/issues/labeled.payload.json``).
- Teams reaction: a ``chatMessageReaction`` (``reactionType``, ``createdDateTime``, ``user``) is added to the
  message and its ``lastModifiedDateTime`` moves; Graph reports that as an ``updated`` change of the message
  (learn.microsoft.com: chatMessageReaction; chatMessageHistoryItem ``reactionAdded``), sent only to
  subscriptions whose ``changeType`` includes ``updated``. Reynolds subscribes to ``created``: **nothing reaches
  it**. A bot installed in the conversation would get a ``messageReaction`` activity (``reactionsAdded``) from the
  Bot Connector; Reynolds hears Teams through an outgoing webhook (messages that mention it) and Graph, so none.
- Service Bus: a queue carries messages only; reactions and labels are refused there.

So a reactions-only bot cannot make Reynolds write: its reactions are evidence only where they are delivered.
When Reynolds subscribes to ``updated`` changes, the arena delivers Teams reactions as Graph would, with no change.

``"teams_door": "bot"`` delivers every Teams message not Reynolds' own to the bot's messaging endpoint
(``POST /api/messages``, a signed Bot Framework token, ``tools.simulate_bot``) instead of as a Graph change
notification (``"graph"``, the default); Reynolds answers through the Bot Connector either way.
``linked_scopes`` defaults to ``ARENA_LINKED_SCOPES`` (the ``octo`` organisation, the Teams tenant and the
Service Bus namespace bridge to each other, as a deployment with a GitHub↔Teams bridge would configure).
The result line adds ``chain_ids`` (the first 100 chains decided, first seen first), ``chains`` (how many
chains in all) and ``chain_id`` (the chain of the first ``loop`` verdict, or null).

Fault injection adds ``"faults"`` (see ``tools/faults/spec.py``): store faults and outages, Durable
outages and fake-GitHub fault modes; a GitHub delivery a door hands to the inbox is decided there and counted.

Reynolds reads ``SERVICEBUS_EVENTS_QUEUE`` (``reynolds-events``): messages sent there are delivered to its
trigger as real ``func.ServiceBusMessage`` objects; it answers on ``reynolds-out`` (or the message's
``ReplyTo``), where scripted actors see its messages. Reynolds' Teams messages come back to it as change
notifications like everyone's. ``{text}`` is the visible text of the triggering write, ``{quote}`` its raw
text with markers (Teams HTML, a Service Bus message's ``data.text``).

One JSON line per scenario on stdout; exit 1 when any scenario fails, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import html
import itertools
import json
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from azure.servicebus import ServiceBusMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.loop.lineage import instance_id_for
from shared.loop.marker import strip_markers
from shared.platforms.teams.notifications import message_event_id
from shared.platforms.teams.webhook import html_to_text
from shared.store.base import Query
from tools.fakes.github import FakeGitHubError, WriteEvent
from tools.fakes.github.writes_log import record_writes
from tools.faults.spec import FaultSpec
from tools.faults.spec import install as install_faults
from tools.local_settings import tool_settings
from tools.scripted_model import ItemInputError, finish_line, scripted_model, seed_item
from tools.whatif import journal_to
from tools.world import REYNOLDS_LOGIN, START, World, build_world

WEBHOOK_LATENCY_SECONDS = 1.0
#: The result line lists at most this many chain ids (``chains`` counts them all).
MAX_CHAIN_IDS = 100
ARENA_LINKED_SCOPES = "github:octo=teams:default=servicebus:default"


class ActorSpec(BaseModel):
    """Who acts: a GitHub login and account type."""

    login: str = Field(min_length=1)
    type: Literal["User", "Bot"] = "User"


Platform = Literal["github", "teams", "servicebus"]
#: What an actor can do on each platform. Service Bus has no reactions or labels: a message is all it carries.
_KINDS = {"github": ("comment", "issue", "reaction", "label"), "teams": ("message", "reaction"),
          "servicebus": ("message",)}
DEFAULT_TEAM = "arena-team"
#: GitHub's reaction contents (REST ``POST …/reactions``; anything else is a 422 there).
GITHUB_REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
#: A GitHub reaction name → the ``reactionType`` Teams stores on a ``chatMessageReaction`` (Teams' legacy names
#: ``like``/``heart``/``laugh``/``surprised``/``sad``/``angry`` where one fits, else the emoji itself, which Teams
#: accepts as a Unicode reaction). Any other content is passed through as Teams' own reaction type.
TEAMS_REACTIONS = {"+1": "like", "-1": "\U0001F44E", "laugh": "laugh", "confused": "surprised", "heart": "heart",
                   "hooray": "\U0001F389", "rocket": "\U0001F680", "eyes": "\U0001F440"}


def _check_kind(platform: str, kind: str) -> None:
    if kind not in _KINDS[platform]:
        raise ValueError(f"kind {kind!r} is not one of {_KINDS[platform]} on {platform}")


class Action(BaseModel):
    """What an actor does."""

    model_config = ConfigDict(extra="allow")

    platform: Platform = "github"
    kind: Literal["comment", "issue", "message", "reaction", "label"]
    repo: str = "octo/app"
    number: int | Literal["same", "{n}"] | None = None
    count: int = Field(1, ge=1, le=100)
    body: str | list[str] = ""
    channel: str | None = None
    team: str = DEFAULT_TEAM
    queue: str | None = None
    #: A Service Bus producer's claimed ``actorkind`` (default: ``bot`` for a Bot actor, else ``human``).
    actorkind: Literal["human", "bot"] | None = None
    #: The event's own timestamp minus its delivery time (issue/comment ``created_at``, Teams
    #: ``createdDateTime``, Service Bus enqueued time and CloudEvent ``time``): negative = written earlier than
    #: delivered (a backlog). Never positive: nothing is delivered before it is written.
    created_at_offset_seconds: float = Field(0, le=0, ge=-30 * 86400)
    #: A reaction's content (``kind: reaction``): GitHub's ``+1 -1 laugh confused heart hooray rocket eyes``;
    #: on Teams also any Teams reaction type (mapped as in ``TEAMS_REACTIONS``).
    content: str | None = None
    #: A label's name (``kind: label``); ``{n}`` is filled in.
    label: str | None = None

    @model_validator(mode="after")
    def _kind_fits_platform(self) -> Action:
        _check_kind(self.platform, self.kind)
        if self.platform == "teams" and not self.channel:
            raise ValueError("a teams action needs a channel (an id or \"same\")")
        if self.platform == "servicebus" and not self.queue:
            raise ValueError("a servicebus action needs a queue")
        if self.kind == "reaction":
            if not self.content:
                raise ValueError("a reaction needs a content (\"+1\", \"eyes\", …)")
            if self.platform == "github" and self.content not in GITHUB_REACTIONS:
                raise ValueError(f"GitHub reactions are {GITHUB_REACTIONS}, not {self.content!r}")
        if self.kind == "label" and not (self.label or (isinstance(self.body, str) and self.body)):
            raise ValueError("a label action needs a label name (\"label\")")
        return self


class Trigger(BaseModel):
    """Which writes an actor answers."""

    platform: Platform = "github"
    kind: Literal["comment", "issue", "message", "reaction", "label"]
    by: str = "any"
    channel: str | None = None
    queue: str | None = None
    repo: str | None = None
    number: int | None = None
    #: ``own``: only writes on threads (an issue, a channel, a queue) the actor itself opened or wrote in.
    thread: Literal["any", "own"] = "any"

    @model_validator(mode="after")
    def _kind_fits_platform(self) -> Trigger:
        _check_kind(self.platform, self.kind)
        return self


class StartAction(BaseModel):
    """An action that opens the scenario."""

    at: float = Field(0, ge=0)
    actor: ActorSpec
    redeliver: int = Field(1, ge=1, le=1000)
    action: Action
    #: Perform the action this many times, ``interval_seconds`` apart (``{n}`` counts them).
    repeat: int = Field(1, ge=1, le=5000)
    interval_seconds: float = Field(0, ge=0)


class ScriptedActor(BaseModel):
    """An automation (or a person) that answers writes."""

    actor: ActorSpec
    on: Trigger
    do: Action
    delay_seconds: float = Field(5, ge=0)
    max_actions: int = Field(1000, ge=0)
    #: Act on every ``every``-th matching write only, after letting the first ``skip`` pass (1, 1+k, 1+2k, …).
    every: int = Field(1, ge=1)
    skip: int = Field(0, ge=0)


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
    linked_scopes: str = ARENA_LINKED_SCOPES
    #: A loop scenario that also requires every person in it answered (background load of human threads).
    humans_never_blocked: bool = False

    #: What to break: store faults and outages, Durable outages, fake-GitHub fault modes.
    faults: FaultSpec | None = None
    #: Issue 21/23's seeds: the fake model's replies in order, repository files, pull requests and workflow runs.
    model: list[dict[str, Any]] | None = None
    repo_files: dict[str, dict[str, str]] | None = None
    pulls: dict[str, list[dict[str, Any]]] | None = None
    runs: dict[str, list[dict[str, Any]]] | None = None
    #: How Teams messages reach Reynolds: Graph change notifications (as today) or the bot's messaging endpoint.
    teams_door: Literal["graph", "bot"] = "graph"


@dataclass(frozen=True)
class _Write:
    """A write on any platform, as scripted actors see it."""

    platform: str
    kind: str | None
    author: str | None
    text: str  # visible text
    quote: str  # raw text, markers included
    number: int | None = None
    team: str | None = None
    channel: str | None = None
    queue: str | None = None
    repo: str | None = None
    #: The written thing's id (a comment id, an issue number's issue, a Teams message id), for reactions to it.
    resource_id: str | None = None
    #: On GitHub: what a reaction or the written resource is on (``issue`` | ``comment``).
    subject: str | None = None


_GITHUB_KINDS = {"comment": "comment", "issue": "issue", "reaction": "reaction", "label": "label"}


def _github_write(write: WriteEvent) -> _Write:
    kind = _GITHUB_KINDS.get(write.kind)
    resource = write.resource or {}
    text = str(resource.get("body") or "")
    if write.kind == "issue":
        text = f"{write.issue.get('title', '')}\n\n{text}".strip()
    elif write.kind == "reaction":
        text = str(resource.get("content") or "")
    elif write.kind == "label":
        text = str((write.label or {}).get("name") or "")
    subject = write.subject or ("comment" if write.kind == "comment" else "issue")
    return _Write("github", kind, write.actor.get("login"), strip_markers(text), text, number=write.number,
                  repo=write.repo, resource_id=str(write.resource_id), subject=subject)


def _teams_write(world: World, message: dict[str, Any]) -> _Write:
    sender = message.get("from") or {}
    identity = sender.get("user") or sender.get("application") or {}
    author = REYNOLDS_LOGIN if world.graph.is_poster(message) else identity.get("displayName")
    content = str((message.get("body") or {}).get("content") or "")
    ident = message.get("channelIdentity") or {}
    return _Write("teams", "message", author, strip_markers(html_to_text(content)), content,
                  team=ident.get("teamId"), channel=ident.get("channelId") or message.get("chatId"),
                  resource_id=str(message.get("id")))


def _servicebus_write(queue: str, message: ServiceBusMessage, by_reynolds: bool) -> _Write:
    try:
        event = json.loads(b"".join(message.body))
    except ValueError:
        event = {}
    data = event.get("data") if isinstance(event, dict) else None
    raw = str((data or {}).get("text") or "") if isinstance(data, dict) else ""
    author = REYNOLDS_LOGIN if by_reynolds else (event.get("actorlogin") if isinstance(event, dict) else None)
    return _Write("servicebus", "message", author, strip_markers(raw), raw, queue=queue)


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
    noticed: dict[int, int] = field(default_factory=dict)
    #: Every chain decided (first seen first) and the chain of the first ``loop`` verdict.
    chains: dict[str, None] = field(default_factory=dict)
    loop_chain: str | None = None
    verdicts: Counter[str] = field(default_factory=Counter)
    events: int = 0
    reynolds_effects: int = 0
    notes: int = 0
    blocked_human: int = 0
    #: Whose events were held (``blocked_human`` by actor login), to tell people from scripted bots on user accounts.
    held: Counter[str] = field(default_factory=Counter)
    #: Reynolds failing (a 5xx, an orchestration that failed): never how a scenario may pass.
    faults: int = 0
    now: float = 0.0
    pending_redeliver: int = 1
    #: Everything Reynolds wrote on any platform (GitHub writes, Teams messages, Service Bus messages).
    reynolds_out: list[str] = field(default_factory=list)
    #: Service Bus messages enqueued before their delivery (``created_at_offset_seconds``): message id → time.
    enqueued: dict[str, datetime] = field(default_factory=dict)
    #: The threads each actor opened or wrote in (for ``"thread": "own"``).
    threads: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)

    def push(self, at: float, kind: str, data: Any) -> None:
        heapq.heappush(self.queue, _Item(at, next(self.seq), kind, data))

    def current(self) -> float:
        """Seconds since the start: the arena's time, or the world's when retries on durable timers moved the
        world's clock past it (fault scenarios), so a reaction to a late write comes after that write."""
        if self.scenario.faults is None:
            return self.now
        return max(self.now, (self.world.clock() - START).total_seconds())


def _render(template: str, n: int, trigger_text: str, visible: str | None = None) -> str:
    visible = strip_markers(trigger_text) if visible is None else visible
    return template.replace("{n}", str(n)).replace("{text}", visible).replace("{quote}", trigger_text)


def _body_for(action: Action, n: int) -> str:
    if isinstance(action.body, list):
        return action.body[min(n, len(action.body)) - 1] if action.body else ""
    return action.body


def _thread(write: _Write) -> tuple[Any, ...]:
    """The thread a write is on: an issue, a channel, a queue."""
    if write.platform == "github":
        return ("github", write.repo, write.number)
    if write.platform == "teams":
        return ("teams", write.team, write.channel)
    return ("servicebus", write.queue)


def _matches(trigger: Trigger, write: _Write, actor_login: str,
             threads: dict[str, set[tuple[Any, ...]]] | None = None) -> bool:
    if write.platform != trigger.platform or write.kind != trigger.kind:
        return False
    if trigger.thread == "own" and _thread(write) not in (threads or {}).get(actor_login, set()):
        return False
    if trigger.channel is not None and write.channel != trigger.channel:
        return False
    if trigger.queue is not None and write.queue != trigger.queue:
        return False
    if trigger.repo is not None and write.repo != trigger.repo:
        return False
    if trigger.number is not None and write.number != trigger.number:
        return False
    author = write.author
    if author == actor_login and trigger.by != actor_login:
        return False  # an actor never answers itself unless told to
    if trigger.by == "any":
        return True
    if trigger.by == "reynolds":
        return author == REYNOLDS_LOGIN
    if trigger.by == "others":
        return author != REYNOLDS_LOGIN
    return author == trigger.by


def _perform(run: _Run, actor: ActorSpec, action: Action, n: int, trigger: _Write | None) -> None:
    with _stamped(run.world, action.created_at_offset_seconds):
        _act(run, actor, action, n, trigger)


@contextlib.contextmanager
def _stamped(world: World, offset: float) -> Iterator[None]:
    """While an actor acts, the platforms stamp what it writes ``offset`` seconds before the world's time (its
    ``created_at`` / ``createdDateTime``); the delivery still happens now. Nothing else is moved."""
    if not offset:
        yield
        return
    saved = world.github.clock, world.graph.clock

    def stamped() -> datetime:
        return world.clock() + timedelta(seconds=offset)

    world.github.clock = world.graph.clock = stamped
    try:
        yield
    finally:
        world.github.clock, world.graph.clock = saved


def _act(run: _Run, actor: ActorSpec, action: Action, n: int, trigger: _Write | None) -> None:
    login = actor.login
    world = run.world
    trigger_text = trigger.quote if trigger is not None else ""
    visible = trigger.text if trigger is not None else None
    body = _render(_body_for(action, n), n, trigger_text, visible)
    if action.platform == "teams":
        placed = action.model_copy(update={"team": _place(action.team, n), "channel": _place(action.channel, n)})
        if action.kind == "reaction":
            _react_teams(run, actor, placed, trigger)
        else:
            _post_teams(run, actor, placed, body or f"message {n}", trigger)
        return
    if action.platform == "servicebus":
        for i in range(action.count):
            text = _render(_body_for(action, n), i + 1 if action.count > 1 else n, trigger_text, visible)
            _send_servicebus(run, actor, action.queue or "", text or f"message {n}", action.actorkind,
                             action.created_at_offset_seconds)
        return
    number = trigger.number if action.number == "same" and trigger is not None else action.number
    if number == "{n}":
        number = n
    try:
        if action.kind in ("comment", "reaction", "label"):
            same = action.repo == "same" and trigger is not None and trigger.repo
            repo = trigger.repo if same and trigger is not None and trigger.repo else _place(action.repo, n)
            _add_repo(world, repo)
            if not isinstance(number, int):  # a comment defaults to issue 1 (as ever); a reaction or label to
                reacting = action.kind != "comment" and trigger is not None and trigger.number  # what triggered it
                number = trigger.number if reacting and trigger is not None and trigger.number else 1
            world.ensure_issue(repo, number)
            if action.kind == "comment":
                world.github.create_comment(repo, number, body or f"comment {n}", login)
            elif action.kind == "label":
                name = _render(action.label or body, n, trigger_text, visible)[:50]
                world.github.add_labels(repo, number, [name], login)
            elif (trigger is not None and trigger.platform == "github" and trigger.kind == "comment"
                  and trigger.resource_id and action.number in (None, "same") and trigger.repo == repo):
                # a reaction to the comment that triggered it (GitHub sends no webhook for it)
                world.github.react(repo, action.content or "", login, comment_id=int(trigger.resource_id))
            else:
                world.github.react(repo, action.content or "", login, number=number)
        else:
            for i in range(action.count):
                repo = _place(action.repo, n, i + 1)
                _add_repo(world, repo)
                wanted = n if action.number == "{n}" else action.number
                fixed = wanted if isinstance(wanted, int) and i == 0 else None
                title = (body.splitlines()[0] if body else f"issue {n}.{i + 1}")[:200] or "issue"
                world.github.create_issue(repo, title, body, login, number=fixed)
    except (FakeGitHubError, ValueError, KeyError) as exc:
        print(f"  actor {login} could not act: {exc}", file=sys.stderr)


def _place(template: str | None, n: int, i: int = 1) -> str:
    """A repository, team or channel name with ``{n}`` (the action's count) and ``{i}`` (1…count) filled in."""
    return (template or "").replace("{n}", str(n)).replace("{i}", str(i))


def _add_repo(world: World, repo: str) -> None:
    with contextlib.suppress(ValueError):
        world.github.add_repo(repo)


def _post_teams(run: _Run, actor: ActorSpec, action: Action, body: str, trigger: _Write | None) -> None:
    """A channel message by ``actor`` (a user, or a bot application) as Teams stores it."""
    channel, team = action.channel, action.team
    if channel == "same":
        channel = trigger.channel if trigger is not None and trigger.platform == "teams" else None
        team = trigger.team or team if trigger is not None and trigger.platform == "teams" else team
    if not channel:
        print(f"  actor {actor.login} could not act: no channel to post in", file=sys.stderr)
        return
    if actor.type == "Bot":
        sender = {"application": {"id": f"app-{actor.login}", "displayName": actor.login,
                                  "applicationIdentityType": "bot"}}
    else:
        sender = {"user": {"id": f"aad-{actor.login}", "displayName": actor.login, "userIdentityType": "aadUser"}}
    run.world.graph.post_as(sender, f"<p>{html.escape(body, quote=False)}</p>", team=team, channel=channel)


def _react_teams(run: _Run, actor: ActorSpec, action: Action, trigger: _Write | None) -> None:
    """``actor`` reacts to a channel message: the triggering one (``channel: "same"``), else the latest message
    in ``channel``. Teams stores a ``chatMessageReaction`` on the message and marks it modified; Graph reports
    that as an ``updated`` change of the message, delivered only to subscriptions whose ``changeType`` includes
    ``updated`` (Reynolds subscribes to ``created``: then nothing reaches it). See the module docstring."""
    world = run.world
    graph = world.graph
    same = action.channel == "same" and trigger is not None and trigger.platform == "teams"
    team = (trigger.team or action.team) if same and trigger is not None else action.team
    channel = trigger.channel if same and trigger is not None else action.channel
    with graph._lock:  # the fake's store, as Teams would change it (the fake has no reaction API to call)
        stored = graph.messages.get(("channel", team or "", channel or ""), {})
        wanted = trigger.resource_id if same and trigger is not None else None
        message = stored.get(wanted) if wanted else (stored[max(stored, key=int)] if stored else None)
        if message is None:
            print(f"  actor {actor.login} could not react: no message in {team}/{channel}", file=sys.stderr)
            return
        when = _graph_time(graph.clock())
        user = {"id": f"aad-{actor.login}", "displayName": actor.login, "userIdentityType": "aadUser"}
        if actor.type == "Bot":
            user = {"id": f"app-{actor.login}", "displayName": actor.login, "applicationIdentityType": "bot"}
        content = action.content or ""
        message.setdefault("reactions", []).append(
            {"reactionType": TEAMS_REACTIONS.get(content, content), "createdDateTime": when,
             "user": {"application": None, "device": None,
                      ("application" if actor.type == "Bot" else "user"): user}})
        message["lastModifiedDateTime"] = when
    payload = graph.notifications_for(message, "updated")
    if payload["value"]:
        event_id = message_event_id(str(message["id"]), "updated", None)
        for _ in range(run.pending_redeliver):
            run.push(run.current() + WEBHOOK_LATENCY_SECONDS, "graph", (payload, event_id))
    _notice(run, _Write("teams", "reaction", actor.login, content, content, team=team, channel=channel,
                        resource_id=str(message["id"])))


def _graph_time(value: datetime) -> str:
    """Graph's timestamp format (UTC, milliseconds, ``Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _send_servicebus(run: _Run, actor: ActorSpec, queue: str, text: str, claimed: str | None = None,
                     offset: float = 0) -> None:
    """A producer's CloudEvent (text only: a producer that copies text copies no lineage property). With an
    offset the message was enqueued (and its CloudEvent ``time`` set) ``offset`` seconds before its delivery."""
    ident = str(uuid.UUID(int=next(run.seq) + 1))
    enqueued = run.world.clock() + timedelta(seconds=offset)
    if offset:
        run.enqueued[ident] = enqueued
    event = {"specversion": "1.0", "id": ident, "source": f"/arena/{actor.login}", "type": "com.arena.message",
             "time": enqueued.isoformat(), "datacontenttype": "application/json", "data": {"text": text},
             "actorlogin": actor.login,
             "actorkind": claimed or ("bot" if actor.type == "Bot" else "human")}
    message = ServiceBusMessage(json.dumps(event), message_id=ident, content_type="application/cloudevents+json")
    _on_servicebus(run, queue, message, by_reynolds=False)


def _notice(run: _Run, write: _Write) -> None:
    if write.author:
        run.threads.setdefault(write.author, set()).add(_thread(write))
    for index, scripted in enumerate(run.scenario.actors):
        if _matches(scripted.on, write, scripted.actor.login, run.threads):
            seen = run.noticed[index] = run.noticed.get(index, 0) + 1
            if seen > scripted.skip and (seen - scripted.skip - 1) % scripted.every == 0:
                run.push(run.current() + scripted.delay_seconds, "act", (index, write))


def _on_write(run: _Run, write: WriteEvent) -> None:
    """GitHub's side of a write: a webhook delivery, and the scripted actors that notice it."""
    event = run.world.github.webhook_for(write)
    if write.actor.get("login") == REYNOLDS_LOGIN:
        run.reynolds_out.append(str((write.resource or {}).get("body") or ""))
    if event is not None:
        name, payload = event
        times = run.pending_redeliver
        delivery = str(uuid.UUID(int=next(run.seq) + 1))
        for _ in range(times):
            run.push(run.current() + WEBHOOK_LATENCY_SECONDS, "delivery", (name, payload, delivery))
    _notice(run, _github_write(write))


def _on_teams_message(run: _Run, message: dict[str, Any]) -> None:
    """Teams' side of a message: Graph's change notification to Reynolds, and the actors that notice it."""
    world = run.world
    world.graph.outbox.clear()  # the arena schedules notifications itself, with latency and redelivery
    write = _teams_write(world, message)
    if write.author == REYNOLDS_LOGIN:
        run.reynolds_out.append(str((message.get("body") or {}).get("content") or ""))
    if run.scenario.teams_door == "bot":
        _via_bot_door(run, write, message)
        _notice(run, write)
        return
    payload = world.graph.notifications_for(message)
    if payload["value"]:
        for _ in range(run.pending_redeliver):
            run.push(run.current() + WEBHOOK_LATENCY_SECONDS, "graph", (payload, f"teams:{message['id']}"))
    _notice(run, write)


def _on_servicebus(run: _Run, queue: str, message: ServiceBusMessage, *, by_reynolds: bool) -> None:
    """The broker's side of a message: Reynolds' queue is delivered to its trigger; actors watch every queue."""
    write = _servicebus_write(queue, message, by_reynolds)
    if by_reynolds:
        run.reynolds_out.append(write.quote)
    if queue == run.world.settings.servicebus_events_queue:
        for _ in range(run.pending_redeliver):
            run.push(run.current() + WEBHOOK_LATENCY_SECONDS, "servicebus", message)
    _notice(run, write)


async def run_scenario(scenario: Scenario, store: str, inspect: Callable[[World], None] | None = None,
                       journal: str | None = None) -> dict[str, Any]:
    """Play one scenario to quiet (or to its caps); its result line. ``inspect`` sees the world before it closes
    (``tools.explore`` reads the chains from it); ``journal`` records every decision and effect there
    (``tools.whatif``'s format)."""
    # The developer's LOOP_* settings (environment over local.settings.json) win over the scenario's defaults.
    links = {"LOOP_LINKED_SCOPES": scenario.linked_scopes, **tool_settings("arena")}
    with build_world(store=store, profile="reply-all", extra_settings=links) as world, \
            contextlib.ExitStack() as stack:
        if journal:
            stack.enter_context(journal_to(world.services, journal, source=f"arena:{scenario.name}"))
        writes = record_writes(world.github, REYNOLDS_LOGIN)
        seed_item(world, scenario.model_dump(include={"model", "repo_files", "pulls", "runs"}))
        model = stack.enter_context(scripted_model(scenario.model, world.services))
        run = _Run(scenario=scenario, world=world)
        if scenario.faults is not None:
            install_faults(world, scenario.faults)
        for spec in [s.actor for s in scenario.start] + [a.actor for a in scenario.actors]:
            with contextlib.suppress(ValueError):
                world.github.add_user(spec.login, type=spec.type)
        world.github.on_write.append(lambda w: _on_write(run, w))
        world.graph.on_message.append(lambda m: _on_teams_message(run, m))
        world.publisher.on_send.append(lambda q, m: _on_servicebus(run, q, m, by_reynolds=True))
        if any(_uses_teams(scenario)):
            await world.ensure_subscriptions()
        for opening in scenario.start:
            for k in range(opening.repeat):
                run.push(opening.at + k * opening.interval_seconds, "start", (opening, k + 1))
        stopped = False
        while True:
            if not run.queue and scenario.faults is not None:
                before = len(run.reynolds_out)
                await world.client.advance(None)  # retries waiting on durable timers finish (and may write)
                _count_effects(run, before)
            if not run.queue:
                stopped = True
                break
            item = heapq.heappop(run.queue)
            if item.at > scenario.until_seconds or run.events >= scenario.max_events:
                break
            run.now = max(item.at, run.current())
            world.clock.set(START + timedelta(seconds=run.now))
            if item.kind == "start":
                start, n = item.data
                run.pending_redeliver = start.redeliver
                actor = start.actor
                if "{n}" in actor.login:
                    actor = actor.model_copy(update={"login": _place(actor.login, n)})
                    with contextlib.suppress(ValueError):
                        world.github.add_user(actor.login, type=actor.type)
                _perform(run, actor, start.action, n, None)
                run.pending_redeliver = 1
            elif item.kind == "act":
                index, write = item.data
                scripted = scenario.actors[index]
                done = run.counters.get(index, 0)
                if done < scripted.max_actions:
                    run.counters[index] = done + 1
                    _perform(run, scripted.actor, scripted.do, done + 1, write)
            elif item.kind == "graph":
                await _deliver_graph(run, *item.data)
            elif item.kind == "bot":
                await _deliver_bot(run, *item.data)
            elif item.kind == "servicebus":
                await _deliver_servicebus(run, item.data)
            else:
                await _deliver(run, *item.data)
        if inspect is not None:
            inspect(world)
        result = finish_line(_result(run, stopped), writes, model)
        if "error" in result:
            result["passed"] = False
        return result


def _uses_teams(scenario: Scenario) -> list[bool]:
    actions = [s.action for s in scenario.start] + [a.do for a in scenario.actors]
    return [a.platform == "teams" for a in actions] + [a.on.platform == "teams" for a in scenario.actors]


def _count_effects(run: _Run, before: int) -> None:
    written = run.reynolds_out[before:]
    notes = sum(1 for body in written if "Reynolds · paused" in body)
    run.notes += notes
    run.reynolds_effects += len(written) - notes


async def _deliver_graph(run: _Run, payload: dict[str, Any], event_id: str) -> None:
    """POST a change notification; the verdict comes from the notification orchestration it started."""
    world = run.world
    before = len(run.reynolds_out)
    status, body, _ = await world.post_graph(json.dumps(payload).encode())
    answer = json.loads(body or b"{}")
    run.events += 1
    output: dict[str, Any] = {}
    if answer.get("started"):
        output = world.client.run_of(instance_id_for(event_id)).output or {}
        verdict = str(output.get("verdict"))
        run.faults += _failed(world, instance_id_for(event_id))
    else:
        verdict = "duplicate" if status < 400 else "rejected"
    run.verdicts[verdict] += 1
    _chain(run, output.get("chain_id"), verdict)
    _count_effects(run, before)
    if output.get("actor_kind") == "human":
        suppressed = any(e.get("suppressed") for e in output.get("effects", []))
        if verdict in ("loop", "rejected") or suppressed or status >= 400:
            stored = world.services.lineage.get_event(event_id) or {}
            _held(run, (stored.get("actor") or {}).get("login"))


def _held(run: _Run, login: Any) -> None:
    """An event of an actor that may be a person was held (or its answer suppressed)."""
    run.blocked_human += 1
    run.held[str(login)] += 1


def _via_bot_door(run: _Run, write: _Write, message: dict[str, Any]) -> None:
    """``"teams_door": "bot"``: Teams delivers a channel message to the installed bot (RSC
    ``ChannelMessage.Read.Group``) as a message activity; a bot never receives its own messages."""
    if write.author == REYNOLDS_LOGIN:
        return
    sender = message.get("from") or {}
    user, app = sender.get("user") or {}, sender.get("application") or {}
    ident = message.get("channelIdentity") or {}
    channel = str(ident.get("channelId") or message.get("chatId"))
    root = message.get("replyToId") or message["id"]
    from_ = ({"id": f"28:{app.get('id')}", "name": app.get("displayName"), "role": "bot"} if app else
             {"id": f"29:{user.get('id')}", "name": user.get("displayName"), "aadObjectId": user.get("id")})
    activity = {"type": "message", "id": str(message["id"]), "timestamp": message.get("createdDateTime"),
                "channelId": "msteams", "serviceUrl": "https://smba.trafficmanager.net/amer/", "from": from_,
                "recipient": {"id": "28:reynolds-simulate-bot", "name": "Reynolds"},
                "conversation": {"id": f"{channel};messageid={root}", "conversationType": "channel",
                                 "tenantId": run.world.graph.tenant_id},
                "channelData": {"team": {"id": ident.get("teamId"), "aadGroupId": ident.get("teamId")},
                                "channel": {"id": channel}, "tenant": {"id": run.world.graph.tenant_id}},
                "text": str((message.get("body") or {}).get("content") or "")}
    for _ in range(run.pending_redeliver):
        run.push(run.current() + WEBHOOK_LATENCY_SECONDS, "bot", (activity, f"teams:{message['id']}"))


async def _deliver_bot(run: _Run, activity: dict[str, Any], event_id: str) -> None:
    """POST a message activity to the bot door (a signed Bot Framework token); the verdict as for Graph."""
    from tools.simulate_bot import run_bot

    world = run.world
    before = len(run.reynolds_out)
    line = await run_bot(world, {"source": "bot", "headers": {"Authorization": "Bearer auto"}, "body": activity})
    run.events += 1
    verdict = str(line.get("verdict"))
    output: dict[str, Any] = {}
    if line.get("instance_id"):
        output = world.client.run_of(instance_id_for(event_id)).output or {}
        verdict = str(output.get("verdict") or verdict)
        run.faults += _failed(world, instance_id_for(event_id))
    run.verdicts[verdict] += 1
    _chain(run, output.get("chain_id") or line.get("chain_id"), verdict)
    _count_effects(run, before)
    if output.get("actor_kind") == "human" or (not output and not activity["from"].get("role")):
        suppressed = any(e.get("suppressed") for e in output.get("effects", []))
        if verdict in ("loop", "rejected") or suppressed or int(line.get("status") or 500) >= 400:
            run.blocked_human += 1


async def _deliver_servicebus(run: _Run, message: ServiceBusMessage) -> None:
    """Deliver a message to the Service Bus trigger; the verdict is the stored decision of its event."""
    world = run.world
    before = len(run.reynolds_out)
    event_id = f"servicebus:{message.message_id}"
    seen = world.services.lineage.get_event(event_id) is not None
    settlement = await world.deliver_servicebus(message, enqueued_time=run.enqueued.get(str(message.message_id)))
    run.events += 1
    stored = world.services.lineage.get_event(event_id) or {}
    if stored.get("verdict") == "accepted" and not seen:
        run.faults += _failed(world, instance_id_for(event_id))
    verdict = "duplicate" if seen else str(stored.get("verdict") or "rejected")
    run.verdicts[verdict] += 1
    _chain(run, stored.get("chain_id"), verdict)
    _count_effects(run, before)
    if (stored.get("actor") or {}).get("kind") == "human" and not seen:
        suppressed = False
        if verdict == "accepted":
            output = world.client.run_of(instance_id_for(event_id)).output or {}
            suppressed = any(e.get("suppressed") for e in output.get("effects", []))
        if verdict in ("loop", "rejected") or suppressed or settlement.outcome != "completed":
            _held(run, (stored.get("actor") or {}).get("login"))


async def _deliver(run: _Run, name: str, payload: dict[str, Any], delivery: str) -> None:
    world = run.world
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"X-GitHub-Event": name, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": "auto",
               "Content-Type": "application/json"}
    before = len(run.reynolds_out)
    status, answer = await world.post_github(headers, body)
    answer = await world.settle(answer)  # handed to the inbox under faults: its decision counts
    run.events += 1
    verdict = str(answer.get("verdict"))
    run.verdicts[verdict] += 1
    _chain(run, answer.get("chain_id"), verdict)
    _count_effects(run, before)
    instance = answer.get("instance_id")
    failed = bool(instance and verdict == "accepted" and _failed(world, instance))
    run.faults += failed or status >= 500
    sender = payload.get("sender") or {}
    if sender.get("type") == "User" and sender.get("login") != REYNOLDS_LOGIN:
        suppressed = False
        if instance and verdict == "accepted":
            output = world.client.run_of(instance).output or {}
            suppressed = any(e.get("suppressed") for e in output.get("effects", []))
        if verdict in ("loop", "rejected") or suppressed or failed or status >= 400:
            _held(run, sender.get("login"))


def _chain(run: _Run, chain_id: Any, verdict: str) -> None:
    if isinstance(chain_id, str) and chain_id:
        run.chains.setdefault(chain_id, None)
        if verdict == "loop" and run.loop_chain is None:
            run.loop_chain = chain_id


def _failed(world: World, instance_id: str) -> int:
    """1 when the orchestration ended Failed (or never finished its retries), else 0."""
    try:
        return int(world.client.run_of(instance_id).runtime_status == "Failed")
    except KeyError:
        return 0


def _result(run: _Run, stopped: bool) -> dict[str, Any]:
    s = run.scenario
    if s.expect == "loop":
        limit = s.max_reynolds_effects if s.max_reynolds_effects is not None else 3
        passed = stopped and run.reynolds_effects <= limit and not (s.humans_never_blocked and _people_held(run))
    else:
        passed = run.blocked_human == 0 and (
            s.expected_reynolds_effects is None or run.reynolds_effects == s.expected_reynolds_effects)
    if run.faults:
        # A loop "stopped" because Reynolds crashed is not stopped by design: a fault never passes.
        print(f"  {s.name}: {run.faults} deliveries failed inside Reynolds (5xx or a failed orchestration)",
              file=sys.stderr)
        passed = False
    result = {"name": s.name, "expect": s.expect, "reynolds_effects": run.reynolds_effects, "notes": run.notes,
              "events": run.events, "verdicts": dict(sorted(run.verdicts.items())), "stopped": stopped,
              "blocked_human_events": run.blocked_human, "passed": passed, "chain_id": run.loop_chain,
              "chain_ids": list(run.chains)[:MAX_CHAIN_IDS], "chains": len(run.chains)}
    if s.humans_never_blocked:
        result["blocked_people_events"] = _people_held(run)
    if s.expect == "loop" and run.blocked_human:
        # A loop scenario's bots on personal accounts are typed "User" by GitHub, so they count here; a loop
        # scenario is judged by stopped + effects, and blocking those "people" is the point.
        result["blocked_human_events_note"] = (
            "counts events by User-type accounts the guard stopped; in a loop scenario these are the bots on "
            "personal accounts (GitHub types them as users), not people: not a failure")
    return result


def _people_held(run: _Run) -> int:
    """Held events of the people in a scenario: every actor but the scripted ones (a scripted bot on a user account
    is typed a user by its platform; holding it is the point of a loop scenario)."""
    scripted = {a.actor.login for a in run.scenario.actors}
    return sum(n for login, n in run.held.items() if login not in scripted)


def chain_ids(world: World) -> list[str]:
    """Every chain the run's lineage store holds, oldest first (for ``tools.explore`` and the API)."""
    heads = world.services.lineage.store.query(Query(equals={"kind": "chain"}))
    heads.sort(key=lambda h: (str(h.get("created_at") or ""), str(h.get("chain_id") or h.get("pk") or "")))
    return [str(h.get("chain_id") or h.get("pk")) for h in heads]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.arena", description="Run loop-arena scenarios.")
    parser.add_argument("--store", choices=("memory", "cosmos"), default="memory")
    parser.add_argument("--journal", metavar="PATH",
                        help="record one scenario's decisions and effects for `python -m tools.whatif --from PATH`")
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO.json")
    args = parser.parse_args(argv)
    if args.journal and len(args.scenarios) != 1:
        print("arena: --journal records one scenario at a time", file=sys.stderr)
        return 2
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
        try:
            result = asyncio.run(run_scenario(scenario, args.store, journal=args.journal))
        except ItemInputError as exc:
            print(f"arena: {scenario.name}: {exc}", file=sys.stderr)
            return 2
        failed += not result["passed"]
        print(f"{'PASS' if result['passed'] else 'FAIL'} {scenario.name}: {result['reynolds_effects']} effects, "
              f"{result['events']} events, stopped={result['stopped']}", file=sys.stderr)
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
