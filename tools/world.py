"""An in-process Reynolds world: the real app code against local stand-ins for Azure and GitHub.

``tools.simulate`` and ``tools.arena`` (and the end-to-end tests) build one of these: the registered Function
App (``function_app.app``), its HTTP trigger called in-process with real ``func.HttpRequest`` objects, the
orchestrations run through the real azure-functions-durable replay (``tests.harness.durable``), githubkit
against the stateful fake GitHub on loopback, and the lineage store in memory or on the local Cosmos DB
server. One world = one store, one fake GitHub and one simulated clock.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func

from shared.github_events import signature_for
from shared.services import Services, set_services
from shared.settings import Settings, override_settings
from shared.store.base import DocumentStore
from shared.store.memory import MemoryStore
from tests.fakes.github import FakeGitHub, WriteEvent
from tests.harness.app_index import functions, user_function
from tests.harness.durable import FakeDurableClient, ReplayHarness

# Embedded defaults of the simulation (named in the README). Never used outside the simulation.
SIMULATE_WEBHOOK_SECRET = "reynolds-simulate-secret"
SIMULATE_MARKER_KEY = "reynolds-simulate-marker-key"
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


@dataclass
class World:
    """The real app wired to local stand-ins; see the module docstring."""

    settings: Settings
    store: DocumentStore
    github: FakeGitHub
    clock: SimClock
    client: FakeDurableClient
    services: Services
    reynolds_writes: list[WriteEvent] = field(default_factory=list)

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
        response = await call_function("github_webhook", req=request, client=self.client)
        return response.status_code, json.loads(response.get_body() or b"{}")

    async def runtime_status(self, instance_id: str | None) -> str | None:
        """The orchestration's runtime status name, or None."""
        if not instance_id:
            return None
        status = await self.client.get_status(instance_id)
        if not status or status.runtime_status is None:
            return None
        return str(status.runtime_status.value if hasattr(status.runtime_status, "value") else status.runtime_status)


async def call_function(name: str, **kwargs: Any) -> Any:
    """Call a registered function in-process with the bindings as keyword arguments."""
    result = user_function(name)(**kwargs)
    if hasattr(result, "__await__"):
        result = await result
    return result


@contextlib.contextmanager
def build_world(*, store: str = "memory", profile: str = "default", webhook_secret: str | None = None,
                extra_settings: dict[str, str] | None = None) -> Iterator[World]:
    """Start the stand-ins, install settings and services, yield the world, tear everything down."""
    clock = SimClock()
    with contextlib.ExitStack() as stack:
        github = stack.enter_context(FakeGitHub(clock=clock))
        token = "ghs_reynolds_simulation"
        github.add_user(REYNOLDS_LOGIN, type="Bot", token=token)
        values = {
            "GITHUB_WEBHOOK_SECRET": webhook_secret or SIMULATE_WEBHOOK_SECRET,
            "GITHUB_API_URL": github.base_url,
            "GITHUB_TOKEN": token,
            "REYNOLDS_BOT_LOGIN": REYNOLDS_LOGIN,
            "REYNOLDS_MARKER_KEY": SIMULATE_MARKER_KEY,
            "REYNOLDS_ROUTING_PROFILE": profile,
            "LINEAGE_STORE": store,
            **(extra_settings or {}),
        }
        document_store: DocumentStore
        if store == "cosmos":
            from shared.store.cosmos import ensure_container, make_cosmos_store
            from tests.harness.cosmos_server import start_cosmos_server

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
        services = Services(settings=settings, store=document_store, clock=clock)
        override_settings(settings)
        set_services(services)
        stack.callback(set_services, None)
        stack.callback(override_settings, None)
        harness = ReplayHarness.from_app(functions(), start=clock.now)
        world = World(settings=settings, store=document_store, github=github, clock=clock,
                      client=FakeDurableClient(harness), services=services)
        github.on_write.append(lambda w: world.reynolds_writes.append(w) if w.actor.get("login") == REYNOLDS_LOGIN
                               else None)
        yield world
