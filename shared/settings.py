"""One typed settings object for the whole app.

Settings load once, lazily, from the process environment (Functions app settings arrive as environment
variables). Nothing reads the environment at import time; tests inject a ``Settings`` built from a dict.
Secrets are ``SecretStr`` so their ``repr`` is masked in logs and tracebacks.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.json_schema import JsonDict

from shared.errors import ConfigurationError

# Settings only a developer's machine uses (emulator keys, a personal token). Azure never gets them: the
# deployed app authenticates with its managed identity and the GitHub App. The settings contract test
# exempts exactly these from the Bicep side.
LOCAL_ONLY: JsonDict = {"local_only": True}


class Settings(BaseModel):
    """Every setting Reynolds reads. The alias is the app setting / environment variable name."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    # --- GitHub ---------------------------------------------------------------------------------------
    github_webhook_secret: SecretStr | None = Field(None, alias="GITHUB_WEBHOOK_SECRET")
    github_api_url: str = Field("https://api.github.com", alias="GITHUB_API_URL")
    github_token: SecretStr | None = Field(None, alias="GITHUB_TOKEN", json_schema_extra=LOCAL_ONLY)
    github_app_id: str | None = Field(None, alias="GITHUB_APP_ID")
    github_app_private_key: SecretStr | None = Field(None, alias="GITHUB_APP_PRIVATE_KEY")
    github_timeout_seconds: float = Field(10.0, alias="GITHUB_TIMEOUT_SECONDS", gt=0, le=120)

    # --- Reynolds' own identity and loop guard --------------------------------------------------------
    bot_login: str = Field("reynolds[bot]", alias="REYNOLDS_BOT_LOGIN")
    bot_app_id: str | None = Field(None, alias="REYNOLDS_BOT_APP_ID")
    marker_signing_key: SecretStr | None = Field(None, alias="REYNOLDS_MARKER_KEY")
    routing_profile: Literal["default", "reply-all"] = Field("default", alias="REYNOLDS_ROUTING_PROFILE")
    max_automated_depth: int = Field(4, alias="LOOP_MAX_AUTOMATED_DEPTH", ge=1, le=50)
    causal_window_seconds: int = Field(86400, alias="LOOP_CAUSAL_WINDOW_SECONDS", ge=60, le=30 * 86400)
    scope_window_seconds: int = Field(86400, alias="LOOP_SCOPE_WINDOW_SECONDS", ge=0, le=30 * 86400)
    chain_budget: int = Field(2, alias="LOOP_CHAIN_BUDGET", ge=1, le=1000)
    max_children: int = Field(2, alias="LOOP_MAX_CHILDREN", ge=1, le=100)
    breaker_window_seconds: int = Field(3600, alias="LOOP_BREAKER_WINDOW_SECONDS", ge=60, le=7 * 86400)
    breaker_target_max_writes: int = Field(20, alias="LOOP_TARGET_MAX_WRITES", ge=1, le=10000)
    breaker_counterpart_max_writes: int = Field(11, alias="LOOP_COUNTERPART_MAX_WRITES", ge=1, le=10000)
    breaker_counterpart_max_repeats: int = Field(2, alias="LOOP_COUNTERPART_MAX_REPEATS", ge=2, le=100)
    breaker_cooldown_seconds: int = Field(3600, alias="LOOP_BREAKER_COOLDOWN_SECONDS", ge=60, le=7 * 86400)
    breaker_fast_reply_seconds: int = Field(60, alias="LOOP_FAST_REPLY_SECONDS", ge=1, le=3600)
    breaker_counterpart_window_seconds: int = Field(86400, alias="LOOP_COUNTERPART_WINDOW_SECONDS", ge=60,
                                                    le=30 * 86400)
    dedupe_ttl_hours: int = Field(72, alias="LOOP_DEDUPE_TTL_HOURS", ge=72, le=24 * 30)
    lineage_ttl_days: int = Field(30, alias="LOOP_LINEAGE_TTL_DAYS", ge=1, le=3650)
    #: Organisations whose evidence is shared (``github:<owner>=teams:<tenant>;…``, see ``shared.loop.scopes``).
    loop_linked_scopes: str = Field("", alias="LOOP_LINKED_SCOPES", max_length=4000)
    #: The Teams tenant Reynolds posts in (its effects are filed under it); empty: one unnamed tenant.
    loop_teams_tenant_id: str | None = Field(None, alias="LOOP_TEAMS_TENANT_ID")

    # --- Lineage store --------------------------------------------------------------------------------
    lineage_store: Literal["memory", "cosmos"] = Field("cosmos", alias="LINEAGE_STORE")
    cosmos_endpoint: str | None = Field(None, alias="COSMOS__accountEndpoint")
    cosmos_key: SecretStr | None = Field(None, alias="COSMOS_EMULATOR_KEY", json_schema_extra=LOCAL_ONLY)
    cosmos_database: str = Field("reynolds", alias="COSMOS_DATABASE")
    cosmos_container: str = Field("lineage", alias="COSMOS_LINEAGE_CONTAINER")

    # --- Durable Functions ----------------------------------------------------------------------------
    task_hub_name: str = Field("reynolds", alias="TASK_HUB_NAME")

    # --- Azure OpenAI (offline deterministic planner when the endpoint is absent) ----------------------
    openai_endpoint: str | None = Field(None, alias="AZURE_OPENAI_ENDPOINT")
    openai_deployment: str = Field("chat", alias="AZURE_OPENAI_DEPLOYMENT")
    openai_timeout_seconds: float = Field(30.0, alias="AZURE_OPENAI_TIMEOUT_SECONDS", gt=0, le=300)
    openai_token_budget: int = Field(60000, alias="AZURE_OPENAI_TOKEN_BUDGET", ge=1000)
    #: How long a successful plan is reused for the same task (``shared.learning.plan_cache``); 0 turns it off.
    plan_cache_ttl_hours: int = Field(24, alias="PLAN_CACHE_TTL_HOURS", ge=0, le=24 * 30)
    tracking_repo: str | None = Field(None, alias="REYNOLDS_TRACKING_REPO")
    #: ``https://<app>/api``: status comments, paused notes and answers link chains to the explorer page.
    explorer_url: str | None = Field(None, alias="REYNOLDS_EXPLORER_URL")

    # --- Microsoft Teams and Graph ----------------------------------------------------------------------
    teams_webhook_token: SecretStr | None = Field(None, alias="TEAMS_OUTGOING_WEBHOOK_TOKEN")
    graph_client_state: SecretStr | None = Field(None, alias="GRAPH_CLIENT_STATE")
    graph_api_url: str = Field("https://graph.microsoft.com/v1.0", alias="GRAPH_API_URL")
    graph_notification_url: str | None = Field(None, alias="GRAPH_NOTIFICATION_URL")
    #: Comma-separated Graph resources the subscription timer keeps subscribed (``teams/{id}/channels/{id}/messages``).
    graph_subscription_resources: str | None = Field(None, alias="GRAPH_SUBSCRIPTION_RESOURCES")
    #: The Azure Bot's Microsoft App id (the app's user-assigned identity's client id, ``msaAppType:
    #: UserAssignedMSI``): the audience of the Bot Connector's tokens and the identity the bot posts as.
    teams_bot_app_id: str | None = Field(None, alias="TEAMS_BOT_APP_ID")
    #: Where the Bot Connector's signing keys are published; changed only to point at the local fake issuer.
    teams_bot_openid_url: str = Field("https://login.botframework.com/v1/.well-known/openidconfiguration",
                                      alias="TEAMS_BOT_OPENID_URL", json_schema_extra=LOCAL_ONLY)

    # --- Service Bus ------------------------------------------------------------------------------------
    servicebus_namespace: str | None = Field(None, alias="ServiceBusConnection__fullyQualifiedNamespace")
    servicebus_events_queue: str = Field("reynolds-events", alias="SERVICEBUS_EVENTS_QUEUE")
    servicebus_out_queue: str = Field("reynolds-out", alias="SERVICEBUS_OUT_QUEUE")

    # --- Identity and telemetry -------------------------------------------------------------------------
    azure_client_id: str | None = Field(None, alias="AZURE_CLIENT_ID")
    appinsights_connection_string: SecretStr | None = Field(None, alias="APPLICATIONINSIGHTS_CONNECTION_STRING")

    def require(self, field: str) -> str:
        """Return a configured setting's value, or raise ``ConfigurationError`` naming the app setting."""
        value = getattr(self, field)
        if value is None or value == "":
            raise ConfigurationError(alias_of(field))
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if not secret:
                raise ConfigurationError(alias_of(field))
            return secret
        return str(value)

    def missing(self) -> list[str]:
        """App settings that a production deployment needs and that are absent (for /api/health)."""
        needed = ["github_webhook_secret", "marker_signing_key"]
        if self.lineage_store == "cosmos":
            needed.append("cosmos_endpoint")
        if self.github_token is None and (self.github_app_id is None or self.github_app_private_key is None):
            needed.extend(["github_app_id", "github_app_private_key"])
        return [alias_of(name) for name in needed if getattr(self, name) in (None, "")]


def alias_of(field: str) -> str:
    """The app setting name behind a settings field."""
    alias = Settings.model_fields[field].alias
    return alias or field.upper()


def setting_names() -> list[str]:
    """Every app setting name the code reads (the settings contract with Bicep and the example file)."""
    return sorted(alias_of(name) for name in Settings.model_fields)


def local_only_setting_names() -> list[str]:
    """App settings meant for local runs only (see ``LOCAL_ONLY``)."""
    return sorted(
        alias_of(name)
        for name, info in Settings.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("local_only")
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping; raise ``ConfigurationError`` naming a bad setting."""
    env = os.environ if environ is None else environ
    names = set(setting_names())
    values = {key: value for key, value in env.items() if key in names and value != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = str(first["loc"][0]) if first["loc"] else "settings"
        raise ConfigurationError(loc, f"is invalid: {first['msg']}") from None


#: The file ``func start`` reads app settings from (its ``Values``), in the project root.
LOCAL_SETTINGS_FILE = "local.settings.json"


def local_settings_values(path: str | Path = LOCAL_SETTINGS_FILE) -> dict[str, str]:
    """The ``Values`` of a ``local.settings.json`` (empty when the file does not exist); ``ConfigurationError``
    naming the file when it is not the JSON object Core Tools reads."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(str(file), f"cannot be read as JSON ({type(exc).__name__})") from None
    values = data.get("Values") if isinstance(data, dict) else None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigurationError(f"{file}: Values", "must be a JSON object of setting names to strings")
    return {str(key): "" if value is None else str(value) for key, value in values.items()}


def app_environment(environ: Mapping[str, str] | None = None,
                    local_settings: str | Path | None = LOCAL_SETTINGS_FILE) -> dict[str, str]:
    """The app settings a local run sees: ``local.settings.json``'s ``Values`` under the process environment.

    The precedence is Core Tools': ``func start`` copies each value of ``Values`` into the environment only when
    the variable is not already set to a non-empty value (Azure/azure-functions-core-tools,
    ``StartHostAction.UpdateEnvironmentVariables``: "Skipping '<name>' from local settings as it's already defined
    in current environment variables").
    """
    env = dict(os.environ if environ is None else environ)
    merged = dict(local_settings_values(local_settings)) if local_settings is not None else {}
    merged.update({key: value for key, value in env.items() if value})
    return merged


_lock = threading.Lock()
_cached: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = load_settings()
        return _cached


def override_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests and tools); ``None`` reloads from the environment."""
    global _cached
    with _lock:
        _cached = settings
