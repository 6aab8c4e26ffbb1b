"""The Teams bot door (``POST /api/messages``) end to end through ``tools.simulate`` bot items, the Bot Framework
token checks one by one, conversation references, and the Bot Connector client against the fake connector."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from shared.errors import IncomingRequestError, SignatureError
from shared.loop.marker import find_markers
from shared.platforms.teams.bot import set_bot_runtime
from shared.platforms.teams.bot_auth import MIN_REFRESH_SECONDS, BotTokenValidator
from shared.platforms.teams.bot_references import BotReferences, ConversationReference
from shared.platforms.teams.connector import BotConnector, BotConnectorError, BotConnectorThrottled, BotPoster
from shared.settings import Settings
from shared.store.memory import MemoryStore
from tools.fakes.bot import FakeBotConnector, FakeTokenIssuer
from tools.simulate_bot import SIMULATE_BOT_APP_ID, bot_stage, run_bot
from tools.world import World, build_world, call_function

SERVICE_URL = "https://smba.trafficmanager.net/amer/"
CHANNEL = "19:general@thread.tacv2"
CONVERSATION = f"{CHANNEL};messageid=1700000000001"


def message(activity_id: str = "1700000000001", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "id": activity_id, "timestamp": "2026-12-08T02:00:00.000Z", "channelId": "msteams",
            "serviceUrl": SERVICE_URL, "from": {"id": "29:ada", "name": "Ada", "aadObjectId": "aad-ada"},
            "recipient": {"id": f"28:{SIMULATE_BOT_APP_ID}", "name": "Reynolds"},
            "conversation": {"id": CONVERSATION, "conversationType": "channel", "tenantId": "tenant-1"},
            "channelData": {"team": {"id": "19:team@thread.tacv2", "aadGroupId": "group-1"},
                            "channel": {"id": "19:general@thread.tacv2"}, "tenant": {"id": "tenant-1"}},
            "text": "<at>Reynolds</at> please triage the login bug", **extra}


def item(body: Any, claims: dict[str, Any] | None = None, authorization: str | None = "Bearer auto"
         ) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    out: dict[str, Any] = {"source": "bot", "headers": headers, "body": body}
    if claims is not None:
        out["token_claims"] = claims
    return out


@pytest.fixture
def world() -> Iterator[World]:
    with build_world() as w:
        yield w


def run(world: World, entry: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(run_bot(world, entry))


def stored(world: World) -> int:
    assert isinstance(world.store, MemoryStore)
    return len(world.store._docs)  # the memory store's documents: nothing may be written by a refused delivery


# -- acceptance: a valid token is accepted and answered through the connector ----------------------------------
def test_valid_token_is_accepted_and_answered_in_the_thread_through_the_connector(world: World) -> None:
    line = run(world, item(message()))
    assert (line["status"], line["verdict"]) == (200, "accepted")
    assert line["chain_id"]
    assert line["instance_id"]
    stage = bot_stage(world)
    bot_posts = [e for e in line["effects"] if e.get("via") == "bot"]
    assert len(bot_posts) == 1
    # Posted once, by the reply orchestration (the door posts nothing), in the channel's conversation as a reply
    # in the thread of the message that asked.
    assert bot_posts[0]["target"] == CHANNEL
    assert len(stage.connector.activities) == 1
    posted = stage.connector.activities[-1]
    assert posted.reply_to_id == "1700000000001"
    assert posted.activity["replyToId"] == "1700000000001"
    markers = find_markers(posted.activity["text"], world.settings.require("marker_signing_key"))
    assert markers
    assert markers[0].valid
    assert markers[0].chain_id == line["chain_id"]
    # The post is in the effect ledger: when it comes back through any door it is Reynolds' own.
    assert world.services.lineage.own_effect("teams", posted.activity_id) is not None


def test_the_same_message_twice_is_a_duplicate_and_answered_once(world: World) -> None:
    first = run(world, item(message()))
    again = run(world, item(message()))
    assert first["verdict"] == "accepted"
    assert again["verdict"] == "duplicate"
    assert len(bot_stage(world).connector.activities) == 1


def test_token_within_the_documented_clock_skew_is_accepted(world: World) -> None:
    assert run(world, item(message(), {"expired_seconds": 200}))["status"] == 200


# -- acceptance: every bad token is a 401 before the body is parsed, nothing stored --------------------------------
NOT_JSON = "{this is not json"
BAD_TOKENS = {
    "expired": {"expired_seconds": 600},
    "not-yet-valid": {"nbf": int(time.time()) + 3600},
    "wrong-audience": {"aud": "someone-else"},
    "wrong-issuer": {"iss": "https://evil.example"},
    "no-issuer": {"iss": None},
    "no-expiry": {"exp": None},
    "unknown-key": {"kid": "unknown"},
    "alg-none": {"alg": "none"},
}


@pytest.mark.parametrize("claims", list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_bad_token_is_401_before_the_body_is_parsed_and_nothing_is_stored(world: World,
                                                                          claims: dict[str, Any]) -> None:
    bot_stage(world)
    before = stored(world)
    line = run(world, item(NOT_JSON, claims))  # a body that would be a 400 if anything parsed it
    assert line["status"] == 401
    assert line["verdict"] == "rejected"
    assert line["reason"]
    assert stored(world) == before
    assert line["effects"] == []
    assert bot_stage(world).connector.activities == []


def test_tampered_signature_and_missing_or_foreign_header_are_401(world: World) -> None:
    stage = bot_stage(world)
    token = stage.issuer.channel_token(SIMULATE_BOT_APP_ID, SERVICE_URL)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    before = stored(world)
    for authorization, reason in ((f"Bearer {head}.{payload}.{flipped}", "signature"),
                                  (None, "missing Authorization"), ("Basic dXNlcjpwYXNz", "Bearer"),
                                  ("Bearer not-a-jwt", "not a JWT")):
        line = run(world, item(NOT_JSON, authorization=authorization))
        assert line["status"] == 401, (authorization, line)
        assert reason in line["reason"], (authorization, line)
    assert stored(world) == before
    assert stage.connector.activities == []


@pytest.mark.parametrize(("claims", "reason"), [({"serviceurl": "https://evil.example/"}, "does not match"),
                                                ({"serviceurl": None}, "no serviceurl")])
def test_service_url_claim_must_match_the_activity(world: World, claims: dict[str, Any], reason: str) -> None:
    bot_stage(world)
    before = stored(world)
    line = run(world, item(message(), claims))
    assert line["status"] == 401
    assert reason in line["reason"]
    assert stored(world) == before
    assert bot_stage(world).connector.activities == []


def test_valid_token_with_a_malformed_body_is_400(world: World) -> None:
    assert run(world, item(NOT_JSON))["status"] == 400


def test_body_over_one_megabyte_is_413(world: World) -> None:
    big = message(text="x" * (1024 * 1024))
    assert run(world, item(big))["status"] == 413


def test_unconfigured_bot_is_503_naming_the_setting(world: World) -> None:
    set_bot_runtime(None)
    request = func.HttpRequest(method="POST", url="http://localhost/api/messages",
                               headers={"Authorization": "Bearer x"}, body=b"{}")
    response = asyncio.run(call_function("bot_messages", req=request, client=world.client))
    assert response.status_code == 503
    assert json.loads(response.get_body())["setting"] == "TEAMS_BOT_APP_ID"


# -- conversation references ------------------------------------------------------------------------------------
def install(action: str) -> dict[str, Any]:
    return {"type": "installationUpdate", "action": action, "id": f"f:{action}", "channelId": "msteams",
            "serviceUrl": SERVICE_URL, "recipient": {"id": f"28:{SIMULATE_BOT_APP_ID}", "name": "Reynolds"},
            "conversation": {"id": "19:general@thread.tacv2", "conversationType": "channel", "tenantId": "t-1"},
            "channelData": {"team": {"id": "19:team@thread.tacv2", "aadGroupId": "group-1"},
                            "tenant": {"id": "t-1"}}}


def test_install_stores_the_reference_and_uninstall_removes_it(world: World) -> None:
    references = BotReferences(world.store)
    assert run(world, item(install("add")))["status"] == 200
    reference = references.get("19:general@thread.tacv2")
    assert reference is not None
    assert reference.service_url == SERVICE_URL
    assert reference.team_id == "group-1"
    assert reference.bot_id == f"28:{SIMULATE_BOT_APP_ID}"
    assert run(world, item(install("remove")))["status"] == 200
    assert references.get("19:general@thread.tacv2") is None


def test_bot_removed_from_a_team_forgets_the_conversation(world: World) -> None:
    references = BotReferences(world.store)
    run(world, item(install("add")))
    update = {**install("add"), "type": "conversationUpdate",
              "membersRemoved": [{"id": f"28:{SIMULATE_BOT_APP_ID}"}]}
    update.pop("action")
    assert run(world, item(update))["status"] == 200
    assert references.get("19:general@thread.tacv2") is None


def test_other_activity_types_are_acknowledged_and_ignored(world: World) -> None:
    bot_stage(world)
    before = stored(world)
    line = run(world, item({**message(), "type": "typing"}))
    assert (line["status"], line["verdict"]) == (200, "ignored")
    assert stored(world) == before
    assert bot_stage(world).connector.activities == []


# -- the validator's key cache ------------------------------------------------------------------------------------
def test_unknown_key_refreshes_the_keys_once_then_not_again_until_the_interval_passed() -> None:
    now = [1_000_000.0]
    with FakeTokenIssuer() as issuer:
        validator = BotTokenValidator("app", metadata_url=issuer.metadata_url, clock=lambda: now[0])
        validator.verify(issuer.channel_token("app", SERVICE_URL))
        assert validator.refreshes == 1
        now[0] += MIN_REFRESH_SECONDS  # the first unknown kid after the interval refetches once
        for _ in range(3):
            with pytest.raises(SignatureError, match="unknown key"):
                validator.verify(issuer.channel_token("app", SERVICE_URL, {"kid": "unknown"}))
        assert validator.refreshes == 2
        assert issuer.requests.count("GET /v1/.well-known/keys") == 2


# -- the Bot Connector client against the fake connector -------------------------------------------------------------
@pytest.fixture
def connector_stage() -> Iterator[tuple[FakeTokenIssuer, FakeBotConnector, list[float]]]:
    now = [5_000.0]
    with FakeTokenIssuer() as issuer, FakeBotConnector(issuer, clock=lambda: now[0]) as fake:
        fake.add_conversation("19:c", "28:app")
        yield issuer, fake, now


def reference_for(fake: FakeBotConnector, conversation: str = "19:c") -> ConversationReference:
    return ConversationReference(conversation_id=conversation, service_url=fake.base_url + "/amer/",
                                 bot_id="28:app")


def client_for(issuer: FakeTokenIssuer, app_id: str = "app") -> BotConnector:
    async def token() -> str:
        return issuer.bot_token(app_id)
    return BotConnector(token)


def test_send_then_update_in_place(connector_stage: tuple[FakeTokenIssuer, FakeBotConnector, list[float]]) -> None:
    issuer, fake, _ = connector_stage
    client, reference = client_for(issuer), reference_for(fake)
    posted = asyncio.run(client.send(reference, {"type": "message", "text": "status: running"}))
    updated = asyncio.run(client.update(reference, posted.activity_id, {"type": "message", "text": "status: done"}))
    assert updated.activity_id == posted.activity_id
    assert [(a.method, a.activity["text"]) for a in fake.activities] == [("POST", "status: running"),
                                                                         ("PUT", "status: done")]


@pytest.mark.parametrize(("case", "status", "code"), [
    ("wrong-bot", 401, "Unauthorized"), ("unknown-conversation", 404, "ConversationNotFound"),
    ("empty-message", 400, "BadArgument"), ("too-large", 413, "MessageSizeTooBig"),
    ("unknown-activity", 404, "ActivityNotFound")])
def test_connector_refusals(connector_stage: tuple[FakeTokenIssuer, FakeBotConnector, list[float]], case: str,
                            status: int, code: str) -> None:
    issuer, fake, _ = connector_stage
    client, reference, activity = client_for(issuer), reference_for(fake), {"type": "message", "text": "hi"}
    if case == "wrong-bot":
        client = client_for(issuer, "another-app")
    elif case == "unknown-conversation":
        reference = reference_for(fake, "19:nowhere")
    elif case == "empty-message":
        activity = {"type": "message"}
    elif case == "too-large":
        activity = {"type": "message", "text": "x" * 40_000}
    call = (client.update(reference, "404", activity) if case == "unknown-activity"
            else client.send(reference, activity))
    with pytest.raises(BotConnectorError) as caught:
        asyncio.run(call)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert fake.activities == []


def test_connector_without_a_bearer_token_is_401(
        connector_stage: tuple[FakeTokenIssuer, FakeBotConnector, list[float]]) -> None:
    issuer, fake, _ = connector_stage

    async def forged() -> str:
        return issuer.channel_token("app", None)  # a channel token is not a bot token (wrong audience)
    with pytest.raises(BotConnectorError) as caught:
        asyncio.run(BotConnector(forged).send(reference_for(fake), {"type": "message", "text": "hi"}))
    assert caught.value.status == 401


def test_connector_throttles_per_conversation_with_retry_after(
        connector_stage: tuple[FakeTokenIssuer, FakeBotConnector, list[float]]) -> None:
    issuer, fake, now = connector_stage
    client, reference = client_for(issuer), reference_for(fake)
    for _ in range(7):
        asyncio.run(client.send(reference, {"type": "message", "text": "hi"}))
    with pytest.raises(BotConnectorThrottled) as caught:
        asyncio.run(client.send(reference, {"type": "message", "text": "one too many"}))
    assert caught.value.retry_after >= 1
    now[0] += 1.0  # the 1 s window passed: posting works again
    asyncio.run(client.send(reference, {"type": "message", "text": "later"}))
    assert len(fake.activities) == 8


def test_poster_posts_once_per_key_with_the_marker(
        connector_stage: tuple[FakeTokenIssuer, FakeBotConnector, list[float]]) -> None:
    issuer, fake, _ = connector_stage
    from shared.loop.lineage import LineageService
    from shared.services import guard_config

    settings = Settings.model_validate({"REYNOLDS_MARKER_KEY": "k" * 32, "LINEAGE_STORE": "memory"})
    lineage = LineageService(MemoryStore(), guard_config(settings), marker_key="k" * 32)
    poster = BotPoster(lineage, client_for(issuer), marker_key="k" * 32)
    for _ in range(2):
        record = asyncio.run(poster.post(key="answer:e1", reference=reference_for(fake), html_body="<p>Done</p>",
                                         chain_id="c-1", event_id="e1", depth=0))
    assert len(fake.activities) == 1
    assert record.state == "done"
    assert record.resource_id == fake.activities[0].activity_id
    assert find_markers(fake.activities[0].activity["text"], "k" * 32)[0].valid


def test_the_webhook_door_and_the_bot_door_deduplicate_the_same_message(world: World) -> None:
    from tools.simulate import run_teams

    first = asyncio.run(run_teams(world, {"source": "teams", "headers": {"Authorization": "auto"},
                                          "body": message()}))
    answered = len(bot_stage(world).connector.activities)
    again = run(world, item(message()))
    assert first["verdict"] == "accepted"
    assert answered == 1  # the webhook door's message is answered once, by the orchestration, through the bot
    assert (again["status"], again["verdict"]) == (200, "duplicate")
    assert len(bot_stage(world).connector.activities) == 1  # a duplicate gets no second answer
    assert again["effects"] == []


def test_a_key_that_does_not_endorse_the_channel_is_refused() -> None:
    from shared.platforms.teams.bot_auth import check_activity

    with FakeTokenIssuer(endorsements=("webchat",)) as issuer:
        validator = BotTokenValidator("app", metadata_url=issuer.metadata_url)
        token = validator.verify(issuer.channel_token("app", SERVICE_URL))
        with pytest.raises(SignatureError, match="endorse"):
            check_activity(token, {"serviceUrl": SERVICE_URL, "channelId": "msteams"})
        check_activity(token, {"serviceUrl": SERVICE_URL, "channelId": "webchat"})


def test_unreadable_signing_keys_are_a_503_not_an_accept() -> None:
    def down(url: str) -> dict[str, Any]:
        raise OSError("connection refused")

    validator = BotTokenValidator("app", metadata_url="https://login.botframework.com/x", fetch=down)
    with FakeTokenIssuer() as issuer, pytest.raises(IncomingRequestError) as caught:
        validator.verify(issuer.channel_token("app", SERVICE_URL))
    assert caught.value.status_code == 503


def test_the_bot_identity_token_is_cached_until_shortly_before_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.identity.aio
    from azure.core.credentials import AccessToken

    from shared.platforms.teams.connector import BOT_CONNECTOR_SCOPE, managed_identity_token

    calls: list[tuple[str | None, str]] = []

    class Credential:
        def __init__(self, client_id: str | None = None) -> None:
            self.client_id = client_id

        async def __aenter__(self) -> Credential:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def get_token(self, scope: str) -> AccessToken:
            calls.append((self.client_id, scope))
            return AccessToken(f"t{len(calls)}", 10_000)

    monkeypatch.setattr(azure.identity.aio, "ManagedIdentityCredential", Credential)
    now = [1_000.0]
    provider = managed_identity_token("bot-client-id", clock=lambda: now[0])

    async def fetch() -> str:
        return await provider()

    assert asyncio.run(fetch()) == "t1"
    assert asyncio.run(fetch()) == "t1"
    now[0] = 10_000 - 299  # inside the renewal margin
    assert asyncio.run(fetch()) == "t2"
    assert calls == [("bot-client-id", BOT_CONNECTOR_SCOPE)] * 2


def test_references_round_trip_through_cosmos(cosmos_store: Any) -> None:
    references = BotReferences(cosmos_store)
    conversation = "19:general@thread.tacv2;messageid=17/33?#x"  # characters Cosmos ids may not hold
    reference = ConversationReference(conversation_id=conversation, service_url=SERVICE_URL, bot_id="28:app",
                                      tenant_id="t-1", team_id="group-1")
    references.save(reference)
    references.save(reference)  # an install seen twice writes the same document
    assert references.get(conversation) == reference
    assert references.remove(conversation) is True
    assert references.get(conversation) is None
    assert references.remove(conversation) is False


def test_an_accepted_message_keeps_its_channel_reference_for_proactive_posts(world: World) -> None:
    run(world, item(message()))
    reference = BotReferences(world.store).get("19:general@thread.tacv2")  # the channel, not the thread
    assert reference is not None
    assert reference.service_url == SERVICE_URL


def test_poster_updates_a_card_in_place_once_per_key(
        connector_stage: tuple[FakeTokenIssuer, FakeBotConnector, list[float]]) -> None:
    issuer, fake, _ = connector_stage
    from shared.loop.lineage import LineageService
    from shared.services import guard_config

    settings = Settings.model_validate({"REYNOLDS_MARKER_KEY": "k" * 32, "LINEAGE_STORE": "memory"})
    lineage = LineageService(MemoryStore(), guard_config(settings), marker_key="k" * 32)
    poster = BotPoster(lineage, client_for(issuer), marker_key="k" * 32)
    card = {"contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "running"}]}}
    first = asyncio.run(poster.post(key="status:e1:1", reference=reference_for(fake), html_body="<p>Status</p>",
                                    chain_id="c-1", event_id="e1", depth=0, attachments=[card]))
    assert first.resource_id is not None
    for _ in range(2):
        asyncio.run(poster.post(key="status:e1:2", reference=reference_for(fake), html_body="<p>Status</p>",
                                chain_id="c-1", event_id="e1", depth=0, update_id=first.resource_id,
                                attachments=[card]))
    assert [(a.method, a.activity_id) for a in fake.activities] == [("POST", first.resource_id),
                                                                    ("PUT", first.resource_id)]
    assert fake.activities[1].activity["attachments"] == [card]
    assert find_markers(fake.activities[1].activity["text"], "k" * 32)[0].valid
