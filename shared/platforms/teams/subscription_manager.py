"""Graph subscriptions for Teams messages: list, create, renew, reauthorize and delete Reynolds' own.

Channel and chat message subscriptions without resource data live at most 60 minutes; ``SubscriptionManager``
asks for 55 (``DEFAULT_LIFETIME``) so clock skew cannot push a request over the limit, and renews when less than
``DEFAULT_RENEW_WITHIN`` is left. A ``lifecycleNotificationUrl`` is mandatory only above one hour; it is sent
whenever one is known anyway, because it also brings ``subscriptionRemoved`` and ``missed`` events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from msgraph import GraphServiceClient
from msgraph.generated.models.subscription import Subscription

from shared.errors import ConfigurationError, IncomingRequestError
from shared.platforms.teams.graph import (
    DEFAULT_LIFETIME,
    DEFAULT_RENEW_WITHIN,
    LIFECYCLE_URL_REQUIRED_ABOVE,
    MAX_CLIENT_STATE_CHARS,
    Clock,
    GraphError,
    GraphThrottled,
    graph_call,
    utc_now,
)
from shared.platforms.teams.notifications import LifecycleEvent, LifecycleNotification
from shared.settings import Settings, alias_of

logger = logging.getLogger(__name__)


# --- subscriptions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphSubscription:
    """What Reynolds keeps of a Graph subscription (never the clientState)."""

    id: str
    resource: str
    change_type: str
    expiration: datetime | None
    notification_url: str | None
    lifecycle_notification_url: str | None = None

    @classmethod
    def of(cls, sub: Subscription) -> GraphSubscription:
        """Project an msgraph ``Subscription``."""
        return cls(
            id=str(sub.id),
            resource=str(sub.resource or ""),
            change_type=str(sub.change_type or ""),
            expiration=sub.expiration_date_time,
            notification_url=sub.notification_url,
            lifecycle_notification_url=sub.lifecycle_notification_url,
        )


def _norm_resource(resource: str) -> str:
    return resource.strip().strip("/").lower()


class SubscriptionManager:
    """Create, renew, reauthorize and recreate Graph subscriptions for Teams messages, via msgraph-sdk.

    Only subscriptions whose ``notificationUrl`` is Reynolds' own are touched. Lifetime: ``lifetime``
    (default 55 min, under Graph's 60-minute cap for message subscriptions without resource data).
    """

    def __init__(
        self,
        client: GraphServiceClient,
        settings: Settings,
        clock: Clock = utc_now,
        *,
        lifetime: timedelta = DEFAULT_LIFETIME,
        change_type: str = "created",
        lifecycle_url: str | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._lifetime = lifetime
        self._change_type = change_type
        self._lifecycle_url = lifecycle_url

    @property
    def notification_url(self) -> str:
        """Where Graph posts notifications (``GRAPH_NOTIFICATION_URL``)."""
        return self._settings.require("graph_notification_url")

    def _client_state(self) -> str:
        state = self._settings.require("graph_client_state")
        if len(state) > MAX_CLIENT_STATE_CHARS:
            raise ConfigurationError(alias_of("graph_client_state"), f"is longer than {MAX_CLIENT_STATE_CHARS}")
        return state

    def _expiry(self) -> datetime:
        return self._clock() + self._lifetime

    async def list_ours(self) -> list[GraphSubscription]:
        """Reynolds' subscriptions (those that notify its own URL), following ``@odata.nextLink`` pages."""
        ours = self.notification_url
        found: list[GraphSubscription] = []
        page = await graph_call(self._client.subscriptions.get())
        while page is not None:
            found.extend(GraphSubscription.of(s) for s in page.value or [] if s.notification_url == ours)
            if not page.odata_next_link:
                break
            page = await graph_call(self._client.subscriptions.with_url(page.odata_next_link).get())
        return found

    async def create(self, resource: str) -> GraphSubscription:
        """POST /subscriptions for ``resource`` with clientState, notification and lifecycle URLs."""
        lifecycle = self._lifecycle_url or self.notification_url
        if self._lifetime > LIFECYCLE_URL_REQUIRED_ABOVE and not lifecycle:
            raise ConfigurationError(alias_of("graph_notification_url"), "is needed as lifecycle URL above 1 h")
        body = Subscription(
            change_type=self._change_type,
            notification_url=self.notification_url,
            lifecycle_notification_url=lifecycle,
            resource=resource,
            expiration_date_time=self._expiry(),
            client_state=self._client_state(),
        )
        created = await graph_call(self._client.subscriptions.post(body))
        if created is None:
            raise GraphError(None, "emptyResponse", "Graph returned no subscription")
        logger.info("graph subscription %s created for %s", created.id, resource)
        return GraphSubscription.of(created)

    async def renew(self, subscription_id: str) -> GraphSubscription:
        """PATCH the subscription's ``expirationDateTime`` to a full lifetime from now."""
        body = Subscription(expiration_date_time=self._expiry())
        updated = await graph_call(self._client.subscriptions.by_subscription_id(subscription_id).patch(body))
        if updated is None:
            raise GraphError(None, "emptyResponse", "Graph returned no subscription")
        return GraphSubscription.of(updated)

    async def delete(self, subscription_id: str) -> None:
        """DELETE the subscription; one that is already gone counts as deleted."""
        try:
            await graph_call(self._client.subscriptions.by_subscription_id(subscription_id).delete())
        except GraphError as exc:
            if exc.status_code != 404:
                raise

    async def ensure(self, resource: str, *, renew_within: timedelta = DEFAULT_RENEW_WITHIN) -> GraphSubscription:
        """Make sure one live subscription exists for ``resource``: reuse, renew if close to expiry, or create."""
        wanted = _norm_resource(resource)
        deadline = self._clock() + renew_within
        for sub in await self.list_ours():
            if _norm_resource(sub.resource) != wanted:
                continue
            if sub.expiration is not None and sub.expiration > deadline:
                return sub
            try:
                return await self.renew(sub.id)
            except GraphError as exc:
                if exc.status_code != 404 or isinstance(exc, GraphThrottled):
                    raise
        return await self.create(resource)

    async def renew_expiring(self, within: timedelta = DEFAULT_RENEW_WITHIN) -> list[GraphSubscription]:
        """Renew every Reynolds subscription expiring within ``within``; return the renewed ones."""
        deadline = self._clock() + within
        renewed = []
        for sub in await self.list_ours():
            if sub.expiration is None or sub.expiration <= deadline:
                renewed.append(await self.renew(sub.id))
        return renewed

    async def reauthorize(self, subscription_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize (answer to ``reauthorizationRequired``)."""
        await graph_call(self._client.subscriptions.by_subscription_id(subscription_id).reauthorize.post())

    async def recreate(self, resource: str) -> GraphSubscription:
        """Delete whatever Reynolds has on ``resource`` and create a fresh subscription (``subscriptionRemoved``)."""
        wanted = _norm_resource(resource)
        for sub in await self.list_ours():
            if _norm_resource(sub.resource) == wanted:
                await self.delete(sub.id)
        return await self.create(resource)

    async def handle_lifecycle(
        self, event: LifecycleNotification, resource: str | None = None
    ) -> GraphSubscription | None:
        """Act on a lifecycle event: reauthorize and renew, recreate, or (``missed``) nothing.

        ``resource`` defaults to the one the notification names. ``missed`` means notifications were lost:
        the caller resynchronises the resource (Graph delta query); nothing is done here.
        """
        resource = resource or event.resource
        if resource is None and event.event is not LifecycleEvent.MISSED:
            raise IncomingRequestError("lifecycle notification names no resource")
        if event.event is LifecycleEvent.REAUTHORIZATION_REQUIRED:
            try:
                await self.reauthorize(event.subscription_id)
                return await self.renew(event.subscription_id)
            except GraphError as exc:
                if exc.status_code != 404 or isinstance(exc, GraphThrottled):
                    raise
                return await self.recreate(str(resource))
        if event.event is LifecycleEvent.SUBSCRIPTION_REMOVED:
            return await self.recreate(str(resource))
        return None
