"""The service container: everything triggers and activities need, built once from settings.

Triggers and activities call ``get_services()``; tests and tools install their own with
``set_services()`` (a memory or emulator store, a fake GitHub, a simulated clock). Nothing is built at
import time, so indexing the app needs no setting at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.loop.breakers import BreakerConfig, BreakerService
from shared.loop.lineage import LineageService
from shared.loop.rules import GuardConfig
from shared.loop.scopes import ScopeMap, parse_links
from shared.platforms.github.client import GitHubClients
from shared.platforms.github.pacer import GitHubPacer, set_pacer
from shared.settings import Settings, get_settings
from shared.store.base import DocumentStore
from shared.store.memory import MemoryStore
from shared.store.resilient import ResilientStore
from shared.telemetry import configure_telemetry
from shared.work.triage import GitHubReporter

if TYPE_CHECKING:
    from shared.platforms.servicebus.publisher import Publisher
    from shared.platforms.teams.connector import BotConnector
    from shared.platforms.teams.graph import GraphServiceClient
    from shared.work.reply import ServiceBusReporter, TeamsReporter


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Settings plus the long-lived clients built from them."""

    settings: Settings
    store: DocumentStore
    clock: Callable[[], datetime] = _utc_now
    github: GitHubClients | None = None
    #: Builds a Graph client per call (the async client binds to the loop that uses it); None → settings.
    graph_factory: Callable[[], GraphServiceClient] | None = None
    #: Service Bus publisher; None → azure-servicebus with DefaultAzureCredential, built on first use.
    publisher: Publisher | None = None
    #: Access token for Microsoft Graph (the health check reads its roles); None → the managed identity's.
    graph_token: Callable[[], Awaitable[str]] | None = None
    #: The Bot Connector client Teams posts go through; None → the bot runtime's (``get_bot_runtime``).
    bot_connector: Callable[[], BotConnector] | None = None
    _lineage: LineageService | None = field(default=None, repr=False)

    @property
    def lineage(self) -> LineageService:
        """The lineage service over this container's store."""
        if self._lineage is None:
            self._lineage = LineageService(
                self.store, guard_config(self.settings),
                marker_key=self.settings.marker_signing_key.get_secret_value()
                if self.settings.marker_signing_key else None,
                dedupe_ttl_seconds=self.settings.dedupe_ttl_hours * 3600,
                lineage_ttl_seconds=self.settings.lineage_ttl_days * 86400,
                clock=self.clock, scopes=self.scopes,
            )
        return self._lineage

    def reporter(self) -> GitHubReporter:
        """The GitHub writer (needs the marker key and GitHub credentials)."""
        if self.github is None:
            self.github = GitHubClients(self.settings)
        return GitHubReporter(self.lineage, self.github.for_installation,
                              marker_key=self.settings.require("marker_signing_key"),
                              bot_login=self.settings.bot_login, breakers=self.breakers,
                              explorer_url=self.settings.explorer_url)

    def graph_client(self) -> GraphServiceClient:
        """A Graph client (msgraph-sdk, managed identity, SDK retries off: throttling raises ``GraphThrottled``)."""
        if self.graph_factory is not None:
            return self.graph_factory()
        from shared.platforms.teams.graph import make_graph_client

        return make_graph_client(self.settings)

    def servicebus_publisher(self) -> Publisher:
        """The Service Bus publisher (production: azure-servicebus over the identity connection)."""
        if self.publisher is None:
            from shared.platforms.servicebus.publisher import AzureServiceBusPublisher

            self.publisher = AzureServiceBusPublisher(self.settings)
        return self.publisher

    def connector(self) -> BotConnector:
        """The Bot Connector client (the bot's identity; built once per settings by the bot runtime)."""
        if self.bot_connector is not None:
            return self.bot_connector()
        from shared.platforms.teams.bot import get_bot_runtime

        return get_bot_runtime(self.settings).connector

    def teams_reporter(self) -> TeamsReporter:
        """The Teams writer (the bot posts; Graph reads back; effect ledger, marker, breakers)."""
        from shared.platforms.teams.bot_references import BotReferences
        from shared.work.reply import TeamsReporter

        return TeamsReporter(self.lineage, self.graph_client, marker_key=self.settings.require("marker_signing_key"),
                             connector=self.connector, references=BotReferences(self.store),
                             breakers=self.breakers, explorer_url=self.settings.explorer_url)

    def servicebus_reporter(self) -> ServiceBusReporter:
        """The Service Bus writer (publisher, effect ledger, marker, breakers)."""
        from shared.work.reply import ServiceBusReporter

        return ServiceBusReporter(self.lineage, self.servicebus_publisher(),
                                  marker_key=self.settings.require("marker_signing_key"), breakers=self.breakers,
                                  explorer_url=self.settings.explorer_url)

    @property
    def breakers(self) -> BreakerService:
        """The rate breakers over this container's store."""
        s = self.settings
        return BreakerService(self.store, BreakerConfig(
            window_seconds=s.breaker_window_seconds, target_max_writes=s.breaker_target_max_writes,
            counterpart_max_writes=s.breaker_counterpart_max_writes,
            counterpart_max_repeats=s.breaker_counterpart_max_repeats, cooldown_seconds=s.breaker_cooldown_seconds,
            fast_reply_seconds=s.breaker_fast_reply_seconds,
            counterpart_window_seconds=s.breaker_counterpart_window_seconds), self.scopes)

    @property
    def scopes(self) -> ScopeMap:
        """How targets map to organisations and linked groups (from settings)."""
        s = self.settings
        return ScopeMap(links=parse_links(s.loop_linked_scopes), teams_tenant=s.loop_teams_tenant_id or None,
                        servicebus_namespace=s.servicebus_namespace)


def guard_config(settings: Settings) -> GuardConfig:
    """Loop-rule thresholds from settings."""
    return GuardConfig(max_automated_depth=settings.max_automated_depth,
                       causal_window_seconds=settings.causal_window_seconds,
                       scope_window_seconds=settings.scope_window_seconds,
                       chain_budget=settings.chain_budget,
                       max_children=settings.max_children)


def build_services(settings: Settings) -> Services:
    """Production wiring: the configured store (Cosmos DB with managed identity, transient failures retried a
    few times, or memory), and the GitHub write pacer over that store, so every instance paces against the same
    budget and penalties."""
    if settings.lineage_store == "memory":
        services = Services(settings=settings, store=MemoryStore())
    else:
        from shared.store.cosmos import make_cosmos_store

        services = Services(settings=settings, store=ResilientStore(make_cosmos_store(settings)))
    set_pacer(GitHubPacer(clock=time.time, store=services.store))
    return services


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process-wide services, built on first use from ``get_settings()``."""
    global _services
    with _lock:
        if _services is None:
            settings = get_settings()
            configure_telemetry(settings)  # no-op without APPLICATIONINSIGHTS_CONNECTION_STRING
            _services = build_services(settings)
        return _services


def set_services(services: Services | None) -> None:
    """Install services (tests, tools); ``None`` rebuilds from settings on next use."""
    global _services
    with _lock:
        _services = services
