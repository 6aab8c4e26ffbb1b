"""Scopes: where an automation can move, from one target up to configured linked organisations.

A loop guard keyed per issue or per repository is escaped by a bot that opens its next issue in another
repository of the same organisation, or posts in another team of the same tenant. Evidence is therefore kept
per **group**, the widest scope an automation moves in without crossing a trust boundary:

    target            owner/repo#7          teams:<team>/<channel>     reynolds-events
    container         owner/repo            teams:<team>               the queue
    organisation      github:<owner>        teams:<tenant>             servicebus:<namespace>
    group             the organisation, or the configured set of linked organisations it belongs to

Evidence never crosses a group boundary: what Reynolds wrote in one GitHub organisation is never evidence in
another one, unless both are linked in ``LOOP_LINKED_SCOPES`` (for example a GitHub organisation and the
Teams tenant a bridge copies it to). The link format is ``org=org=…`` per group, groups separated by ``;``,
each org written ``github:<owner>``, ``teams:<tenant id>`` or ``servicebus:<namespace>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.loop.envelope import EventEnvelope, Platform

DEFAULT = "default"


@dataclass(frozen=True)
class Scope:
    """Where one event happened or one effect was written, at every level."""

    platform: str
    target: str
    container: str
    org: str
    group: str

    @property
    def target_key(self) -> str:
        """The target qualified by its platform (targets of two platforms never collide)."""
        return f"{self.platform}:{self.target}"

    @property
    def container_key(self) -> str:
        """The container qualified by its platform."""
        return f"{self.platform}:{self.container}"


def container_of(target: str) -> str:
    """The container a target belongs to: ``owner/repo`` for ``owner/repo#7``, the team of a Teams channel."""
    if "#" in target:
        return target.split("#", 1)[0]
    if target.startswith("teams:") and "/" in target:
        return target.split("/", 1)[0]
    return target


def parse_links(spec: str | None) -> dict[str, str]:
    """``LOOP_LINKED_SCOPES`` as a map organisation → group key (the sorted members joined by ``+``)."""
    links: dict[str, str] = {}
    for part in (spec or "").split(";"):
        members = sorted({m.strip().lower() for m in part.split("=") if m.strip()})
        if len(members) < 2:
            continue
        key = "link:" + "+".join(members)
        for member in members:
            links[member] = key
    return links


class ScopeMap:
    """Maps targets and events to their scopes (pure; built once from settings)."""

    def __init__(self, *, links: Mapping[str, str] | None = None, teams_tenant: str | None = None,
                 servicebus_namespace: str | None = None) -> None:
        self.links = dict(links or {})
        self.teams_tenant = (teams_tenant or DEFAULT).lower()
        self.servicebus_namespace = (servicebus_namespace or DEFAULT).lower()

    def org_of(self, platform: str, target: str, tenant: str | None = None) -> str:
        """The organisation a target belongs to (``tenant`` overrides the configured Teams tenant)."""
        if platform == Platform.GITHUB.value:
            owner = target.split("/", 1)[0] if "/" in target else target
            return f"github:{owner.lower()}"
        if platform == Platform.TEAMS.value:
            return f"teams:{(tenant or self.teams_tenant).lower()}"
        if platform == Platform.SERVICEBUS.value:
            return f"servicebus:{self.servicebus_namespace}"
        return f"{platform}:{DEFAULT}"

    def of_target(self, platform: str, target: str, tenant: str | None = None) -> Scope:
        """The scope of ``target`` on ``platform`` (how effects are filed)."""
        org = self.org_of(platform, target, tenant)
        return Scope(platform, target, container_of(target), org, self.links.get(org, org))

    def of_event(self, event: EventEnvelope) -> Scope | None:
        """The scope of an event, or None when it names no target."""
        if event.target is None:
            return None
        tenant = None
        if event.platform is Platform.TEAMS:
            tenant = _tenant_of(event)
            if tenant and self.teams_tenant != DEFAULT and tenant.lower() != self.teams_tenant:
                return self.of_target(event.platform.value, event.target.key, tenant)
            tenant = None
        return self.of_target(event.platform.value, event.target.key, tenant)


def _tenant_of(event: EventEnvelope) -> str | None:
    tenant = event.data.get("tenant_id") if isinstance(event.data, dict) else None
    if isinstance(tenant, str) and tenant:
        return tenant
    prefix, _, last = event.source.rpartition("/")
    return last if prefix and last and last != "unknown-tenant" else None
