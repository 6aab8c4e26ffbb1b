"""Graph: validation, notifications, subscriptions and posting through the real msgraph-sdk against FakeGraph."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from msgraph import GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.chat_message import ChatMessage
from msgraph.generated.models.item_body import ItemBody

from shared.errors import ConfigurationError, IncomingRequestError
from shared.loop.envelope import ActorKind, Platform
from shared.loop.marker import hidden_marker
from shared.platforms.teams.graph import GraphError, GraphThrottled, make_graph_client, parse_retry_after
from shared.platforms.teams.messages import fetch_message, status_card
from shared.platforms.teams.notifications import (
    LifecycleEvent,
    MessageKind,
    handle_validation,
    notification_to_envelope,
    parse_message_resource,
    parse_notifications,
)
from shared.platforms.teams.subscription_manager import SubscriptionManager
from shared.settings import Settings
from tools.fakes.graph import APP_ONLY_POST_MESSAGE, FakeGraph

CLIENT_STATE = "s3cret-client-state"
NOTIFY_URL = "https://reynolds.example.net/api/graph/notifications"
TEAM = "0c5cfdbb-596f-4d39-b557-5d9516c94107"
CHANNEL = "19:561fbdbbfca848a484f0a6f00ce9dbbd@thread.tacv2"
CHAT = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A settable clock shared by the fake and the code under test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class StaticToken:
    """An async ``TokenCredential`` that hands out one token and records the scopes asked for."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(NOW.timestamp()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticToken:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def settings() -> Settings:
    return Settings.model_validate({"GRAPH_CLIENT_STATE": CLIENT_STATE, "GRAPH_NOTIFICATION_URL": NOTIFY_URL})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeGraph]:
    with FakeGraph(clock=clock, validator=handle_validation, require_token="test-token") as server:
        yield server
    assert not server.unexpected, server.unexpected


@pytest.fixture
async def client(settings: Settings, fake: FakeGraph) -> AsyncIterator[GraphServiceClient]:
    graph = make_graph_client(settings, credential=StaticToken(), base_url=fake.base_url)
    yield graph
    await graph.request_adapter._http_client.aclose()


# --- validation handshake and notification parsing ---------------------------------------------------------


def test_validation_echoes_token_as_plain_text() -> None:
    request = FakeGraph.validation_request(NOTIFY_URL, token="Validation: Testing client application reachability")
    assert request.method == "POST"
    assert request.url.startswith(NOTIFY_URL + "?validationToken=Validation%3A%20Testing")
    assert handle_validation(request.token) == (200, request.token, "text/plain")


def test_validation_without_token_is_400() -> None:
    status, _, content_type = handle_validation(None)
    assert (status, content_type) == (400, "text/plain")
    assert handle_validation("")[0] == 400


def _notification(client_state: str, **extra: Any) -> dict[str, Any]:
    resource = f"teams('{TEAM}')/channels('{CHANNEL}')/messages('1612289765949')"
    item = {
        "subscriptionId": "sub-1",
        "clientState": client_state,
        "changeType": "created",
        "resource": resource,
        "resourceData": {"id": "1612289765949", "@odata.type": "#Microsoft.Graph.chatMessage", "@odata.id": resource},
        "subscriptionExpirationDateTime": "2026-03-02T09:55:00Z",
        "tenantId": "tenant-1",
    }
    item.update(extra)
    return item


def test_client_state_mismatch_is_dropped_and_counted() -> None:
    body = {"value": [_notification(CLIENT_STATE), _notification("forged"), _notification(CLIENT_STATE[:-1])]}
    batch = parse_notifications(json.dumps(body).encode(), CLIENT_STATE)
    assert batch.rejected == 2
    assert len(batch.changes) == 1
    change = batch.changes[0]
    assert change.message.kind is MessageKind.CHANNEL
    assert (change.message.team_id, change.message.channel_id, change.message.message_id) == (
        TEAM,
        CHANNEL,
        "1612289765949",
    )


def test_missing_client_state_item_is_rejected_not_raised() -> None:
    item = _notification(CLIENT_STATE)
    del item["clientState"]
    batch = parse_notifications(json.dumps({"value": [item]}).encode(), CLIENT_STATE)
    assert (batch.rejected, batch.changes) == (1, [])


def test_unconfigured_client_state_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        parse_notifications(b'{"value": []}', None)


def test_malformed_notification_body_is_400() -> None:
    with pytest.raises(IncomingRequestError) as err:
        parse_notifications(b"not json", CLIENT_STATE)
    assert err.value.status_code == 400
    with pytest.raises(IncomingRequestError):
        parse_notifications(b'{"nope": 1}', CLIENT_STATE)


def test_lifecycle_events_are_classified() -> None:
    items = [
        {"subscriptionId": "s1", "clientState": CLIENT_STATE, "lifecycleEvent": "reauthorizationRequired"},
        {"subscriptionId": "s2", "clientState": CLIENT_STATE, "lifecycleEvent": "subscriptionRemoved"},
        {"subscriptionId": "s3", "clientState": CLIENT_STATE, "lifecycleEvent": "missed"},
        {"subscriptionId": "s4", "clientState": CLIENT_STATE, "lifecycleEvent": "somethingNew"},
        {"subscriptionId": "s5", "clientState": "wrong", "lifecycleEvent": "subscriptionRemoved"},
        _notification(CLIENT_STATE),
    ]
    batch = parse_notifications(json.dumps({"value": items}).encode(), CLIENT_STATE)
    assert [(n.subscription_id, n.event) for n in batch.lifecycle] == [
        ("s1", LifecycleEvent.REAUTHORIZATION_REQUIRED),
        ("s2", LifecycleEvent.SUBSCRIPTION_REMOVED),
        ("s3", LifecycleEvent.MISSED),
    ]
    assert (len(batch.changes), batch.ignored, batch.rejected) == (1, 1, 1)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (f"chats('{CHAT}')/messages('42')", (MessageKind.CHAT, "42", None)),
        (f"teams('{TEAM}')/channels('{CHANNEL}')/messages('1')/replies('2')", (MessageKind.CHANNEL, "2", "1")),
        (f"/teams/{TEAM}/channels/{CHANNEL}/messages/7", (MessageKind.CHANNEL, "7", None)),
    ],
)
def test_message_resources_parse(resource: str, expected: tuple[MessageKind, str, str | None]) -> None:
    ref = parse_message_resource(resource)
    assert ref is not None
    assert (ref.kind, ref.message_id, ref.reply_to_id) == expected
    assert parse_message_resource(ref.resource) == ref


def test_unknown_resource_is_ignored() -> None:
    item = _notification(CLIENT_STATE, resource="users('x')/messages('y')", resourceData={})
    batch = parse_notifications(json.dumps({"value": [item]}).encode(), CLIENT_STATE)
    assert (batch.changes, batch.ignored) == ([], 1)
    assert parse_message_resource("users('x')/events('y')") is None


def test_notification_envelope_shares_the_webhook_event_id() -> None:
    batch = parse_notifications(json.dumps({"value": [_notification(CLIENT_STATE)]}).encode(), CLIENT_STATE)
    envelope = notification_to_envelope(batch.changes[0], received_at=NOW)
    assert envelope.id == "teams:1612289765949"
    assert envelope.platform is Platform.TEAMS
    assert envelope.target is not None
    assert envelope.target.key == f"teams:{TEAM}/{CHANNEL}"
    assert envelope.actor.kind is ActorKind.SYSTEM
    assert envelope.data["subscription_id"] == "sub-1"


def test_retry_after_parses_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 02 Mar 2026 09:00:30 GMT", now=NOW) == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


# --- subscriptions through msgraph-sdk ---------------------------------------------------------------------


async def test_client_sends_bearer_token_over_loopback_http(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient
) -> None:
    manager = SubscriptionManager(client, settings, Clock())
    assert await manager.list_ours() == []
    (request,) = fake.requests_to("GET", r"^/v1\.0/subscriptions$")
    assert request.headers["Authorization"] == "Bearer test-token"
    credential = client.request_adapter._authentication_provider.access_token_provider._credentials
    assert credential.scopes == [("https://graph.microsoft.com/.default",)]


async def test_anonymous_provider_reaches_the_fake(settings: Settings, clock: Clock) -> None:
    with FakeGraph(clock=clock) as server:
        graph = make_graph_client(settings, base_url=server.base_url, auth_provider=AnonymousAuthenticationProvider())
        message = server.post_as_user("<p>hi</p>", chat=CHAT)
        envelope = await fetch_message(graph, f"chats('{CHAT}')/messages('{message['id']}')")
        assert envelope.resource_id == message["id"]
        assert "Authorization" not in server.requests[-1].headers
        await graph.request_adapter._http_client.aclose()


async def test_ensure_creates_subscription_with_state_urls_and_lifetime(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock)
    resource = f"/teams/{TEAM}/channels/{CHANNEL}/messages"
    sub = await manager.ensure(resource)

    (post,) = fake.requests_to("POST", r"^/v1\.0/subscriptions$")
    assert post.json["clientState"] == CLIENT_STATE
    assert post.json["notificationUrl"] == NOTIFY_URL
    assert post.json["lifecycleNotificationUrl"] == NOTIFY_URL
    assert post.json["changeType"] == "created"
    assert post.json["resource"] == resource
    assert sub.expiration == NOW + timedelta(minutes=55)
    assert fake.subscriptions[sub.id]["clientState"] == CLIENT_STATE

    # A second ensure reuses the live subscription.
    again = await manager.ensure(resource)
    assert again.id == sub.id
    assert len(fake.requests_to("POST", r"^/v1\.0/subscriptions$")) == 1


async def test_fake_rejects_lifetimes_graph_rejects(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock, lifetime=timedelta(hours=3))
    with pytest.raises(GraphError) as err:
        await manager.create(f"/chats/{CHAT}/messages")
    assert err.value.status_code == 400
    assert err.value.code == "ExtensionError"
    assert not isinstance(err.value, GraphThrottled)


async def test_client_state_too_long_is_a_configuration_error(fake: FakeGraph, clock: Clock) -> None:
    settings = Settings.model_validate({"GRAPH_CLIENT_STATE": "x" * 129, "GRAPH_NOTIFICATION_URL": NOTIFY_URL})
    graph = make_graph_client(settings, credential=StaticToken(), base_url=fake.base_url)
    with pytest.raises(ConfigurationError):
        await SubscriptionManager(graph, settings, clock).create(f"/chats/{CHAT}/messages")
    await graph.request_adapter._http_client.aclose()


async def test_failed_validation_handshake_fails_creation(settings: Settings, clock: Clock) -> None:
    with FakeGraph(clock=clock, validator=lambda token: (200, token + "x", "text/plain")) as server:
        graph = make_graph_client(settings, credential=StaticToken(), base_url=server.base_url)
        with pytest.raises(GraphError) as err:
            await SubscriptionManager(graph, settings, clock).create(f"/chats/{CHAT}/messages")
        assert err.value.code == "ValidationError"
        assert server.subscriptions == {}
        await graph.request_adapter._http_client.aclose()


async def test_renew_expiring_patches_only_close_ones(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock)
    early = await manager.create(f"/chats/{CHAT}/messages")
    clock.now = NOW + timedelta(minutes=30)
    late = await manager.create(f"/teams/{TEAM}/channels/{CHANNEL}/messages")
    clock.now = NOW + timedelta(minutes=45)  # early expires in 10 min, late in 40

    renewed = await manager.renew_expiring(timedelta(minutes=15))

    assert [s.id for s in renewed] == [early.id]
    (patch,) = fake.requests_to("PATCH", r"^/v1\.0/subscriptions/")
    assert patch.path.endswith(early.id)
    assert set(patch.json) <= {"expirationDateTime", "@odata.type"}
    assert renewed[0].expiration == clock.now + timedelta(minutes=55)
    assert fake.subscriptions[late.id]["expirationDateTime"].startswith("2026-03-02T10:25")


async def test_ensure_renews_a_subscription_close_to_expiry(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock)
    sub = await manager.create(f"/chats/{CHAT}/messages")
    clock.now = NOW + timedelta(minutes=50)
    renewed = await manager.ensure(f"chats/{CHAT}/messages")
    assert renewed.id == sub.id
    assert len(fake.requests_to("PATCH", sub.id)) == 1


async def test_reauthorize_and_recreate_through_lifecycle(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock)
    resource = f"/chats/{CHAT}/messages"
    sub = await manager.create(resource)

    payload = fake.lifecycle_notification(sub.id, "reauthorizationRequired")
    (event,) = parse_notifications(json.dumps(payload).encode(), CLIENT_STATE).lifecycle
    assert event.event is LifecycleEvent.REAUTHORIZATION_REQUIRED
    await manager.handle_lifecycle(event, resource)
    assert fake.requests_to("POST", rf"/subscriptions/{sub.id}/reauthorize$")
    assert fake.subscriptions[sub.id]["reauthorizedCount"] == 1

    payload = fake.lifecycle_notification(sub.id, "subscriptionRemoved")
    (removed,) = parse_notifications(json.dumps(payload).encode(), CLIENT_STATE).lifecycle
    fresh = await manager.handle_lifecycle(removed)  # the resource comes from the notification
    assert fresh is not None
    assert fresh.id != sub.id
    assert list(fake.subscriptions) == [fresh.id]
    assert fake.requests_to("DELETE", sub.id)

    missed = fake.lifecycle_notification(fresh.id, "missed")
    (event,) = parse_notifications(json.dumps(missed).encode(), CLIENT_STATE).lifecycle
    assert await manager.handle_lifecycle(event, resource) is None


async def test_recreate_after_subscription_vanished(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock)
    resource = f"/chats/{CHAT}/messages"
    sub = await manager.create(resource)
    fake.subscriptions.clear()  # Graph removed it on its side
    fresh = await manager.recreate(resource)
    assert fresh.id != sub.id
    await manager.delete(sub.id)  # already gone: no error
    assert fake.requests_to("DELETE", sub.id)


async def test_throttling_surfaces_retry_after_without_sdk_retries(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    fake.fail_next(429, method="POST", path=r"/subscriptions$", retry_after=17)
    with pytest.raises(GraphThrottled) as err:
        await SubscriptionManager(client, settings, clock).create(f"/chats/{CHAT}/messages")
    assert err.value.retry_after == 17.0
    assert err.value.status_code == 429
    assert err.value.code == "TooManyRequests"
    # The SDK's retry handler is off: exactly one request went out, and nothing slept.
    assert len(fake.requests_to("POST", r"/subscriptions$")) == 1


async def test_throttling_on_read_and_503_with_retry_after(fake: FakeGraph, client: GraphServiceClient) -> None:
    message = fake.post_as_user("<p>hi</p>", chat=CHAT)
    resource = f"chats('{CHAT}')/messages('{message['id']}')"
    fake.fail_next(429, method="GET", path="/messages/")
    with pytest.raises(GraphThrottled) as err:
        await fetch_message(client, resource)
    assert err.value.retry_after == 10.0  # Graph gave no Retry-After: the documented default
    fake.fail_next(503, path="/messages/", retry_after=3)
    with pytest.raises(GraphThrottled) as err:
        await fetch_message(client, resource)
    assert (err.value.status_code, err.value.retry_after) == (503, 3.0)
    assert len(fake.requests_to("GET", "/messages/")) == 2


# --- Graph refuses app-only message posts; the bot's messages read back like any other -----------------------


def _message(html: str) -> ChatMessage:
    return ChatMessage(body=ItemBody(content_type=BodyType.Html, content=html))


async def test_app_only_message_posts_are_refused_as_graph_refuses_them(
    fake: FakeGraph, client: GraphServiceClient
) -> None:
    root = fake.post_as_user("<p>please deploy</p>", team=TEAM, channel=CHANNEL)
    messages = client.teams.by_team_id(TEAM).channels.by_channel_id(CHANNEL).messages
    posts = [messages.post(_message("<p>a</p>")),
             messages.by_chat_message_id(root["id"]).replies.post(_message("<p>b</p>")),
             client.chats.by_chat_id(CHAT).messages.post(_message("<p>c</p>"))]
    for post in posts:
        with pytest.raises(APIError) as err:
            await post
        assert err.value.response_status_code == 401
    assert len(fake.requests_to("POST", r"/(messages|replies)$")) == 3
    assert len(fake.messages[("channel", TEAM, CHANNEL)]) == 1  # nothing stored but the person's message
    assert ("chat", CHAT) not in fake.messages
    assert not fake.outbox or all(  # no notification for a refused post
        item["resourceData"]["id"] == root["id"] for payload in fake.outbox for item in payload["value"])


async def test_the_refusal_has_graphs_status_code_and_message(fake: FakeGraph) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.post(f"{fake.base_url}/chats/{CHAT}/messages",
                                   json={"body": {"contentType": "html", "content": "<p>hi</p>"}},
                                   headers={"Authorization": f"Bearer {fake.require_token}"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("Unauthorized", APP_ONLY_POST_MESSAGE)
    assert error["message"].startswith("Message POST is allowed in application-only context only for import purposes")
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


async def test_a_migration_channel_accepts_an_import(fake: FakeGraph, client: GraphServiceClient) -> None:
    fake.migration.add(("channel", TEAM, CHANNEL))
    posted = await client.teams.by_team_id(TEAM).channels.by_channel_id(CHANNEL).messages.post(
        _message("<p>imported</p>"))
    assert posted is not None
    assert posted.id in fake.messages[("channel", TEAM, CHANNEL)]


async def test_a_bots_message_notifies_and_reads_back_with_the_bot_as_author(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    manager = SubscriptionManager(client, settings, clock)
    sub = await manager.ensure(f"/teams/{TEAM}/channels/{CHANNEL}/messages")
    root = fake.post_as_user("<p>please deploy</p>", team=TEAM, channel=CHANNEL)
    fake.outbox.clear()
    marker = hidden_marker("key", "chain-9", "github:delivery-1", 1)
    reply = fake.post_as_bot("bot-app", f"<p>Done: <b>3</b> checks</p>{marker}", team=TEAM, channel=CHANNEL,
                             reply_to=root["id"])

    # Graph tells Reynolds about its own message, like any other.
    (payload,) = fake.outbox
    (item,) = payload["value"]
    assert (item["subscriptionId"], item["changeType"]) == (sub.id, "created")
    batch = parse_notifications(json.dumps(payload).encode(), CLIENT_STATE)
    (change,) = batch.changes
    envelope = await fetch_message(client, change.resource)
    assert envelope.id == f"teams:{reply['id']}"
    assert envelope.text == "Done: 3 checks"
    assert envelope.data["markers"] == [marker]
    assert envelope.data["reply_to_id"] == root["id"]
    assert (envelope.actor.id, envelope.actor.kind) == ("bot-app", ActorKind.BOT)
    assert not fake.requests_to("POST", r"/messages$")


async def test_chat_message_fetch_gives_human_actor(fake: FakeGraph, client: GraphServiceClient) -> None:
    message = fake.post_as_user("<div>ship it <at id='0'>Reynolds</at></div>", chat=CHAT)
    envelope = await fetch_message(client, f"chats('{CHAT}')/messages('{message['id']}')")
    assert envelope.actor.kind is ActorKind.HUMAN
    assert envelope.actor.id == "11111111-2222-3333-4444-555555555555"
    assert envelope.target is not None
    assert envelope.target.key == CHAT
    assert envelope.text == "ship it Reynolds"
    assert envelope.data["markers"] == []


async def test_fetch_unknown_message_is_graph_404(client: GraphServiceClient) -> None:
    with pytest.raises(GraphError) as err:
        await fetch_message(client, f"chats('{CHAT}')/messages('404')")
    assert err.value.status_code == 404


async def test_fake_notifies_only_matching_subscriptions(
    settings: Settings, fake: FakeGraph, client: GraphServiceClient, clock: Clock
) -> None:
    await SubscriptionManager(client, settings, clock).ensure(f"/chats/{CHAT}/messages")
    fake.post_as_user("<p>elsewhere</p>", chat="19:other@thread.v2")
    assert fake.outbox == []
    message = fake.post_as_user("<p>here</p>", chat=CHAT)
    assert fake.notifications_for(message)["value"][0]["resource"] == f"chats('{CHAT}')/messages('{message['id']}')"
    assert len(fake.outbox) == 1


async def test_unknown_route_is_recorded(settings: Settings, clock: Clock) -> None:
    with FakeGraph(clock=clock) as server:
        graph = make_graph_client(settings, base_url=server.base_url, auth_provider=AnonymousAuthenticationProvider())
        with pytest.raises(APIError) as err:
            await graph.me.get()
        assert err.value.response_status_code == 404
        assert [r.path for r in server.unexpected] == ["/v1.0/me"]
        await graph.request_adapter._http_client.aclose()


def test_status_card_is_an_adaptive_card() -> None:
    card = status_card("Run", [("a", "failed"), ("b", "weird")])
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    facts = card["body"][1]["facts"]
    assert facts == [{"title": "a", "value": "❌ failed"}, {"title": "b", "value": "• weird"}]
