"""GitHub client factory (githubkit): a GitHub App installation in Azure, a token for local runs."""

from __future__ import annotations

import threading
from typing import Any

from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.auth.base import BaseAuthStrategy
from githubkit.exception import RateLimitExceeded, RequestError, RequestFailed

from shared.errors import ConfigurationError
from shared.settings import Settings

# The SDK's error types, re-exported so the work services catch them without importing githubkit themselves.
__all__ = ["GitHubClients", "RateLimitExceeded", "RequestError", "RequestFailed"]

_NO_CREDENTIALS = "and GITHUB_APP_PRIVATE_KEY (or GITHUB_TOKEN locally) are not set"


class GitHubClients:
    """One githubkit client per installation, built on first use and reused (connection pooling)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[int | None, GitHub[Any]] = {}
        self._installations: dict[str, int] = {}
        self._lock = threading.Lock()

    def for_installation(self, installation_id: int | None) -> GitHub[Any]:
        """The client acting for ``installation_id`` (the token client when no App is configured)."""
        with self._lock:
            key = installation_id if self._settings.github_token is None else None
            client = self._clients.get(key)
            if client is None:
                client = self._build(self._auth(installation_id))
                self._clients[key] = client
            return client

    def for_repo(self, repo: str | None) -> GitHub[Any]:
        """The client that may act on ``owner/repo``: the token client, or the App's installation there.

        Work started outside GitHub (HTTP, MCP, Teams, Service Bus) carries no installation id; with a GitHub
        App the installation is looked up once per repository through the App's own JWT and cached.
        """
        settings = self._settings
        if settings.github_token is not None or repo is None:
            return self.for_installation(None)
        with self._lock:
            installation = self._installations.get(repo)
        if installation is None:
            if not (settings.github_app_id and settings.github_app_private_key):
                raise ConfigurationError("GITHUB_APP_ID", _NO_CREDENTIALS)
            key = settings.github_app_private_key.get_secret_value()
            app = self._build(AppAuthStrategy(settings.github_app_id, key))
            owner, name = repo.split("/", 1)
            installation = int(app.rest.apps.get_repo_installation(owner, name).parsed_data.id)
            with self._lock:
                self._installations[repo] = installation
        return self.for_installation(installation)

    def for_app(self) -> GitHub[Any]:
        """A client acting as the GitHub App itself (JWT: ``/app/*`` endpoints); the token client locally."""
        settings = self._settings
        if settings.github_token is not None:
            return self.for_installation(None)
        if not (settings.github_app_id and settings.github_app_private_key):
            raise ConfigurationError("GITHUB_APP_ID", _NO_CREDENTIALS)
        with self._lock:
            client = self._clients.get(-1)
            if client is None:
                client = self._build(AppAuthStrategy(settings.github_app_id,
                                                     settings.github_app_private_key.get_secret_value()))
                self._clients[-1] = client
            return client

    def _auth(self, installation_id: int | None) -> BaseAuthStrategy:
        settings = self._settings
        if settings.github_token is not None:
            return TokenAuthStrategy(settings.github_token.get_secret_value())
        if settings.github_app_id and settings.github_app_private_key:
            if installation_id is None:
                raise ConfigurationError("GITHUB_APP_ID", "needs an installation id from the webhook payload")
            return AppInstallationAuthStrategy(
                settings.github_app_id, settings.github_app_private_key.get_secret_value(), installation_id
            )
        raise ConfigurationError("GITHUB_APP_ID", _NO_CREDENTIALS)

    def _build(self, auth: BaseAuthStrategy) -> GitHub[Any]:
        # githubkit has no default timeout and retries rate limits on its own: bound both. Secondary-limit
        # back-off belongs to the durable orchestration (timers), not to a sleeping worker.
        return GitHub(auth, base_url=self._settings.github_api_url, timeout=self._settings.github_timeout_seconds,
                      user_agent="reynolds", http_cache=False, auto_retry=False)
