"""Permission-aware Graph reads: the least-privilege table, a 403 turned into "the tenant has not granted …",
and the fake Graph's transcript routes and granted permissions (tools/fakes/graph.py, additive)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.ai.specialists import SPECIALISTS, Specialist
from shared.meetings.vtt import parse_vtt
from shared.platforms.teams.read_permissions import GRAPH_READS, permission_refusal, read_permission_status
from tools.fakes.graph import FakeGraph

VTT = (Path(__file__).parent / "data" / "meetings" / "standup.vtt").read_bytes().decode("utf-8")
NOW = datetime(2026, 12, 8, 9, tzinfo=UTC)
ORGANIZER = "00000000-0000-0000-0000-0000000000a1"
MEETING = "MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ"


def _graph(permissions: list[str] | None) -> Iterator[tuple[FakeGraph, httpx.Client]]:
    with FakeGraph(clock=lambda: NOW, graph_permissions=permissions, transcripts={MEETING: VTT}) as fake, \
            httpx.Client(base_url=fake.base_url) as client:
        yield fake, client


@pytest.fixture
def granted() -> Iterator[tuple[FakeGraph, httpx.Client]]:
    yield from _graph(["OnlineMeetingTranscript.Read.All", "ChannelMessage.Read.Group"])


def test_every_platform_read_tool_has_a_permission_row() -> None:
    tools = SPECIALISTS[Specialist.PLATFORM].read_tools
    assert tools <= set(GRAPH_READS)
    for read in GRAPH_READS.values():
        assert read.doc.startswith("https://learn.microsoft.com/graph/")
        assert "." in read.permission


def test_transcripts_are_listed_and_fetched_as_webvtt(granted: tuple[FakeGraph, httpx.Client]) -> None:
    _, client = granted
    listed = client.get(f"/users/{ORGANIZER}/onlineMeetings/{MEETING}/transcripts").json()["value"]
    assert [t["meetingId"] for t in listed] == [MEETING]
    assert listed[0]["meetingOrganizer"]["user"]["id"] == ORGANIZER
    content = client.get(f"/users/{ORGANIZER}/onlineMeetings/{MEETING}/transcripts/{listed[0]['id']}/content",
                         params={"$format": "text/vtt"})
    assert content.status_code == 200
    assert content.headers["content-type"] == "text/vtt"
    assert len(parse_vtt(content.content.decode("utf-8")).cues) == 12
    every = client.get(f"/users/{ORGANIZER}/onlineMeetings/getAllTranscripts(meetingOrganizerUserId='{ORGANIZER}')")
    assert [t["id"] for t in every.json()["value"]] == [listed[0]["id"]]


def test_transcript_refusals_as_graph_answers(granted: tuple[FakeGraph, httpx.Client]) -> None:
    _, client = granted
    base = f"/users/{ORGANIZER}/onlineMeetings/{MEETING}/transcripts"
    tid = client.get(base).json()["value"][0]["id"]
    no_format = client.get(f"{base}/{tid}/content")
    assert no_format.status_code == 400
    assert no_format.json()["error"]["message"].startswith("Invalid format")
    other = client.get(f"/users/someone-else/onlineMeetings/{MEETING}/transcripts")
    assert other.status_code == 404
    assert client.get(f"{base}/nope").status_code == 404


def test_a_read_the_tenant_did_not_grant_names_the_permission() -> None:
    for fake, client in _graph(["ChannelMessage.Read.Group"]):
        refused = client.get(f"/users/{ORGANIZER}/onlineMeetings/{MEETING}/transcripts")
        assert refused.status_code == 403
        body = refused.json()
        assert body["error"]["code"] == "Forbidden"
        assert "innerError" in body["error"]
        told = permission_refusal("list_transcripts", refused.status_code, body)
        assert told is not None
        assert told["message"] == ("the tenant has not granted OnlineMeetingTranscript.Read.All (or resource-specific "
                                   "consent OnlineMeetingTranscript.Read.Chat where the app is installed)")
        assert told["permission"] == "OnlineMeetingTranscript.Read.All"
        # Channel messages are readable through resource-specific consent.
        assert client.get("/teams/t1/channels/c1/messages/1").status_code == 404  # allowed, no such message
        chat = client.get("/chats/19:abc/messages/1")
        assert chat.status_code == 403
        sub = client.post("/subscriptions", json={
            "changeType": "created", "notificationUrl": "https://reynolds.example/api/graph",
            "resource": "communications/onlineMeetings/getAllTranscripts",
            "expirationDateTime": (NOW + timedelta(minutes=50)).isoformat()})
        assert sub.status_code == 403
        assert fake.subscriptions == {}


def test_access_policy_refusals_and_other_errors() -> None:
    policy = {"error": {"code": "Forbidden", "message": "No application access policy found for this app."}}
    told = permission_refusal("get_transcript_content", 403, policy)
    assert told is not None
    assert told["message"] == "the tenant has not granted a Teams application access policy for the meeting organizer"
    assert permission_refusal("list_transcripts", 404, {"error": {"code": "NotFound"}}) is None
    assert permission_refusal("list_transcripts", 403, {"error": {"code": "TooManyRequests"}}) is None
    assert permission_refusal("unknown_read", 403, policy) is None


def test_health_lists_what_is_missing() -> None:
    status = read_permission_status({"OnlineMeetingTranscript.Read.All", "Presence.Read.All"})
    assert status["status"] == "missing_permissions"
    assert status["reads"]["list_transcripts"] == "ok"
    assert status["reads"]["list_channel_messages"] == "rsc_only"
    assert status["missing"] == {"list_calendar_events": "the tenant has not granted Calendars.ReadBasic",
                                 "search_sharepoint": "the tenant has not granted Sites.Selected"}
    everything = {read.permission for read in GRAPH_READS.values()}
    assert read_permission_status(everything)["status"] == "ok"


def test_transcript_subscription_and_its_notification(granted: tuple[FakeGraph, httpx.Client]) -> None:
    fake, client = granted
    long = client.post("/subscriptions", json={
        "changeType": "created", "notificationUrl": "https://reynolds.example/api/graph",
        "resource": "communications/onlineMeetings/getAllTranscripts", "clientState": "s3cret",
        "expirationDateTime": (NOW + timedelta(hours=2)).isoformat()})
    assert long.status_code == 400  # over an hour needs lifecycle notifications
    created = client.post("/subscriptions", json={
        "changeType": "created", "notificationUrl": "https://reynolds.example/api/graph",
        "lifecycleNotificationUrl": "https://reynolds.example/api/graph/lifecycle",
        "resource": "communications/onlineMeetings/getAllTranscripts", "clientState": "s3cret",
        "expirationDateTime": (NOW + timedelta(minutes=4000)).isoformat()})
    assert created.status_code == 201
    too_long = client.post("/subscriptions", json={
        "changeType": "created", "notificationUrl": "https://reynolds.example/api/graph",
        "lifecycleNotificationUrl": "https://reynolds.example/api/graph/lifecycle",
        "resource": "communications/onlineMeetings/getAllTranscripts",
        "expirationDateTime": (NOW + timedelta(minutes=4300)).isoformat()})
    assert too_long.status_code == 400
    meta = fake.add_transcript("meeting-2", VTT)
    [notification] = fake.outbox[-1]["value"]
    assert notification["clientState"] == "s3cret"
    assert notification["resource"] == f"communications/onlineMeetings('meeting-2')/transcripts('{meta['id']}')"
    assert notification["resourceData"]["@odata.type"] == "#Microsoft.Graph.callTranscript"


def test_without_graph_permissions_the_fake_behaves_as_before() -> None:
    for _, client in _graph(None):
        assert client.get("/chats/19:abc/messages/1").status_code == 404
        assert client.get(f"/users/{ORGANIZER}/onlineMeetings/{MEETING}/transcripts").status_code == 200


async def test_transcripts_through_msgraph_sdk() -> None:
    from kiota_abstractions.authentication import AnonymousAuthenticationProvider

    from shared.platforms.teams.graph import make_graph_client
    from shared.platforms.teams.transcripts import (
        TranscriptPermissionMissing,
        fetch_transcript,
        list_transcripts,
        transcript_resource_ids,
    )
    from shared.settings import Settings

    settings = Settings.model_validate({})
    for permissions in (["OnlineMeetingTranscript.Read.All"], []):
        with FakeGraph(clock=lambda: NOW, graph_permissions=permissions, transcripts={MEETING: VTT}) as fake:
            graph = make_graph_client(settings, base_url=fake.base_url, auth_provider=AnonymousAuthenticationProvider())
            try:
                if not permissions:
                    with pytest.raises(TranscriptPermissionMissing) as refused:
                        await list_transcripts(graph, ORGANIZER, MEETING)
                    assert refused.value.refusal["permission"] == "OnlineMeetingTranscript.Read.All"
                    assert str(refused.value).endswith("the tenant has not granted OnlineMeetingTranscript.Read.All "
                                                       "(or resource-specific consent OnlineMeetingTranscript.Read."
                                                       "Chat where the app is installed)")
                    continue
                [transcript] = await list_transcripts(graph, ORGANIZER, MEETING)
                text = await fetch_transcript(graph, ORGANIZER, MEETING, transcript["id"])
                assert parse_vtt(text).speakers[0] == "Ada Lovelace"
                (request,) = fake.requests_to("GET", r"/content$")
                assert request.query["$format"] == ["text/vtt"]
            finally:
                await graph.request_adapter._http_client.aclose()
    assert transcript_resource_ids("communications/onlineMeetings('m-1')/transcripts('t-9')") == ("m-1", "t-9")
    assert transcript_resource_ids("chats('x')/messages('y')") is None
