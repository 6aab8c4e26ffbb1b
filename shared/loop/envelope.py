"""The event envelope: every ingress turns its input into this, and everything downstream reads only this.

Loop guard v3 (issue 19) names, agreed with the arena/world side through this docstring:

* ``EventEnvelope.occurred_at``: the event's OWN timestamp, as the platform stamped it: GitHub
  ``comment.created_at`` (``issue_comment``), ``issue.created_at`` (``issues.opened``), ``issue.updated_at``
  (other ``issues`` actions such as ``labeled``); Teams ``createdDateTime`` (Bot Framework ``timestamp``);
  Service Bus the broker's ``EnqueuedTimeUtc`` (a producer cannot set it; the CloudEvent ``time`` it can set is
  only used when there is no enqueued time). ``None`` when the platform gave none: the guard then uses
  ``time``. Causality ("could this actor have seen Reynolds' effect?") compares effect times with this, never
  with the decision time, so a backlog decided in a burst gets the verdicts it would have got live.
* ``Actor.id``: the actor's GLOBAL identity on its platform: GitHub account id (``sender.id``), Entra object id
  (Teams ``from.user.id`` / ``aadObjectId``), the Service Bus producer identity. ``Actor.global_key`` is the
  ``<namespace>:<id>`` string the guard keys per-actor evidence by (``github:<account id>``,
  ``entra:<object id>``, ``servicebus:<producer>``), the same in every organisation, tenant and namespace.

Attribute names follow CloudEvents 1.0 (``id``, ``source``, ``type``, ``subject``, ``time``, ``data``);
lineage (chain, parent, automated-hop depth) and the actor travel beside them. On the wire (Service Bus,
HTTP) the envelope is a structured-mode CloudEvent whose extension attributes carry the lineage
(``chainid``, ``parentid``, ``depth``, ``actorlogin``, ``actorkind``).

Keep ``data`` small: orchestration inputs above ~45 KB spill to blob storage and slow every replay, so
ingress puts a projection of the payload here (ids, target, a truncated text), never the whole payload.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT_CHARS = 4000


class ActorKind(StrEnum):
    """Who caused an event: a person, another automation, Reynolds itself, or the platform."""

    HUMAN = "human"
    BOT = "bot"
    SELF = "self"
    SYSTEM = "system"


class Platform(StrEnum):
    """Where an event happened or an effect was written."""

    GITHUB = "github"
    TEAMS = "teams"
    SERVICEBUS = "servicebus"
    HTTP = "http"


class Actor(BaseModel):
    """The identity behind an event, as the platform reports it."""

    model_config = ConfigDict(frozen=True)

    login: str | None = None
    id: str | None = None
    kind: ActorKind = ActorKind.HUMAN
    #: The platform's own word for the account type (GitHub ``User``/``Bot``/``Organization``).
    account_type: str | None = None
    #: GitHub ``author_association`` (OWNER, MEMBER, COLLABORATOR, …) where the platform gives one.
    association: str | None = None

    def global_key(self, platform: str) -> str | None:
        """The actor's global identity (``<namespace>:<id>``, see the module docstring), or None when unnamed."""
        if self.id:
            space = "entra" if platform == "teams" and self.account_type != "application" else platform
            return f"{space}:{self.id.lower()}"
        return f"{platform}:login:{self.login.lower()}" if self.login else None

    @property
    def automated(self) -> bool:
        """True for actors whose actions count as automated hops (bots, Reynolds, the platform)."""
        return self.kind is not ActorKind.HUMAN


class Lineage(BaseModel):
    """Where an event sits in its chain: filled in by the loop guard, carried by every effect."""

    model_config = ConfigDict(frozen=True)

    chain_id: str | None = None
    parent_id: str | None = None
    #: Automated hops since the last human action (a human action starts a fresh count at 0).
    depth: int = Field(0, ge=0)


class Target(BaseModel):
    """What an event is about and where a reply would go (an issue, a channel, a queue)."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    #: ``owner/repo#7`` on GitHub, ``teams:<team>/<channel>`` or a chat id, a queue name on Service Bus.
    key: str
    repo: str | None = None
    number: int | None = None
    installation_id: int | None = None


class EventEnvelope(BaseModel):
    """One event, whatever door it came in by."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime
    #: The event's own timestamp as its platform stamped it (see the module docstring); None: use ``time``.
    occurred_at: datetime | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)

    platform: Platform
    #: Platform event name and action, e.g. ``issue_comment`` / ``created``.
    event: str
    action: str | None = None
    actor: Actor
    target: Target | None = None
    #: The id of the resource this event is about (comment id, issue id, message id) on its platform.
    resource_id: str | None = None
    #: Visible text (comment or issue body, message text), truncated to ``MAX_TEXT_CHARS``.
    text: str = ""
    lineage: Lineage = Field(default_factory=Lineage)

    @property
    def when(self) -> datetime:
        """When the event happened: ``occurred_at`` if the platform stamped it, else ``time``."""
        return self.occurred_at or self.time

    @property
    def name(self) -> str:
        """``event.action`` (or the bare event name), the key of the routing table."""
        return f"{self.event}.{self.action}" if self.action else self.event


def truncate(text: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    """Clip text to ``limit`` characters, marking the cut."""
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
