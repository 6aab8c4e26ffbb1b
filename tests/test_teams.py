"""Teams outgoing webhook: HMAC verification, activity parsing, the synchronous reply."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import ConfigurationError, IncomingRequestError, SignatureError
from shared.loop.envelope import ActorKind, Platform
from shared.loop.marker import find_markers, hidden_marker
from shared.platforms.teams.webhook import (
    build_ack_reply,
    embed_marker,
    extract_markers,
    html_to_text,
    parse_teams_activity,
    teams_signature,
    verify_teams_hmac,
)

# A token as Teams shows it: base64 of 32 random-looking bytes.
TOKEN = base64.b64encode(bytes(range(32))).decode()
BODY = b'{"type":"message","text":"<at>Reynolds</at> hello"}'
# Computed independently of the code under test: HMAC-SHA256(key=b64decode(TOKEN), BODY), base64.
EXPECTED = "HMAC " + base64.b64encode(hmac.new(bytes(range(32)), BODY, hashlib.sha256).digest()).decode()
RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_known_vector_verifies() -> None:
    assert teams_signature(TOKEN, BODY) == EXPECTED
    verify_teams_hmac(TOKEN, BODY, EXPECTED)


def test_fixed_vector_is_stable() -> None:
    # Pinned from `openssl dgst -sha256 -mac HMAC -macopt hexkey:000102…1f -binary | base64` over BODY.
    assert EXPECTED == "HMAC 2fjsJbT9Mq0nJkpaU2cmAq7pLKGEvRLS+rG7EF1+PTw="


def test_one_changed_byte_fails() -> None:
    tampered = BODY.replace(b"hello", b"hellp")
    with pytest.raises(SignatureError) as err:
        verify_teams_hmac(TOKEN, tampered, EXPECTED)
    assert err.value.status_code == 401


@pytest.mark.parametrize("header", [None, "", "HMAC", "Bearer abc", "HMAC not*base64", "HMAC " + "A" * 44])
def test_missing_or_malformed_header_is_401(header: str | None) -> None:
    with pytest.raises(SignatureError) as err:
        verify_teams_hmac(TOKEN, BODY, header)
    assert err.value.status_code == 401


def test_scheme_is_case_insensitive() -> None:
    verify_teams_hmac(TOKEN, BODY, "hmac " + EXPECTED.split(" ", 1)[1])


@pytest.mark.parametrize("token", [None, ""])
def test_unconfigured_token_never_accepts(token: str | None) -> None:
    with pytest.raises(ConfigurationError) as err:
        verify_teams_hmac(token, BODY, EXPECTED)
    assert err.value.setting == "TEAMS_OUTGOING_WEBHOOK_TOKEN"


def test_token_that_is_not_base64_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        verify_teams_hmac("not base64!", BODY, EXPECTED)


def _activity(**overrides: Any) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "message",
        "id": "1612289765949",
        "timestamp": "2026-03-02T08:59:58.1234567Z",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams",
        "from": {
            "id": "29:1a2b3c",
            "name": "Ada Lovelace",
            "aadObjectId": "6f1c1d7e-1111-2222-3333-444455556666",
        },
        "conversation": {
            "isGroup": True,
            "id": "19:abc@thread.tacv2;messageid=1612289765949",
            "conversationType": "channel",
            "tenantId": "tenant-1",
        },
        "recipient": None,
        "textFormat": "plain",
        "text": "<at>Reynolds</at>&nbsp;please <b>triage</b> issue #7<br>thanks &amp; cheers",
        "entities": [{"type": "clientInfo", "locale": "en-US"}],
        "channelData": {
            "teamsChannelId": "19:abc@thread.tacv2",
            "teamsTeamId": "19:team@thread.tacv2",
            "channel": {"id": "19:abc@thread.tacv2"},
            "team": {"id": "19:team@thread.tacv2"},
            "tenant": {"id": "tenant-1"},
        },
    }
    activity.update(overrides)
    return activity


def test_activity_parses_into_envelope() -> None:
    envelope = parse_teams_activity(json.dumps(_activity()).encode(), received_at=RECEIVED)
    assert envelope.id == "teams:1612289765949"
    assert envelope.platform is Platform.TEAMS
    assert envelope.type == "com.microsoft.teams.message.created"
    assert envelope.name == "teams_message.created"
    assert envelope.actor.id == "6f1c1d7e-1111-2222-3333-444455556666"
    assert envelope.actor.login == "Ada Lovelace"
    assert envelope.actor.kind is ActorKind.HUMAN
    assert envelope.target is not None
    assert envelope.target.key == "teams:19:team@thread.tacv2/19:abc@thread.tacv2"
    assert envelope.text == "please triage issue #7\nthanks & cheers"
    assert envelope.time == datetime(2026, 3, 2, 8, 59, 58, 123456, tzinfo=UTC)
    assert envelope.resource_id == "1612289765949"
    assert envelope.data["tenant_id"] == "tenant-1"
    assert envelope.lineage.depth == 0


def test_team_group_id_is_preferred_so_graph_and_webhook_agree() -> None:
    activity = _activity()
    activity["channelData"]["team"]["aadGroupId"] = "0c5cfdbb-596f-4d39-b557-5d9516c94107"
    envelope = parse_teams_activity(json.dumps(activity).encode(), received_at=RECEIVED)
    assert envelope.target is not None
    assert envelope.target.key == "teams:0c5cfdbb-596f-4d39-b557-5d9516c94107/19:abc@thread.tacv2"


def test_only_the_reynolds_mention_is_stripped() -> None:
    text = "<at>Reynolds</at> ask <at>Grace Hopper</at> about <at>reynolds</at>"
    envelope = parse_teams_activity(json.dumps(_activity(text=text)).encode(), received_at=RECEIVED)
    assert envelope.text == "ask Grace Hopper about"


def test_bot_sender_is_a_bot_and_chat_uses_conversation_id() -> None:
    activity = _activity(**{"from": {"id": "28:bot-app-id", "name": "OtherBot"}})
    activity["channelData"] = {"tenant": {"id": "tenant-1"}}
    activity["conversation"] = {"id": "19:chat@thread.v2", "conversationType": "groupChat"}
    envelope = parse_teams_activity(json.dumps(activity).encode(), received_at=RECEIVED)
    assert envelope.actor.kind is ActorKind.BOT
    assert envelope.actor.id == "28:bot-app-id"
    assert envelope.target is not None
    assert envelope.target.key == "19:chat@thread.v2"


def test_markers_in_html_are_collected_for_the_loop_guard() -> None:
    marker = hidden_marker("k" * 32, "chain-1", "teams:42", 2)
    html = embed_marker("<p>Reynolds says hi</p>", marker)
    assert html == f"<p>Reynolds says hi</p>{marker}"
    envelope = parse_teams_activity(json.dumps(_activity(text=html)).encode(), received_at=RECEIVED)
    assert envelope.data["markers"] == [marker]
    assert envelope.text == "Reynolds says hi"
    # The loop guard verifies what was collected with the signing key.
    (found,) = find_markers(" ".join(envelope.data["markers"]), "k" * 32)
    assert (found.chain_id, found.event_id, found.depth, found.valid) == ("chain-1", "teams:42", 2, True)


def test_bare_marker_tokens_are_wrapped_and_escaped_comments_found() -> None:
    assert embed_marker("<p/>", "tok.1") == "<p/><!-- reynolds-marker: tok.1 -->"
    assert extract_markers("<p>x</p>&lt;!-- reynolds-marker: tok.1 --&gt;") == ["<!-- reynolds-marker: tok.1 -->"]
    assert extract_markers("<p>no marker <!-- other comment --></p>") == []
    with pytest.raises(ValueError, match="marker"):
        embed_marker("<p/>", "bad--marker")
    with pytest.raises(ValueError, match="marker"):
        embed_marker("<p/>", "<!-- a -- b -->")


def test_missing_timestamp_falls_back_to_received_at() -> None:
    activity = _activity()
    del activity["timestamp"]
    envelope = parse_teams_activity(json.dumps(activity).encode(), received_at=RECEIVED)
    assert envelope.time == RECEIVED


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps(_activity(type="conversationUpdate")).encode(),
        json.dumps(_activity(id=None)).encode(),
        json.dumps(_activity(**{"from": "someone"})).encode(),
        json.dumps(_activity(**{"from": {}})).encode(),
        json.dumps(_activity(conversation={})).encode(),
        json.dumps(_activity(text=42)).encode(),
    ],
)
def test_malformed_activity_is_400(body: bytes) -> None:
    with pytest.raises(IncomingRequestError) as err:
        parse_teams_activity(body, received_at=RECEIVED)
    assert err.value.status_code == 400
    assert not isinstance(err.value, SignatureError)


def test_ack_reply_is_a_short_message_activity() -> None:
    reply = build_ack_reply("On it: triaging issue #7")
    assert reply == {"type": "message", "text": "On it: triaging issue #7"}
    long_reply = build_ack_reply("x" * 1000)
    assert len(long_reply["text"]) == 280
    assert build_ack_reply("   ")["text"] == "On it."


def test_html_to_text_handles_entities_and_blocks() -> None:
    assert html_to_text("<div>a&nbsp;b</div><div>c <!-- hidden --> d</div>") == "a b\nc d"
