"""An in-process Reynolds world: the real app code against local stand-ins for Azure, GitHub and Teams.

``tools.simulate`` and ``tools.arena`` (and the end-to-end tests) build one of these: the registered Function
App (``function_app.app``), its HTTP triggers called in-process with real ``func.HttpRequest`` objects, the
Service Bus trigger with real ``func.ServiceBusMessage`` objects (built by the worker's own converter), the
orchestrations run through the real azure-functions-durable replay (``tools.harness.durable``), githubkit
against the stateful fake GitHub and msgraph-sdk against the fake Graph (both on loopback; Graph's
subscription handshake calls the registered notification function), a capturing Service Bus publisher that
keeps the real ``azure.servicebus.ServiceBusMessage`` objects Reynolds sends, and the lineage store in memory
or on the local Cosmos DB server. One world = one store, one fake GitHub, one fake Graph and one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter
from azure.servicebus import ServiceBusMessage
from kiota_abstractions.authentication import AnonymousAuthenticationProvider

from shared.loop.lineage import LineageService
from shared.loop.rules import GuardConfig
from shared.platforms.github.events import signature_for
from shared.platforms.github.pacer import GitHubPacer, set_pacer
from shared.platforms.servicebus.contract import PoisonMessage
from shared.platforms.teams.graph import make_graph_client
from shared.platforms.teams.webhook import teams_signature
from shared.services import Services, set_services
from shared.settings import Settings, override_settings
from shared.store.base import DocumentStore
from shared.store.memory import MemoryStore
from shared.telemetry import invocation_context
from tools.fakes.github import FakeGitHub, WriteEvent
from tools.fakes.github.app_api import delivery_log
from tools.fakes.graph import FakeGraph
from tools.harness.app_index import functions, user_function
from tools.harness.durable import FakeDurableClient, ReplayHarness
from tools.harness.inbox import InboxQueue

# Embedded defaults of the simulation (named in the README). Never used outside the simulation.
SIMULATE_WEBHOOK_SECRET = "reynolds-simulate-secret"
SIMULATE_MARKER_KEY = "reynolds-simulate-marker-key"
#: The Teams outgoing-webhook security token of the simulation (base64, as Teams shows it).
SIMULATE_TEAMS_TOKEN = "cmV5bm9sZHMtc2ltdWxhdGUtdGVhbXMtdG9rZW4="  # noqa: S105 - a simulation default
SIMULATE_GRAPH_CLIENT_STATE = "reynolds-simulate-client-state"
NOTIFICATION_URL = "https://reynolds.example/api/graph/notifications"
MAX_DELIVERY_COUNT = 10
REYNOLDS_LOGIN = "reynolds[bot]"
START = datetime(2026, 1, 1, tzinfo=UTC)


class SimClock:
    """A clock that only moves when told to (shared by the store, the guard and the fake GitHub)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards)."""
        self.now = max(self.now, when)


class CapturingPublisher:
    """A Service Bus ``Publisher`` that keeps every real ``ServiceBusMessage`` it is given, per queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ServiceBusMessage]] = []
        self.on_send: list[Any] = []

    async def send(self, queue: str, messages: Any) -> int:
        """Capture ``messages`` for ``queue`` (what the broker would have accepted)."""
        for message in messages:
            self.sent.append((queue, message))
            for callback in list(self.on_send):
                callback(queue, message)
        return len(messages)


@dataclass(frozen=True)
class Settlement:
    """What the broker did with one delivered message."""

    outcome: str  # "completed" | "dead-lettered" | "abandoned"
    deliveries: int
    reason: str = ""


def function_message(message: ServiceBusMessage, *, delivery_count: int = 1,
                     enqueued_time: datetime | None = None) -> func.ServiceBusMessage:
    """The trigger argument the Python worker builds for ``message``: its own converter over host metadata."""
    properties = {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in (message.application_properties or {}).items()}
    metadata: dict[str, meta.Datum] = {
        "MessageId": meta.Datum(message.message_id, "string"),
        "DeliveryCount": meta.Datum(delivery_count, "int"),
        "EnqueuedTimeUtc": meta.Datum((enqueued_time or START).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"), "string"),
        "ApplicationProperties": meta.Datum(json.dumps(properties, default=str), "json"),
        "UserProperties": meta.Datum(json.dumps(properties, default=str), "json"),
    }
    for name, value in (("ContentType", message.content_type), ("SessionId", message.session_id),
                        ("ReplyTo", message.reply_to), ("CorrelationId", message.correlation_id),
                        ("Label", message.subject)):
        if value:
            metadata[name] = meta.Datum(value, "string")
    body = b"".join(message.body) if not isinstance(message.body, bytes | str) else message.body
    raw = body.encode() if isinstance(body, str) else body
    decoded = ServiceBusMessageInConverter.decode(meta.Datum(raw, "bytes"), trigger_metadata=metadata)
    assert isinstance(decoded, func.ServiceBusMessage)
    return decoded


@dataclass
class World:
    """The real app wired to local stand-ins; see the module docstring."""

    settings: Settings
    store: DocumentStore
    github: FakeGitHub
    clock: SimClock
    client: FakeDurableClient
    services: Services
    graph: FakeGraph
    publisher: CapturingPublisher
    reynolds_writes: list[WriteEvent] = field(default_factory=list)
    #: Messages Reynolds posted in Teams (through its bot), as the fake Graph stores them.
    teams_writes: list[dict[str, Any]] = field(default_factory=list)
    #: The inbox Storage queue the doors hand deliveries to when deciding inline fails (``None``: built lazily).
    inbox: InboxQueue | None = None
    #: The poison queue's reader queue (fed from ``inbox.poison``) and how many poisoned bodies it was fed.
    inbox_poison: InboxQueue | None = None
    poison_fed: int = 0

    def inbox_queue(self) -> InboxQueue:
        """The world's inbox queue (on the world's clock)."""
        if self.inbox is None:
            self.inbox = InboxQueue(clock=self.clock)
        return self.inbox

    async def call_door(self, name: str, **kwargs: Any) -> Any:
        """Call a door with its inbox output binding; what it set there is written once it returned."""
        queue = self.inbox_queue()
        out = queue.out()
        response = await call_function(name, inbox=out, **kwargs)
        queue.commit(out)
        return response

    async def drain_inbox(self) -> int:
        """Let the inbox trigger work through the queue (retries wait ``visibilityTimeout`` on the clock), and the
        poison-queue reader through whatever was poisoned meanwhile (it may re-park items into the inbox)."""
        async def handler(**bindings: Any) -> None:
            await call_function("inbox", client=self.client, **bindings)

        async def reader(**bindings: Any) -> None:
            bindings.pop("poison", None)
            await call_function("inbox_poison", client=self.client, **bindings)

        queue = self.inbox_queue()
        readers = self.poison_queue()
        deliveries = 0
        while True:
            deliveries += await queue.drain(handler, advance=self.clock.advance)
            for body in queue.poison[self.poison_fed:]:
                readers.put(body)
            self.poison_fed = len(queue.poison)
            if not readers.messages:
                return deliveries
            await readers.drain(reader, advance=self.clock.advance, output="inbox", output_queue=queue)

    def poison_queue(self) -> InboxQueue:
        """``reynolds-inbox-poison`` as the trigger of the poison-queue reader sees it."""
        if self.inbox_poison is None:
            self.inbox_poison = InboxQueue(clock=self.clock, name="reynolds-inbox-poison")
        return self.inbox_poison

    async def settle(self, answer: dict[str, Any]) -> dict[str, Any]:
        """For a ``queued`` answer: drain the inbox, then the answer the door would have given inline (the
        stored decision of the event, and its orchestration when one runs)."""
        if answer.get("verdict") != "queued":
            return answer
        await self.drain_inbox()
        event_id = answer.get("event_id")
        # read past any injected store faults: this is the tool looking, not Reynolds
        stored = LineageService(self.store, GuardConfig(), marker_key=None).get_event(event_id) if event_id else None
        if stored is None:
            return {**answer, "reason": "still in the inbox (or poisoned)"}
        from shared.loop.lineage import instance_id_for

        instance_id = instance_id_for(event_id) if event_id else None
        if await self.runtime_status(instance_id) is None:
            instance_id = None
        return {**answer, "verdict": stored.get("verdict"), "reason": "; ".join(stored.get("reasons") or []),
                "chain_id": stored.get("chain_id"), "instance_id": instance_id,
                "status_url": f"/api/orchestrations/{instance_id}" if instance_id else None}

    async def redeliver_requested(self) -> list[tuple[int, dict[str, Any]]]:
        """POST every redelivery Reynolds asked the fake GitHub for (same guid), as GitHub would."""
        log = delivery_log(self.github)
        answers = []
        while log.outbox:
            _guid, headers, body = log.outbox.pop(0)
            answers.append(await self.post_github(headers, body))
        return answers

    # -- GitHub world --------------------------------------------------------------------------------
    def ensure_issue(self, repo: str, number: int, title: str = "An issue", login: str | None = None) -> None:
        """Make the fake GitHub hold ``repo#number`` as the delivery describes it (seeding, not an action)."""
        with contextlib.suppress(ValueError):
            self.github.add_repo(repo)
        try:
            self.github.issue(repo, number)
        except KeyError:
            self.github.add_issue(repo, number=number, title=title or "An issue", login=login)

    def seed_from_payload(self, payload: dict[str, Any]) -> None:
        """Seed the repository and issue a delivery talks about."""
        repo = (payload.get("repository") or {}).get("full_name") if isinstance(payload, dict) else None
        issue = payload.get("issue") if isinstance(payload, dict) else None
        if isinstance(repo, str) and "/" in repo and isinstance(issue, dict) and isinstance(issue.get("number"), int):
            login = (issue.get("user") or {}).get("login")
            self.ensure_issue(repo, issue["number"], str(issue.get("title") or ""),
                              login if isinstance(login, str) else None)

    # -- deliveries ----------------------------------------------------------------------------------
    async def post_github(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """POST a delivery to the registered webhook function, in-process; the JSON answer."""
        signed = dict(headers)
        for name, value in headers.items():
            if name.lower() == "x-hub-signature-256" and value == "auto":
                signed[name] = signature_for(self.settings.require("github_webhook_secret"), body)
        request = func.HttpRequest(method="POST", url="http://localhost:7071/api/github/webhook",
                                   headers=signed, params={}, route_params={}, body=body)
        response = await self.call_door("github_webhook", req=request, client=self.client)
        delivery_log(self.github).record(self.github, signed, body, response.status_code)
        return response.status_code, json.loads(response.get_body() or b"{}")

    # -- Teams, Graph and Service Bus ------------------------------------------------------------------
    async def post_teams(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """POST an outgoing-webhook call (``Authorization: auto`` signs it); status, JSON answer, headers."""
        signed = dict(headers)
        for name, value in headers.items():
            if name.lower() == "authorization" and value == "auto":
                signed[name] = teams_signature(self.settings.require("teams_webhook_token"), body)
        _teams_bot_sees(self, signed, body)
        request = func.HttpRequest(method="POST", url="http://localhost:7071/api/teams/webhook", headers=signed,
                                   params={}, route_params={}, body=body)
        response = await self.call_door("teams_webhook", req=request, client=self.client)
        return response.status_code, json.loads(response.get_body() or b"{}"), dict(response.headers)

    async def post_graph(self, body: bytes, params: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        """POST to the Graph notification function in-process; status, raw answer, mimetype."""
        request = func.HttpRequest(method="POST", url="http://localhost:7071/api/graph/notifications",
                                   headers={"Content-Type": "application/json"}, params=params or {},
                                   route_params={}, body=body)
        response = await self.call_door("graph_notifications", req=request, client=self.client)
        return response.status_code, response.get_body(), response.mimetype

    def graph_validator(self, token: str) -> tuple[int, str, str]:
        """Graph's subscription handshake, answered by the registered function (runs on the fake's thread)."""

        status, body, mimetype = asyncio.run(self.post_graph(b"", {"validationToken": token}))
        return status, body.decode(), mimetype

    async def ensure_subscriptions(self) -> None:
        """Fire the subscription timer once: Reynolds subscribes to ``GRAPH_SUBSCRIPTION_RESOURCES``."""
        await call_function("graph_subscription_timer", timer=None, client=self.client)

    async def deliver_notifications(self) -> list[tuple[int, dict[str, Any]]]:
        """POST every change notification the fake Graph queued (Reynolds' own messages included)."""
        answers = []
        while self.graph.outbox:
            payload = self.graph.outbox.pop(0)
            status, body, _ = await self.post_graph(json.dumps(payload).encode())
            answers.append((status, json.loads(body or b"{}")))
        return answers

    async def deliver_servicebus(self, message: ServiceBusMessage, *, delivery_count: int = 1,
                                 enqueued_time: datetime | None = None) -> Settlement:
        """Deliver ``message`` to the Service Bus trigger like the host: completed when it returns; when it
        raises, redelivered until ``MaxDeliveryCount``, then dead-lettered (a poison message) — a transient
        failure on the last attempt is reported as ``abandoned``. ``enqueued_time`` (default: now) is when the
        broker accepted it: earlier for a backlog delivered after an outage."""
        count = delivery_count
        enqueued = enqueued_time or self.clock()
        while True:
            try:
                await self.call_door("servicebus_events", msg=function_message(message, delivery_count=count,
                                                                               enqueued_time=enqueued),
                                     client=self.client)
                return Settlement("completed", count)
            except PoisonMessage as exc:
                if count >= MAX_DELIVERY_COUNT:
                    return Settlement("dead-lettered", count, f"{exc.reason.value}: {exc.description}")
                count += 1
            except Exception as exc:  # transient: the host abandons, the broker redelivers later
                return Settlement("abandoned", count, f"{type(exc).__name__}: {str(exc)[:200]}")

    def capture_comment(self, repo: str, number: int, body: str, login: str) -> tuple[str, bytes, WriteEvent]:
        """``login`` comments on ``repo#number`` on the fake GitHub: the event name and the webhook body GitHub
        signs for it (captured, not delivered), and the write."""
        captured: list[WriteEvent] = []
        self.github.on_write.append(captured.append)
        try:
            self.github.create_comment(repo, number, body, login)
        finally:
            self.github.on_write.remove(captured.append)
        event = self.github.webhook_for(captured[0])
        if event is None:  # pragma: no cover - a comment always has a webhook
            raise AssertionError("no webhook for a comment")
        return event[0], json.dumps(event[1]).encode(), captured[0]

    async def comment(self, repo: str, number: int, body: str, login: str,
                      delivery: str | None = None) -> tuple[int, dict[str, Any]]:
        """``login`` comments on ``repo#number`` on the fake GitHub, and GitHub delivers it to the webhook."""
        event, raw, write = self.capture_comment(repo, number, body, login)
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or f"d-{write.resource_id}",
                   "X-Hub-Signature-256": "auto", "Content-Type": "application/json"}
        return await self.post_github(headers, raw)

    async def runtime_status(self, instance_id: str | None) -> str | None:
        """The orchestration's runtime status name, or None."""
        if not instance_id:
            return None
        status = await self.client.get_status(instance_id)
        if not status or status.runtime_status is None:
            return None
        return str(status.runtime_status.value if hasattr(status.runtime_status, "value") else status.runtime_status)


#: The effect kinds of the simulate interface, from the fake GitHub's write kinds.
_EFFECT_KINDS = {"comment": "comment", "comment_edit": "comment_edit", "issue": "issue", "issue_edit": "issue_edit",
                 "label": "label", "unlabel": "label", "issue_state": "issue_edit"}


def github_effects(writes: list[WriteEvent]) -> list[dict[str, Any]]:
    """One effect line per GitHub write *request* Reynolds made (a request can make several write events:
    an issue created with labels, a label set replaced): the first event names the request's kind."""
    effects: list[dict[str, Any]] = []
    seen: set[str] = set()
    for write in writes:
        if write.request_id and write.request_id in seen:
            continue
        seen.add(write.request_id)
        effects.append({"platform": "github", "kind": _EFFECT_KINDS.get(write.kind, write.kind),
                        "target": f"{write.repo}#{write.number}", "id": str(write.resource_id)})
    return effects


async def call_function(name: str, **kwargs: Any) -> Any:
    """Call a registered function in-process with the bindings as keyword arguments, in a context of its own
    with no correlation id bound (as the worker runs each invocation: ``shared.telemetry.invocation_context``)."""
    context = invocation_context()
    result = context.run(user_function(name), **kwargs)
    if inspect.iscoroutine(result):
        return await asyncio.get_running_loop().create_task(result, context=context)
    if inspect.isawaitable(result):
        return await result
    return result


def _teams_bot_sees(world: World, headers: dict[str, str], body: bytes) -> None:
    """The world's Teams app is installed where a genuine (signed) webhook message comes from
    (``teams_activity_seen``)."""
    from tools.simulate_bot import teams_activity_seen

    token = world.settings.teams_webhook_token
    secret = token.get_secret_value() if token is not None else None
    if secret and any(k.lower() == "authorization" and v == teams_signature(secret, body) for k, v in headers.items()):
        teams_activity_seen(world, body)


def _with_teams_bot(world: World, stack: contextlib.ExitStack) -> None:
    """Reynolds speaks in Teams as its bot (Graph refuses app-only message posts): the fake token issuer and Bot
    Connector, bridged to the fake Graph (``tools.simulate_bot.bot_stage``), stopped with the world."""
    from tools.simulate_bot import bot_stage

    stack.callback(bot_stage(world).close)


@contextlib.contextmanager
def build_world(*, store: str = "memory", profile: str = "default", webhook_secret: str | None = None,
                extra_settings: dict[str, str] | None = None) -> Iterator[World]:
    """Start the stand-ins, install settings and services, yield the world, tear everything down."""
    clock = SimClock()
    with contextlib.ExitStack() as stack:
        github = stack.enter_context(FakeGitHub(clock=clock))
        graph = stack.enter_context(FakeGraph(clock=clock))
        token = "ghs_reynolds_simulation"
        github.add_user(REYNOLDS_LOGIN, type="Bot", token=token)
        delivery_log(github).allow_app(REYNOLDS_LOGIN)  # locally the token stands for the App's JWT too
        values = {
            "GITHUB_WEBHOOK_SECRET": webhook_secret or SIMULATE_WEBHOOK_SECRET,
            "GITHUB_API_URL": github.base_url,
            "GITHUB_TOKEN": token,
            "REYNOLDS_BOT_LOGIN": REYNOLDS_LOGIN,
            "REYNOLDS_MARKER_KEY": SIMULATE_MARKER_KEY,
            "REYNOLDS_ROUTING_PROFILE": profile,
            "LINEAGE_STORE": store,
            "TEAMS_OUTGOING_WEBHOOK_TOKEN": SIMULATE_TEAMS_TOKEN,
            "GRAPH_CLIENT_STATE": SIMULATE_GRAPH_CLIENT_STATE,
            "GRAPH_API_URL": graph.base_url,
            "GRAPH_NOTIFICATION_URL": NOTIFICATION_URL,
            "GRAPH_SUBSCRIPTION_RESOURCES": "teams/getAllMessages,chats/getAllMessages",
            **(extra_settings or {}),
        }
        document_store: DocumentStore
        if store == "cosmos":
            from shared.store.cosmos import ensure_container, make_cosmos_store
            from tools.harness.cosmos_server import start_cosmos_server

            server = stack.enter_context(start_cosmos_server())
            values.update(server.environment())
            settings = Settings.model_validate(values)
            ensure_container(settings)
            cosmos = make_cosmos_store(settings)
            stack.callback(cosmos.close)
            document_store = cosmos
        else:
            settings = Settings.model_validate(values)
            document_store = MemoryStore(clock=clock)
        publisher = CapturingPublisher()
        graph_url = settings.graph_api_url
        services = Services(settings=settings, store=document_store, clock=clock, publisher=publisher,
                            graph_factory=lambda: make_graph_client(settings, base_url=graph_url,
                                                                    auth_provider=AnonymousAuthenticationProvider()))
        override_settings(settings)
        set_services(services)
        stack.callback(set_services, None)
        # GitHub writes are paced (≥ 1 s apart): on the world's clock, so pacing moves simulated time only.
        set_pacer(GitHubPacer(clock=lambda: clock().timestamp(), sleep=clock.advance, store=document_store))
        stack.callback(set_pacer, None)
        stack.callback(override_settings, None)
        harness = ReplayHarness.from_app(functions(), start=clock.now, clock=clock, on_time=clock.set)
        world = World(settings=settings, store=document_store, github=github, clock=clock,
                      client=FakeDurableClient(harness), services=services, graph=graph, publisher=publisher)
        graph.validator = world.graph_validator
        graph.on_message.append(lambda m: world.teams_writes.append(m) if graph.is_poster(m) else None)
        github.on_write.append(lambda w: world.reynolds_writes.append(w) if w.actor.get("login") == REYNOLDS_LOGIN
                               else None)
        _with_teams_bot(world, stack)
        yield world
